"""What the curve panels plot: loss, a layer's correlations, or baseline vs SLO (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from app.tui.plotting import Curve, unit_limits
from core.engine import Snapshot

TRAIN, TEST = (90, 160, 255), (255, 150, 60)
UC, CENTERED, QUALITY = (80, 200, 220), (220, 110, 220), (120, 220, 120)
BASELINE, SLO = (170, 170, 170), (240, 80, 80)


@dataclass(frozen=True)
class Chart:
    """A chart's title, curves and y axis (log scale or fixed limits)."""

    title: str
    curves: list[Curve]
    log: bool = False
    ylim: tuple[float, float] | None = None


def loss_chart(snap: Snapshot) -> Chart:
    """Train and test loss against step, log scale."""
    steps, train = snap.history.series("train_loss", 1)
    _, test = snap.history.series("test_loss", 1)
    return Chart("loss, log", [Curve("train", TRAIN, steps, train), Curve("test", TEST, steps, test)], log=True)


def nfa_chart(snap: Snapshot, layer: int) -> Chart:
    """UC-NFA and C-NFA of ``layer`` against step (and feature quality on layer 1 when known)."""
    h = snap.history
    curves = [Curve("UC-NFA", UC, *h.series("uc_nfa", layer)), Curve("C-NFA", CENTERED, *h.series("c_nfa", layer))]
    if layer == 1 and snap.g_star is not None:
        curves.append(Curve("quality", QUALITY, *h.series("feature_quality", 1)))
    return Chart(f"layer {layer}", curves, ylim=unit_limits(curves))


def compare_chart(base: Snapshot, slo: Snapshot, layer: int, key: str = "uc_nfa") -> Chart:
    """One metric of ``layer`` for the baseline and the SLO run."""
    curves = [Curve("baseline", BASELINE, *base.history.series(key, layer)),
              Curve("SLO", SLO, *slo.history.series(key, layer))]
    name = {"uc_nfa": "UC-NFA", "c_nfa": "C-NFA", "feature_quality": "quality"}.get(key, key)
    return Chart(f"layer {layer} {name}", curves, ylim=unit_limits(curves))
