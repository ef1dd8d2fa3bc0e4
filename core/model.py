"""The MLP whose hidden layers are measured: h_l = W_l a_{l-1} (+ b_l), a_l = phi(h_l)."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from core.config import ModelConfig

ACTIVATION_FNS = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "gelu": F.gelu,
    "linear": lambda h: h,
    "sigmoid": torch.sigmoid,
    "silu": F.silu,
}


def activation_derivative(name: str, h: torch.Tensor) -> torch.Tensor:
    """phi'(h), elementwise, in closed form."""
    if name == "relu":
        return (h > 0).to(h.dtype)
    if name == "tanh":
        return 1 - torch.tanh(h) ** 2
    if name == "gelu":
        cdf = 0.5 * (1 + torch.erf(h / math.sqrt(2)))
        return cdf + h * torch.exp(-0.5 * h * h) / math.sqrt(2 * math.pi)
    if name == "linear":
        return torch.ones_like(h)
    if name == "sigmoid":
        s = torch.sigmoid(h)
        return s * (1 - s)
    if name == "silu":
        s = torch.sigmoid(h)
        return s * (1 + h * (1 - s))
    raise ValueError(f"unknown activation {name!r}")


class MLP(nn.Module):
    """``depth`` hidden layers (``hidden[0]`` is layer 1) and a linear ``out`` layer."""

    def __init__(self, d: int, outputs: int, cfg: ModelConfig, generator: torch.Generator,
                 dtype: torch.dtype = torch.float32):
        super().__init__()
        self.activation = cfg.activation
        self._phi = ACTIVATION_FNS[cfg.activation]
        sizes = [d] + [cfg.width] * cfg.depth
        self.hidden = nn.ModuleList(
            nn.Linear(a, b, bias=cfg.bias, dtype=dtype) for a, b in zip(sizes, sizes[1:]))
        self.out = nn.Linear(sizes[-1], outputs, bias=cfg.bias, dtype=dtype)
        self._init(generator, cfg.init_scale)

    def _init(self, generator: torch.Generator, scale: float) -> None:
        """PyTorch's default nn.Linear init (uniform, bound 1/sqrt(fan_in)), times ``scale``, from ``generator``."""
        with torch.no_grad():
            for layer in self.layers:
                bound = scale / math.sqrt(layer.in_features)
                w = torch.rand(layer.weight.shape, generator=generator, dtype=torch.float64)
                layer.weight.copy_((2 * w - 1) * bound)
                if layer.bias is not None:
                    b = torch.rand(layer.bias.shape, generator=generator, dtype=torch.float64)
                    layer.bias.copy_((2 * b - 1) * bound)

    @property
    def layers(self) -> list[nn.Linear]:
        """All linear layers, hidden first, output last."""
        return [*self.hidden, self.out]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.hidden:
            x = self._phi(layer(x))
        return self.out(x)

    def preactivations(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[h_1, ..., h_L] for inputs x (n, d), no graph."""
        hs = []
        with torch.no_grad():
            for layer in self.hidden:
                h = layer(x)
                hs.append(h)
                x = self._phi(h)
        return hs

    def head(self, h_last: torch.Tensor) -> torch.Tensor:
        """The outputs from the last hidden pre-activation h_L: what forward() computes after it."""
        return self.out(self._phi(h_last))

    def weights(self) -> list[torch.Tensor]:
        """Hidden-layer weights W_1..W_L (views, not copies)."""
        return [layer.weight for layer in self.hidden]
