"""Optimisers: SGD, Adam, and speed-limited optimisation (SLO).

SLO (see docs/nfa-math.md): every parameter tensor of layer l moves by a fixed speed,

    W_l <- W_l - eta_l * G_l / (||G_l||_F + eps),  eta_l = speed * boost if l is the target else speed,

so each step's Frobenius norm is eta_l whatever the gradient's size. A bias is normalised on
its own and moves at its layer's rate. The output layer is never the target.

Weight decay lambda (``optim.weight_decay``) is an L2 term on the loss for every rule:
SGD and Adam add lambda*W to the gradient (torch's ``weight_decay``); SLO normalises
G + lambda*W, so its steps keep their speed eta_l and point down the regularised loss.

Warm-up (``optim.warmup_steps``, ``optim.warmup_lr``): the first steps of a run are plain
SGD steps W <- W - warmup_lr * (G + lambda*W) whatever the optimiser, as the authors' first
epoch at lr 1e-4. They keep no state, so the optimiser proper starts fresh afterwards and
every arm of a comparison (same seed, same batches) leaves warm-up with the same weights.
"""

from __future__ import annotations

import torch

from core.config import OptimConfig

EPS = 1e-12


class NoDynamo:
    """torch.optim's bookkeeping without its lazy ``import torch._dynamo`` (about 1 s at start-up).

    ``torch.optim.Optimizer`` wraps ``add_param_group``, ``zero_grad``, ``state_dict``,
    ``load_state_dict`` and the built-in ``step`` methods in dynamo guards that import
    torch._dynamo on first call. Nothing here is compiled, so the undecorated originals
    (``__wrapped__``) are called; the arithmetic is torch's own, bit for bit.
    """

    def add_param_group(self, param_group: dict) -> None:
        torch.optim.Optimizer.add_param_group.__wrapped__(self, param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        torch.optim.Optimizer.zero_grad.__wrapped__(self, set_to_none)

    def state_dict(self) -> dict:
        return torch.optim.Optimizer.state_dict.__wrapped__(self)

    def load_state_dict(self, state_dict: dict) -> None:
        torch.optim.Optimizer.load_state_dict.__wrapped__(self, state_dict)


class SGD(NoDynamo, torch.optim.SGD):
    """torch.optim.SGD without the torch._dynamo import."""

    @torch.no_grad()
    def step(self, closure=None):
        return torch.optim.SGD.step.__wrapped__(self, closure)


class Adam(NoDynamo, torch.optim.Adam):
    """torch.optim.Adam without the torch._dynamo import."""

    @torch.no_grad()
    def step(self, closure=None):
        return torch.optim.Adam.step.__wrapped__(self, closure)


class SLO(NoDynamo, torch.optim.Optimizer):
    """Speed-limited optimisation; param groups carry ``layer`` (1..L+1) and ``speed``."""

    def __init__(self, groups: list[dict], speed: float = 0.01, boost: float = 10.0,
                 target_layer: int = 1, eps: float = EPS, weight_decay: float = 0.0):
        super().__init__(groups, dict(speed=speed, eps=eps, layer=0, weight_decay=weight_decay))
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
                grad = p.grad if not group["weight_decay"] else p.grad + group["weight_decay"] * p
                scale = group["speed"] / (torch.linalg.vector_norm(grad) + group["eps"])
                p.sub_(grad * scale)
        return loss


@torch.no_grad()
def warmup_step(params, lr: float, weight_decay: float = 0.0) -> None:
    """One plain SGD step W <- W - lr * (G + weight_decay * W) on ``params`` (no state)."""
    for p in params:
        if p.grad is None:
            continue
        grad = p.grad if not weight_decay else p.grad + weight_decay * p
        p.sub_(grad * lr)


def layer_groups(layers: list[torch.nn.Module]) -> list[dict]:
    """One param group per layer, numbered 1..L+1 (the last is the output layer)."""
    return [{"params": list(layer.parameters()), "layer": i + 1} for i, layer in enumerate(layers)]


def build_optimizer(layers: list[torch.nn.Module], cfg: OptimConfig) -> torch.optim.Optimizer:
    """The optimiser the config asks for (SLO when ``cfg.slo.enabled``)."""
    groups = layer_groups(layers)
    if cfg.slo.enabled:
        s = cfg.slo
        return SLO(groups, speed=s.speed, boost=s.boost, target_layer=s.target_layer,
                   weight_decay=cfg.weight_decay)
    if cfg.name == "adam":
        return Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def kind_of(cfg: OptimConfig) -> str:
    """What decides whether an optimiser must be rebuilt: the rule and its stateful settings."""
    if cfg.slo.enabled:
        return "slo"
    return f"sgd:{cfg.momentum > 0}" if cfg.name == "sgd" else cfg.name  # momentum means nothing to Adam


def apply_settings(opt: torch.optim.Optimizer, cfg: OptimConfig) -> None:
    """Updates learning rate, momentum, weight decay and SLO speeds in place."""
    for group in opt.param_groups:
        group["weight_decay"] = cfg.weight_decay
    if isinstance(opt, SLO):
        opt.set_rates(cfg.slo.speed, cfg.slo.boost, cfg.slo.target_layer)
        return
    for group in opt.param_groups:
        group["lr"] = cfg.lr
        if "momentum" in group:
            group["momentum"] = cfg.momentum
