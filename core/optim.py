"""Optimisers: SGD, Adam, and speed-limited optimisation (SLO).

SLO (see docs/nfa-math.md): every parameter tensor of layer l moves by a fixed speed,

    W_l <- W_l - eta_l * G_l / (||G_l||_F + eps),  eta_l = speed * boost if l is the target else speed,

so each step's Frobenius norm is eta_l whatever the gradient's size. A bias is normalised on
its own and moves at its layer's rate. The output layer is never the target.
"""

from __future__ import annotations

import torch

from core.config import OptimConfig

EPS = 1e-12


class SLO(torch.optim.Optimizer):
    """Speed-limited optimisation; param groups carry ``layer`` (1..L+1) and ``speed``."""

    def __init__(self, groups: list[dict], speed: float = 0.01, boost: float = 10.0,
                 target_layer: int = 1, eps: float = EPS):
        super().__init__(groups, dict(speed=speed, eps=eps, layer=0))
        self.set_rates(speed, boost, target_layer)

    def set_rates(self, speed: float, boost: float, target_layer: int) -> None:
        """Changes speeds mid-run; no state to keep."""
        self.boost, self.target_layer = boost, target_layer
        for group in self.param_groups:
            group["speed"] = speed * boost if group["layer"] == target_layer else speed

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                scale = group["speed"] / (torch.linalg.vector_norm(p.grad) + group["eps"])
                p.sub_(p.grad * scale)
        return loss


def layer_groups(layers: list[torch.nn.Module]) -> list[dict]:
    """One param group per layer, numbered 1..L+1 (the last is the output layer)."""
    return [{"params": list(layer.parameters()), "layer": i + 1} for i, layer in enumerate(layers)]


def build_optimizer(layers: list[torch.nn.Module], cfg: OptimConfig) -> torch.optim.Optimizer:
    """The optimiser the config asks for (SLO when ``cfg.slo.enabled``)."""
    groups = layer_groups(layers)
    if cfg.slo.enabled:
        s = cfg.slo
        return SLO(groups, speed=s.speed, boost=s.boost, target_layer=s.target_layer)
    if cfg.name == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)


def kind_of(cfg: OptimConfig) -> str:
    """What decides whether an optimiser must be rebuilt: the rule and its stateful settings."""
    if cfg.slo.enabled:
        return "slo"
    return f"sgd:{cfg.momentum > 0}" if cfg.name == "sgd" else cfg.name  # momentum means nothing to Adam


def apply_settings(opt: torch.optim.Optimizer, cfg: OptimConfig) -> None:
    """Updates learning rate, momentum and SLO speeds in place."""
    if isinstance(opt, SLO):
        opt.set_rates(cfg.slo.speed, cfg.slo.boost, cfg.slo.target_layer)
        return
    for group in opt.param_groups:
        group["lr"] = cfg.lr
        if "momentum" in group:
            group["momentum"] = cfg.momentum
