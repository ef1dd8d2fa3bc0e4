"""Arms: the named configs a comparison runs side by side.

An arm differs from the others only in ``optim``; the same seed gives every arm the same
initial weights and the same batch order (see ``Engine``), so the arms of one comparison
start from one network and see the same minibatches. Front ends iterate over arms and
never branch on an arm's name except to print its label.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from core.config import RunConfig

PALETTE: tuple[tuple[str, str], ...] = (
    ("#7f7f7f", "dash"),
    ("#1f77b4", "dot"),
    ("#d62728", "solid"),
    ("#2ca02c", "dashdot"),
    ("#9467bd", "longdash"),
)
"""(colour, dash) per arm index: baseline grey dashed, control blue dotted, SLO red solid."""


@dataclass(frozen=True)
class Arm:
    """One side of a comparison."""

    name: str
    """Short, file- and column-safe name: ``baseline``, ``control``, ``slo``."""
    label: str
    """What a reader sees, e.g. ``SGD lr 0.05`` or ``SLO boost 1 (control)``."""
    config: RunConfig
    """The arm's full config (same data, model, seed as every other arm)."""
    index: int = 0
    """Position in the comparison; picks the colour and dash from ``PALETTE``."""

    @property
    def color(self) -> str:
        return PALETTE[self.index % len(PALETTE)][0]

    @property
    def dash(self) -> str:
        return PALETTE[self.index % len(PALETTE)][1]


def _baseline_label(cfg: RunConfig) -> str:
    o = cfg.optim
    extra = f", momentum {o.momentum:g}" if o.name == "sgd" and o.momentum else ""
    return f"{o.name.upper() if o.name == 'sgd' else o.name.capitalize()} lr {o.lr:g}{extra}"


def make_arms(cfg: RunConfig) -> list[Arm]:
    """The arms of ``compare``: baseline optimiser, SLO with boost 1 (control), SLO.

    The control moves every layer at the same normalised speed with no boost, so it
    separates the effect of normalising steps from the effect of boosting the target
    layer. When the config's boost is already 1 the control would equal the SLO arm and
    is left out.
    """
    slo = cfg.optim.slo
    base = copy.deepcopy(cfg)
    base.optim.slo.enabled = False
    arms = [("baseline", _baseline_label(cfg), base)]
    if slo.boost != 1.0:
        control = copy.deepcopy(cfg)
        control.optim.slo.enabled = True
        control.optim.slo.boost = 1.0
        arms.append(("control", f"SLO boost 1 (control), speed {slo.speed:g}", control))
    target = copy.deepcopy(cfg)
    target.optim.slo.enabled = True
    arms.append(("slo", f"SLO boost {slo.boost:g} on layer {slo.target_layer}, speed {slo.speed:g}", target))
    return [Arm(name, label, c, i) for i, (name, label, c) in enumerate(arms)]
