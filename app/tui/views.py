"""Which matrices the heatmap panels show: the ``k`` views and the ``c`` (centered) switch.

``panels(snap, layer, view, centered)`` returns the two panels to draw side by side;
it is pure, so tests and the compare view use it as the main screen does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from core.diagnostics import matrix_power
from core.engine import Snapshot

VIEWS = ("nfm-agop", "k-utku", "ground-truth")
"""The matrix views ``k`` cycles through (ground-truth only for synthetic targets)."""

VIEW_NAMES = {"nfm-agop": "NFM | AGOP", "k-utku": "K | U^T K U", "ground-truth": "NFM_1 | G*"}


@dataclass(frozen=True)
class Panel:
    """One heatmap: its matrix (None: nothing to draw), title and a note under it."""

    title: str
    matrix: np.ndarray | None
    note: str = ""


def available_views(snap: Snapshot | None) -> tuple[str, ...]:
    """The views that make sense for this run (no ground truth on real data)."""
    if snap is not None and snap.g_star is None:
        return VIEWS[:2]
    return VIEWS


def next_view(snap: Snapshot | None, view: str) -> str:
    """The view after ``view`` in the cycle."""
    views = available_views(snap)
    return views[(views.index(view) + 1) % len(views)] if view in views else views[0]


def _power(m: np.ndarray, alpha: float) -> np.ndarray:
    if alpha == 1:
        return m
    return matrix_power(torch.from_numpy(np.array(m)), alpha).numpy()


def _rho(v: float | None) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.3f}"


def nfm_agop(snap: Snapshot, layer: int, centered: bool) -> tuple[Panel, Panel]:
    """NFM beside AGOP^alpha (or their centered versions) with the correlation between them."""
    s, alpha = snap.layer(layer), snap.config.measure.alpha
    power = "" if alpha == 1 else f"^{alpha:g}"
    if centered:
        return (Panel(f"L{layer} centered NFM dW^T dW", s.centered_nfm, f"C-NFA {_rho(s.c_nfa)}"),
                Panel(f"centered AGOP{power} dW^T K dW", _power(s.centered_agop, alpha),
                      f"C-NFA {_rho(s.c_nfa)}"))
    return (Panel(f"L{layer} NFM W^T W", s.nfm, f"UC-NFA {_rho(s.uc_nfa)}"),
            Panel(f"AGOP{power} W^T K W", _power(s.agop, alpha), f"UC-NFA {_rho(s.uc_nfa)}"))


def k_utku(snap: Snapshot, layer: int) -> tuple[Panel, Panel]:
    """K beside U^T K U (diagonal when W's left singular vectors align with K)."""
    s = snap.layer(layer)
    return (Panel(f"L{layer} K (PTK covariance)", s.K, ""),
            Panel("U^T K U", s.utku, f"diag share {_rho(s.diag_share)}"))


def ground_truth(snap: Snapshot) -> tuple[Panel, Panel]:
    """Layer 1's NFM beside the target's true AGOP G* (both live in input space)."""
    s, alpha = snap.layer(1), snap.config.measure.alpha
    note = f"quality {_rho(s.feature_quality)}"
    if snap.g_star is None:
        return (Panel("L1 NFM W^T W", s.nfm, note), Panel("G*", None, "real data: no ground truth"))
    power = "" if alpha == 1 else f"^{alpha:g}"
    return (Panel("L1 NFM W^T W", s.nfm, note), Panel(f"G*{power} true AGOP", _power(snap.g_star, alpha), note))


def panels(snap: Snapshot, layer: int, view: str, centered: bool) -> tuple[Panel, Panel]:
    """The two panels of ``view`` for hidden layer ``layer``."""
    if view == "k-utku":
        return k_utku(snap, layer)
    if view == "ground-truth":
        return ground_truth(snap)
    return nfm_agop(snap, layer, centered)
