"""Claims 1 to 3: how UC-NFA and C-NFA develop under the paper's optimiser.

Each check is a pure function of ``ExpRuns`` (histories by experiment, arm and seed), so
tests feed it synthetic histories where the claim must hold and where it must not.
"""

from __future__ import annotations

import math

import numpy as np

from app.reproduce import diagnose as D
from app.reproduce.claims import (Case, ClaimResult, Stat, Verdict, count_positive, narrow_reason, no_data,
                                  num, quad, signed)
from app.reproduce.results import ExpRuns, Group, step_at, value_at

BASELINE = "baseline"


def layers_of(group: Group) -> list[int]:
    """The hidden layers measured in any history of the group."""
    return sorted({l for h in group.values() for l in h.layers()})


def _reasons(parts: list[str], verdict: Verdict) -> str:
    text = "; ".join(p for p in parts if p)
    narrow = narrow_reason(verdict)
    return ". ".join(t for t in (text, narrow) if t)


# -- claim 1 --------------------------------------------------------------------------------

def early_case(exp: ExpRuns, layer: int, seed: int) -> Case:
    """C-NFA - UC-NFA at the early point of one baseline run, with its sampling SE."""
    h = exp.arm(BASELINE)[seed]
    at = exp.early_step
    gap = value_at(h, "c_nfa", layer, at) - value_at(h, "uc_nfa", layer, at)
    se = quad(value_at(h, "c_nfa_se", layer, at), value_at(h, "uc_nfa_se", layer, at))
    return Case(f"{exp.name} L{layer}", seed, gap, se)


def check_early_centered(exps: dict[str, ExpRuns]) -> ClaimResult:
    """Claim 1: C-NFA - UC-NFA > 0 at the early point, every experiment, layer and seed (baseline)."""
    criterion = ("C-NFA - UC-NFA at the first measured step at or after the end of the warm-up is positive in "
                 "every experiment, hidden layer and seed of the baseline arm")
    cases = [early_case(e, l, s) for e in exps.values() for s in e.arm(BASELINE)
             for l in layers_of(e.arm(BASELINE))]
    if not cases:
        return no_data(1, criterion)
    verdict = Verdict.of(cases)
    cells = _cells(cases)
    points = ", ".join(f"{e.name} step {_early_steps(e)}" for e in exps.values() if e.arm(BASELINE))
    detail = (f"early point: {points}. C-NFA - UC-NFA per (experiment, layer), mean ± std over seeds: "
              f"{'; '.join(f'{k} {v}' for k, v in cells.items())}. Positive in {count_positive(cases)} "
              f"cases; weakest: {verdict.weakest}; per-seed margin: {verdict.margins_text()}")
    failing = {(c.cell, c.seed): c for c in verdict.failing}
    reasons = []
    for cell in dict.fromkeys(c.cell for c in failing.values()):
        exp_name, layer = cell.rsplit(" L", 1)
        mine = [c for c in failing.values() if c.cell == cell]
        worst = min(mine, key=lambda c: c.value if math.isfinite(c.value) else -math.inf)
        reasons.append(f"fails in seed(s) {', '.join(str(c.seed) for c in mine)}: " + D.why_early_gap_fails(
            exps[exp_name], int(layer), worst.value, worst.se))
    return ClaimResult(1, verdict, criterion, detail, _reasons(reasons, verdict))


def _cells(cases: list[Case]) -> dict[str, Stat]:
    cells: dict[str, list[float]] = {}
    for c in cases:
        cells.setdefault(c.cell, []).append(c.value)
    return {k: Stat.of(v) for k, v in cells.items()}


def _early_steps(exp: ExpRuns) -> str:
    """The measured step(s) used as the early point (one number when every seed agrees)."""
    steps = sorted({step_at(h, exp.early_step) for h in exp.arm(BASELINE).values()} - {None})
    return "/".join(map(str, steps)) or "none"


# -- claim 2 --------------------------------------------------------------------------------

def rise_case(exp: ExpRuns, layer: int, seed: int, arm: str = BASELINE) -> Case:
    """Final minus early-point UC-NFA of one run, with its sampling SE."""
    h = exp.arm(arm)[seed]
    last = h.last_step or 0
    rise = value_at(h, "uc_nfa", layer, last) - value_at(h, "uc_nfa", layer, exp.early_step)
    se = quad(value_at(h, "uc_nfa_se", layer, last), value_at(h, "uc_nfa_se", layer, exp.early_step))
    return Case(f"{exp.name}" if layer == 1 else f"{exp.name} L{layer}", seed, rise, se)


def check_uc_rises(exps: dict[str, ExpRuns]) -> ClaimResult:
    """Claim 2: layer 1's UC-NFA ends above its early-point value, every experiment and seed (baseline)."""
    criterion = ("final UC-NFA of layer 1 minus its value at the early point is positive in every experiment "
                 "and seed of the baseline arm; the other layers are shown, not judged")
    cases = [rise_case(e, 1, s) for e in exps.values() for s in e.arm(BASELINE)]
    if not cases:
        return no_data(2, criterion)
    verdict = Verdict.of(cases)
    parts = []
    for e in exps.values():
        g = e.arm(BASELINE)
        if not g:
            continue
        layers = ", ".join(
            f"L{l} {num(D.state(g, l, e.early_step)['uc_nfa'])} -> {num(D.state(g, l, D.last_step(g))['uc_nfa'])} "
            f"({Stat.of(rise_case(e, l, s).value for s in g).signed()})" for l in layers_of(g))
        parts.append(f"{e.name}: {layers}")
    detail = (f"UC-NFA early point -> last step (change, mean ± std over seeds): {'; '.join(parts)}. Layer 1 "
              f"rose in {count_positive(cases)} runs; weakest: {verdict.weakest}; per-seed margin: "
              f"{verdict.margins_text()}")
    failed = dict.fromkeys(c.cell for c in verdict.failing)
    reasons = [D.why_uc_falls(exps[name], BASELINE, 1) for name in failed]
    return ClaimResult(2, verdict, criterion, detail, _reasons(reasons, verdict))


# -- claim 3 --------------------------------------------------------------------------------

def share_gap_points(exps: list[ExpRuns], seed: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(centered share, |C-NFA - UC-NFA|, number of series) from the early point on, every arm and layer."""
    shares, gaps, series = [], [], 0
    for e in exps:
        for g in e.arms.values():
            h = g.get(seed)
            if h is None:
                continue
            for layer in h.layers():
                steps, share = h.series("centered_share", layer)
                _, uc = h.series("uc_nfa", layer)
                _, c = h.series("c_nfa", layer)
                ok = (steps >= e.early_step) & np.isfinite(share) & np.isfinite(uc) & np.isfinite(c)
                if ok.any():
                    shares.append(share[ok])
                    gaps.append(np.abs(c[ok] - uc[ok]))
                    series += 1
    if not shares:
        return np.array([]), np.array([]), 0
    return np.concatenate(shares), np.concatenate(gaps), series


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties); NaN for fewer than 3 points."""
    if x.size < 3:
        return math.nan
    rx, ry = _ranks(x), _ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = np.linalg.norm(rx) * np.linalg.norm(ry)
    return float(np.clip(rx @ ry / denom, -1.0, 1.0)) if denom > 0 else math.nan


def _ranks(v: np.ndarray) -> np.ndarray:
    """Ranks 1..n, tied values sharing their average rank."""
    _, inverse, counts = np.unique(v, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return ((ends - (counts - 1) / 2)[inverse]).astype(np.float64)


def spearman_se(rho: float, n_series: int) -> float:
    """SE of a Spearman rho counting each (run, layer) series once (its steps are not independent).

    Fisher's z has SE sqrt(1.06 / (n - 3)) for Spearman's rho (Fieller, Hartley, Pearson 1957);
    times (1 - rho^2) back on the rho scale. NaN below 4 series.
    """
    if n_series < 4 or not math.isfinite(rho):
        return math.nan
    return (1 - rho * rho) * math.sqrt(1.06 / (n_series - 3))


SHARE_BINS = (0.0, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0)
"""Centered-share bins of claim 3's gap table."""


def binned_gaps(share: np.ndarray, gap: np.ndarray, bins=SHARE_BINS) -> list[tuple[float, float, float, int]]:
    """(low, high, mean gap, count) for every non-empty share bin."""
    out = []
    for lo, hi in zip(bins, bins[1:]):
        inside = (share >= lo) & ((share < hi) if hi < bins[-1] else (share <= hi))
        if inside.any():
            out.append((lo, hi, float(gap[inside].mean()), int(inside.sum())))
    return out


def check_share_gap(exps: dict[str, ExpRuns]) -> ClaimResult:
    """Claim 3: Spearman(centered share, -|C-NFA - UC-NFA|) > 0 in every seed, all runs pooled."""
    criterion = ("Spearman rank correlation between the centered term's share of the NFM and -|C-NFA - UC-NFA| "
                 "(positive: the gap closes as the share grows), pooled over every arm, experiment, layer and "
                 "measured step from the early point on, is positive in every seed; its SE counts each (run, "
                 "layer) series once")
    seeds = sorted({s for e in exps.values() for g in e.arms.values() for s in g})
    cases = []
    for seed in seeds:
        share, gap, n = share_gap_points(list(exps.values()), seed)
        rho = spearman(share, -gap)
        cases.append(Case("all runs", seed, rho, spearman_se(rho, n)))
    if not cases:
        return no_data(3, criterion)
    verdict = Verdict.of(cases)
    pooled = [share_gap_points(list(exps.values()), s) for s in seeds]
    share = np.concatenate([p[0] for p in pooled])
    gap = np.concatenate([p[1] for p in pooled])
    table = ", ".join(f"share {lo:g}-{hi:g}: {g:.3f} (n={n})" for lo, hi, g, n in binned_gaps(share, gap))
    detail = (f"mean |C-NFA - UC-NFA| by centered share: {table}. Spearman per seed: "
              f"{', '.join(f'seed {c.seed} {signed(c.value)} (SE {num(c.se)})' for c in cases)}")
    reason = ""
    if verdict.failing:
        reason = ("the gap did not close as the centered share grew in seed(s) "
                  f"{', '.join(str(c.seed) for c in verdict.failing)}; see the share table")
    return ClaimResult(3, verdict, criterion, detail, _reasons([reason], verdict))
