"""What the curve panels plot: loss, a layer's correlations, or every arm of a comparison (pure).

Charts are built from a ``core.series.HistoryView`` (bounded, updated from new rows only),
never from the whole history, so building one costs the same at any run length. ``recent``
picks the readable recent window (the last ``RECENT`` measurements, raw) instead of the
whole run (min/max buckets over every step since 0).
"""

from __future__ import annotations

from typing import Sequence

from app.tui.plotting import Chart, Curve, unit_limits
from core.arms import Arm
from core.series import HistoryView

TRAIN, TEST = (90, 160, 255), (255, 150, 60)
UC, CENTERED, QUALITY = (80, 200, 220), (220, 110, 220), (120, 220, 120)

CURVE_KEYS = ("train_loss", "test_loss", "uc_nfa", "c_nfa", "feature_quality")
"""History columns the terminal app draws (curves and sparklines)."""
CAPACITY = 512
"""Buckets of the whole-run view (more than the widest plot has dot columns)."""
RECENT = 400
"""Measurements in the recent window (``w``)."""


def new_view() -> HistoryView:
    """A bounded view of one run's history for the curves and sparklines."""
    return HistoryView(CURVE_KEYS, capacity=CAPACITY, recent=RECENT)


def window_name(recent: bool) -> str:
    """Appended to a chart's title in the recent window (the whole run needs no mark: it starts at 0)."""
    return f" last {RECENT}" if recent else ""


def _xlim(view: HistoryView, recent: bool) -> tuple[float, float] | None:
    """The whole run starts at step 0; the recent window spans its own points."""
    if recent or view.last_step is None:
        return None
    return (0.0, float(max(view.last_step, 1)))


def loss_chart(view: HistoryView, recent: bool = False) -> Chart:
    """Train and test loss against step, log scale."""
    curves = [Curve("train", TRAIN, *view.series("train_loss", 1, recent)),
              Curve("test", TEST, *view.series("test_loss", 1, recent))]
    return Chart("loss (log)" + window_name(recent), curves, log=True, xlim=_xlim(view, recent))


def nfa_chart(view: HistoryView, layer: int, quality: bool, recent: bool = False) -> Chart:
    """UC-NFA and C-NFA of ``layer`` against step (and feature quality on layer 1 when known)."""
    curves = [Curve("UC", UC, *view.series("uc_nfa", layer, recent)),
              Curve("C", CENTERED, *view.series("c_nfa", layer, recent))]
    if layer == 1 and quality:
        curves.append(Curve("quality", QUALITY, *view.series("feature_quality", 1, recent)))
    return Chart(f"correlation L{layer}" + window_name(recent), curves, ylim=unit_limits(curves),
                 xlim=_xlim(view, recent))


def hex_rgb(colour: str) -> tuple[int, int, int]:
    """``#1f77b4`` as (31, 119, 180)."""
    c = colour.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def arm_style(arm: Arm) -> tuple[tuple[int, int, int], str]:
    """An arm's colour and dash, from ``core.arms.PALETTE`` (the web app uses the same)."""
    return hex_rgb(arm.color), arm.dash


def compare_chart(arms: Sequence[Arm], views: Sequence[HistoryView], layer: int, key: str = "uc_nfa",
                  recent: bool = False) -> Chart:
    """One metric of ``layer`` for every arm, each in its own colour and dash."""
    curves = [Curve(arm.name, *_colour_steps(arm, view, key, layer, recent)) for arm, view in zip(arms, views)]
    name = {"uc_nfa": "UC-NFA", "c_nfa": "C-NFA", "feature_quality": "quality"}.get(key, key)
    lead = views[0] if views else None
    return Chart(f"{name} L{layer}" + window_name(recent), curves, ylim=unit_limits(curves),
                 xlim=_xlim(lead, recent) if lead is not None else None)


def _colour_steps(arm: Arm, view: HistoryView, key: str, layer: int, recent: bool):
    colour, dash = arm_style(arm)
    steps, values = view.series(key, layer, recent)
    return colour, steps, values, dash
