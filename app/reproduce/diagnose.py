"""Measured reasons for a verdict: the identity baseline, how far the weights moved, step sizes.

A failing claim is explained with numbers read from the same histories, never with a guess:

- the *identity baseline*: rho(NFM, I) and rho(AGOP, I) (``nfm_identity``, ``agop_identity``).
  When both are high, NFM and AGOP are close to multiples of the identity and correlate
  with each other for that reason alone (typical at initialisation when the input
  dimension is below the width), so UC-NFA starts high without any learned alignment;
- how far training moved the layer: ||dW||/||W|| (``rel_movement``) and the centered
  term's share of the NFM (``centered_share``);
- the sampling standard error of UC-NFA and C-NFA (``uc_nfa_se``, ``c_nfa_se``);
- each arm's step norm (``step_norm``), so a baseline that barely moves is not silently
  compared with SLO.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from app.reproduce.claims import num
from app.reproduce.results import ExpRuns, Group, band, value_at

IDENTITY_HIGH = 0.8
"""rho(NFM, I) and rho(AGOP, I) both above this: the identity baseline explains a high UC-NFA."""

SMALL_MOVEMENT = 0.5
"""||dW||/||W|| below this at the last step: W stays dominated by W0."""

SLOW_BASELINE = 0.1
"""A baseline whose median step norm is below this fraction of the control's (SLO boost 1) is flagged."""

STATE_KEYS = ("uc_nfa", "c_nfa", "uc_nfa_se", "c_nfa_se", "nfm_identity", "agop_identity",
              "rel_movement", "centered_share", "step_norm")


@dataclass(frozen=True)
class LayerState:
    """A layer's measured quantities at one step, mean over seeds (NaN where not measured)."""

    values: dict[str, float]

    def __getitem__(self, key: str) -> float:
        return self.values.get(key, math.nan)

    @property
    def identity_high(self) -> bool:
        return self["nfm_identity"] > IDENTITY_HIGH and self["agop_identity"] > IDENTITY_HIGH


def _nanmean(values: list[float]) -> float:
    v = np.asarray(values, dtype=np.float64)
    if not np.isfinite(v).any():
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(v))


def state(group: Group, layer: int, step: int) -> LayerState:
    """Mean over seeds of every STATE_KEYS value at the first measured step >= ``step``."""
    return LayerState({k: _nanmean([value_at(h, k, layer, step) for h in group.values()]) for k in STATE_KEYS})


def last_step(group: Group) -> int:
    """The largest last step over the group's histories."""
    return max((h.last_step or 0) for h in group.values()) if group else 0


def identity_text(s: LayerState) -> str:
    """``rho(NFM, I) 0.90, rho(AGOP, I) 0.89`` (or a note that they were not measured)."""
    if not (math.isfinite(s["nfm_identity"]) or math.isfinite(s["agop_identity"])):
        return "rho(NFM, I) and rho(AGOP, I) not measured"
    return f"rho(NFM, I) {num(s['nfm_identity'])}, rho(AGOP, I) {num(s['agop_identity'])}"


def dims_text(exp: ExpRuns) -> str:
    """``input dim 64 < width 256`` (empty when unknown)."""
    if exp.input_dim is None or exp.width is None:
        return ""
    rel = "<" if exp.input_dim < exp.width else (">" if exp.input_dim > exp.width else "=")
    return f"input dim {exp.input_dim} {rel} width {exp.width}"


def why_uc_falls(exp: ExpRuns, arm: str, layer: int) -> str:
    """Why a layer's UC-NFA did not rise from the early point to the end, from measured values."""
    g = exp.arm(arm)
    start, end = state(g, layer, exp.early_step), state(g, layer, last_step(g))
    low = _lowest(g, layer)
    parts = [f"{exp.name} layer {layer}: UC-NFA {num(start['uc_nfa'])} at the early point, lowest "
             f"{num(low[1])} (step {low[0]}), {num(end['uc_nfa'])} at the end"]
    dims = dims_text(exp)
    if start.identity_high:
        parts.append(f"it starts high because NFM and AGOP both start close to a multiple of the identity "
                     f"({identity_text(start)}{'; ' + dims if dims else ''}), which correlates them "
                     f"without any learned alignment")
    else:
        parts.append(f"identity baseline at the early point: {identity_text(start)}")
    moved = end["rel_movement"]
    if math.isfinite(moved):
        small = "; a small share, so W stays close to W0" if moved < SMALL_MOVEMENT else ""
        parts.append(f"at the end ||dW||/||W|| is {num(moved)} and the centered term is "
                     f"{num(end['centered_share'])} of the NFM{small}")
    return "; ".join(parts)


def _lowest(group: Group, layer: int) -> tuple[int, float]:
    """(step, value) of the lowest seed-mean UC-NFA over the run."""
    steps, mean, _ = band(group, "uc_nfa", layer)
    ok = np.isfinite(mean)
    if not ok.any():
        return 0, math.nan
    i = int(np.nanargmin(np.where(ok, mean, np.inf)))
    return int(steps[i]), float(mean[i])


def why_early_gap_fails(exp: ExpRuns, layer: int, gap: float, se: float) -> str:
    """Why C-NFA did not lead UC-NFA at the early point in one (experiment, layer)."""
    s = state(exp.arm("baseline"), layer, exp.early_step)
    parts = [f"{exp.name} layer {layer}: C-NFA - UC-NFA {num(gap)} (UC-NFA {num(s['uc_nfa'])}, "
             f"C-NFA {num(s['c_nfa'])})"]
    if math.isfinite(se) and abs(gap) <= 2 * se:
        parts.append(f"within 2 sampling SE ({num(se)}) of 0")
    if s.identity_high:
        parts.append(f"UC-NFA is high from the identity baseline ({identity_text(s)})")
    return ", ".join(parts)


# -- step norms: is the comparison fair? ----------------------------------------------------

def median_step_norm(group: Group, layer: int, after: int) -> float:
    """Median over seeds and measured steps > ``after`` of a layer's step norm (NaN if not recorded)."""
    values = []
    for h in group.values():
        steps, v = h.series("step_norm", layer)
        values.extend(v[(steps > after) & np.isfinite(v)])
    return float(np.median(values)) if values else math.nan


@dataclass(frozen=True)
class Pace:
    """Median step norms of one layer in each arm, and the baseline's ratio to the control's."""

    experiment: str
    layer: int
    norms: dict[str, float]

    @property
    def ratio(self) -> float:
        """baseline / control (NaN when either is missing)."""
        b, c = self.norms.get("baseline", math.nan), self.norms.get("control", math.nan)
        return b / c if math.isfinite(b) and math.isfinite(c) and c > 0 else math.nan

    @property
    def slow(self) -> bool:
        return math.isfinite(self.ratio) and self.ratio < SLOW_BASELINE


def paces(exp: ExpRuns) -> list[Pace]:
    """A Pace per hidden layer of the experiment (arms in the order they appear)."""
    base = exp.arm("baseline")
    layers = sorted({l for h in base.values() for l in h.layers()})
    return [Pace(exp.name, l, {a: median_step_norm(g, l, exp.early_step) for a, g in exp.arms.items()})
            for l in layers]


def slow_baseline_flag(exp: ExpRuns) -> str:
    """A warning when the baseline's steps are far smaller than the control's, else ''."""
    slow = [p for p in paces(exp) if p.slow]
    if not slow:
        return ""
    worst = min(slow, key=lambda p: p.ratio)
    return (f"{exp.name}: the baseline's median step norm is below {SLOW_BASELINE:g}x the control's in "
            f"{len(slow)} layer(s) (layer {worst.layer}: {num(worst.norms['baseline'])} vs "
            f"{num(worst.norms['control'])}, {1 / worst.ratio:.0f}x smaller), so a gain over it may come "
            f"from moving faster; compare with the control")
