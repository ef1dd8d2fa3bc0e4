"""The paper's claims, each checked from run histories (or final arrays) alone.

Every check is a pure function of ``History`` objects grouped by experiment and seed,
so tests can feed it synthetic histories where the claim must hold and where it must
not. A comparison holds only when it holds in *every* seed (and every experiment and
layer it covers); the value is the weakest case's mean and std over seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from app.reproduce.results import Group, final_value, initial_value
from core.history import History

EARLY_FRACTION = 0.1
"""Claim 1's "early": measured steps in (0, 10% of the run]."""

IDENTITY_TOLERANCE = 1e-6
"""Claim 3: largest allowed |rho(NFM, AGOP) - rho(S^2, S U^T K U S)|."""

SHARE_BINS = (0.0, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0)
"""Claim 4: centered-share bins of the gap table."""

CLAIMS = {
    1: "Early in training C-NFA > UC-NFA in every hidden layer",
    2: "UC-NFA rises during training in the first layer",
    3: "With cosine rho, rho(NFM, AGOP) = rho(S^2, S U^T K U S)",
    4: "As the centered share of the NFM grows, UC-NFA approaches C-NFA",
    5: "SLO on layer l raises layer l's UC-NFA over SGD, for each l",
    6: "SLO on layer 1 improves feature quality on synthetic targets",
    7: "SLO on layer 1 raises layer 1's UC-NFA on real data (digits)",
}
"""Claim number -> the one-line statement used in claims.csv."""


@dataclass(frozen=True)
class Stat:
    """Mean and sample std (ddof 1; 0 for one seed) of per-seed values."""

    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values) -> "Stat":
        v = np.asarray(list(values), dtype=np.float64)
        if v.size == 0:
            return cls(math.nan, math.nan, 0)
        std = float(np.std(v, ddof=1)) if v.size > 1 else 0.0
        return cls(float(np.mean(v)), std, int(v.size))

    def __str__(self) -> str:
        return f"{num(self.mean)} ± {num(self.std)}"

    def signed(self) -> str:
        """Like str() but with an explicit sign on the mean."""
        text = str(self)
        return text if text.startswith(("-", "nan")) else "+" + text


def num(x: float) -> str:
    """Four decimals, or scientific notation for tiny non-zero numbers."""
    if x is None or not math.isfinite(x):
        return "nan"
    return f"{x:.2e}" if x != 0 and abs(x) < 1e-3 else f"{x:.4f}"


@dataclass(frozen=True)
class ClaimResult:
    """A row of claims.csv plus the criterion the report prints."""

    number: int
    holds: bool | None
    value: Stat | None
    detail: str
    criterion: str

    @property
    def claim(self) -> str:
        return f"{self.number}: {CLAIMS[self.number]}"

    @property
    def holds_text(self) -> str:
        return {True: "yes", False: "no", None: "n/a"}[self.holds]


def _no_data(number: int, criterion: str) -> ClaimResult:
    return ClaimResult(number, None, None, "no runs to check it on", criterion)


def _all_positive(values) -> bool:
    v = list(values)
    return bool(v) and all(math.isfinite(x) and x > 0 for x in v)


def _mean(values) -> float:
    return Stat.of(values).mean


def _layers(group: Group) -> list[int]:
    return sorted({l for h in group.values() for l in h.layers()})


def _weakest(cells: dict[str, list[float]]) -> tuple[str, Stat]:
    """The cell whose mean over seeds is smallest (NaN counts as smallest)."""
    stats = {k: Stat.of(v) for k, v in cells.items()}
    key = min(stats, key=lambda k: -math.inf if math.isnan(stats[k].mean) else stats[k].mean)
    return key, stats[key]


def _count(cells: dict[str, list[float]]) -> str:
    values = [x for v in cells.values() for x in v]
    return f"{sum(math.isfinite(x) and x > 0 for x in values)}/{len(values)}"


# -- claim 1 ---------------------------------------------------------------------------

def early_window(steps: np.ndarray, fraction: float = EARLY_FRACTION) -> np.ndarray:
    """Mask of the measured steps in (0, fraction * last step]; the first step > 0 if none is."""
    later = steps > 0
    if not later.any():
        return later
    window = later & (steps <= fraction * steps.max())
    return window if window.any() else steps == steps[later].min()


def _early(history: History, layer: int, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(C-NFA, UC-NFA) in the early window."""
    steps, uc = history.series("uc_nfa", layer)
    _, c = history.series("c_nfa", layer)
    window = early_window(steps, fraction)
    return c[window], uc[window]


def early_gap(history: History, layer: int, fraction: float = EARLY_FRACTION) -> float:
    """Mean of C-NFA - UC-NFA over the early window (NaN if empty or undefined there)."""
    c, uc = _early(history, layer, fraction)
    gap = c - uc
    return float(np.mean(gap)) if gap.size and np.isfinite(gap).all() else math.nan


def early_steps_ahead(history: History, layer: int, fraction: float = EARLY_FRACTION) -> tuple[int, int]:
    """(measurements in the early window with C-NFA > UC-NFA, measurements in it)."""
    c, uc = _early(history, layer, fraction)
    return int(np.sum(c > uc)), int(c.size)


def check_early_centered(groups: dict[str, Group], fraction: float = EARLY_FRACTION) -> ClaimResult:
    """Claim 1 on the SGD runs: the early gap C-NFA - UC-NFA is positive in every layer and seed."""
    criterion = (f"C-NFA - UC-NFA, averaged over the measured steps in (0, {fraction:.0%} of the run], "
                 "is positive in every experiment, hidden layer and seed (SGD runs)")
    cells = {f"{exp} L{l}": [early_gap(h, l, fraction) for h in g.values()]
             for exp, g in groups.items() for l in _layers(g)}
    if not cells:
        return _no_data(1, criterion)
    key, weakest = _weakest(cells)
    parts = [f"{k} {Stat.of(v)}" for k, v in cells.items()]
    ahead = [early_steps_ahead(h, l, fraction) for g in groups.values() for h in g.values() for l in h.layers()]
    detail = (f"early gap C-NFA - UC-NFA: {'; '.join(parts)}. Positive in {_count(cells)} "
              f"(experiment, layer, seed) cases; smallest mean: {key}. Step by step, C-NFA > UC-NFA at "
              f"{sum(a for a, _ in ahead)} of {sum(n for _, n in ahead)} early measurements")
    holds = all(_all_positive(v) for v in cells.values())
    return ClaimResult(1, holds, weakest, detail, criterion)


# -- claim 2 ---------------------------------------------------------------------------

def uc_change(history: History, layer: int) -> float:
    """Final minus initial UC-NFA of one layer."""
    return final_value(history, "uc_nfa", layer) - initial_value(history, "uc_nfa", layer)


def check_uc_rises(groups: dict[str, Group]) -> ClaimResult:
    """Claim 2 on the SGD runs: layer 1's UC-NFA ends higher than it started, in every seed."""
    criterion = ("final minus initial UC-NFA of layer 1 is positive in every experiment and seed "
                 "(SGD runs); the other layers are shown, not judged")
    if not groups:
        return _no_data(2, criterion)
    first = {exp: [uc_change(h, 1) for h in g.values()] for exp, g in groups.items()}
    key, weakest = _weakest(first)
    parts = []
    for exp, g in groups.items():
        layers = ", ".join(f"L{l} {_mean(initial_value(h, 'uc_nfa', l) for h in g.values()):.3f} -> "
                           f"{_finals(g, 'uc_nfa', l).mean:.3f} ({Stat.of(uc_change(h, l) for h in g.values()).signed()})"
                           for l in _layers(g))
        parts.append(f"{exp}: {layers}")
    detail = (f"UC-NFA final - initial: {'; '.join(parts)}. Layer 1 rose in {_count(first)} runs; "
              f"smallest mean: {key}")
    holds = all(_all_positive(v) for v in first.values())
    return ClaimResult(2, holds, weakest, detail, criterion)


# -- claim 3 ---------------------------------------------------------------------------

def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of two flattened matrices."""
    a, b = np.ravel(a), np.ravel(b)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def identity_gaps(final: dict[str, np.ndarray]) -> list[tuple[float, float]]:
    """Per layer: (rho_cos(NFM, AGOP) from the saved matrices, rho_cos(S^2, S U^T K U S) from W and K)."""
    out = []
    layer = 1
    while f"layer{layer}.W" in final:
        w, k = final[f"layer{layer}.W"], final[f"layer{layer}.K"]
        u, s, _ = np.linalg.svd(w, full_matrices=False)
        aligned = s[:, None] * (u.T @ k @ u) * s[None, :]
        out.append((cosine(final[f"layer{layer}.nfm"], final[f"layer{layer}.agop"]),
                    cosine(np.diag(s * s), aligned)))
        layer += 1
    return out


def check_identity(finals: dict[int, list[dict[str, np.ndarray]]],
                   tolerance: float = IDENTITY_TOLERANCE) -> ClaimResult:
    """Claim 3 on every run's final.npz: the two cosine correlations agree within ``tolerance``."""
    criterion = (f"|rho_cos(NFM, AGOP) - rho_cos(S^2, S U^T K U S)| < {tolerance:g} for every run and "
                 "layer, NFM and AGOP as saved by the engine, U and S from numpy's SVD of the saved W")
    per_seed, pairs = {}, []
    for seed, arrays in finals.items():
        gaps = [p for a in arrays for p in identity_gaps(a)]
        pairs += gaps
        per_seed[seed] = max((abs(x - y) for x, y in gaps), default=math.nan)
    if not pairs:
        return _no_data(3, criterion)
    worst = max(per_seed.values())
    rhos = [x for x, _ in pairs]
    detail = (f"largest |difference| {num(worst)} over {len(pairs)} (run, layer) pairs at the final step; "
              f"rho_cos(NFM, AGOP) ranged {min(rhos):.4f} to {max(rhos):.4f}")
    holds = all(math.isfinite(v) and v < tolerance for v in per_seed.values())
    return ClaimResult(3, holds, Stat.of(per_seed.values()), detail, criterion)


# -- claim 4 ---------------------------------------------------------------------------

def share_gap_points(histories: list[History]) -> tuple[np.ndarray, np.ndarray]:
    """(centered share, |C-NFA - UC-NFA|) at every measured step > 0 of every layer."""
    shares, gaps = [], []
    for h in histories:
        for layer in h.layers():
            steps, share = h.series("centered_share", layer)
            _, uc = h.series("uc_nfa", layer)
            _, c = h.series("c_nfa", layer)
            ok = (steps > 0) & np.isfinite(share) & np.isfinite(uc) & np.isfinite(c)
            shares.append(share[ok])
            gaps.append(np.abs(c[ok] - uc[ok]))
    if not shares:
        return np.array([]), np.array([])
    return np.concatenate(shares), np.concatenate(gaps)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties); NaN for fewer than 3 points."""
    if x.size < 3:
        return math.nan
    rx, ry = _ranks(x), _ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = np.linalg.norm(rx) * np.linalg.norm(ry)
    return float(rx @ ry / denom) if denom > 0 else math.nan


def _ranks(v: np.ndarray) -> np.ndarray:
    """Ranks 1..n, tied values sharing their average rank."""
    _, inverse, counts = np.unique(v, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return ((ends - (counts - 1) / 2)[inverse]).astype(np.float64)


def binned_gaps(share: np.ndarray, gap: np.ndarray, bins=SHARE_BINS) -> list[tuple[float, float, float, int]]:
    """(low, high, mean gap, count) for every non-empty share bin."""
    out = []
    for lo, hi in zip(bins, bins[1:]):
        inside = (share >= lo) & ((share < hi) if hi < bins[-1] else (share <= hi))
        if inside.any():
            out.append((lo, hi, float(gap[inside].mean()), int(inside.sum())))
    return out


def check_share_gap(by_seed: dict[int, list[History]]) -> ClaimResult:
    """Claim 4 on all runs: the gap |C-NFA - UC-NFA| falls as the centered share grows."""
    criterion = ("Spearman rank correlation between the centered term's share of the NFM and "
                 "|C-NFA - UC-NFA|, pooled over every run, layer and measured step > 0 of a seed, "
                 "is negative in every seed")
    rhos = {seed: spearman(*share_gap_points(hs)) for seed, hs in by_seed.items()}
    if not rhos:
        return _no_data(4, criterion)
    share, gap = share_gap_points([h for hs in by_seed.values() for h in hs])
    table = ", ".join(f"share {lo:g}-{hi:g}: {g:.3f} (n={n})" for lo, hi, g, n in binned_gaps(share, gap))
    detail = (f"mean gap by centered share: {table}. Spearman per seed: "
              f"{', '.join(f'{r:.3f}' for r in rhos.values())}")
    holds = all(math.isfinite(r) and r < 0 for r in rhos.values())
    return ClaimResult(4, holds, Stat.of(rhos.values()), detail, criterion)


# -- claims 5 to 7: SLO against SGD from the same initialisation --------------------------

def paired(base: Group, other: Group, key: str, layer: int) -> list[float]:
    """Per common seed: final ``key`` of ``other`` minus that of ``base``."""
    return [final_value(other[s], key, layer) - final_value(base[s], key, layer)
            for s in sorted(base) if s in other]


def _finals(g: Group, key: str, layer: int = 1) -> Stat:
    return Stat.of(final_value(h, key, layer) for h in g.values())


def check_slo_layers(base: dict[str, Group], slo: dict[str, dict[int, Group]]) -> ClaimResult:
    """Claim 5: SLO targeted at layer l ends with a higher layer-l UC-NFA than SGD, every l and seed."""
    criterion = ("final UC-NFA of layer l with SLO targeted at l minus that with SGD (same seed, "
                 "same initial weights and batches) is positive for every layer l, experiment and seed")
    cells, parts = {}, []
    for exp, targets in slo.items():
        for l, g in sorted(targets.items()):
            cells[f"{exp} L{l}"] = paired(base.get(exp, {}), g, "uc_nfa", l)
            parts.append(f"{exp} L{l}: {_finals(base.get(exp, {}), 'uc_nfa', l).mean:.3f} -> "
                         f"{_finals(g, 'uc_nfa', l).mean:.3f} ({Stat.of(cells[f'{exp} L{l}']).signed()})")
    if not any(cells.values()):
        return _no_data(5, criterion)
    key, weakest = _weakest(cells)
    detail = (f"UC-NFA SGD -> SLO on that layer: {'; '.join(parts)}. Higher in {_count(cells)} "
              f"(layer, seed) pairs; smallest mean gain: {key}")
    holds = all(_all_positive(v) for v in cells.values())
    return ClaimResult(5, holds, weakest, detail, criterion)


def check_feature_quality(base: dict[str, Group], slo: dict[str, Group]) -> ClaimResult:
    """Claim 6: SLO on layer 1 ends with a higher feature quality than SGD, every target and seed."""
    criterion = ("final feature quality rho(NFM_1, G*) with SLO on layer 1 minus that with SGD "
                 "(same seed and start) is positive for every synthetic target and seed; "
                 "test loss reported beside it, not judged")
    cells, parts = {}, []
    for exp, g in slo.items():
        b = base.get(exp, {})
        cells[exp] = paired(b, g, "feature_quality", 1)
        parts.append(f"{exp}: quality {_finals(b, 'feature_quality').mean:.3f} -> "
                     f"{_finals(g, 'feature_quality').mean:.3f} ({Stat.of(cells[exp]).signed()}), "
                     f"test loss {_finals(b, 'test_loss')} -> {_finals(g, 'test_loss')}")
    if not any(cells.values()):
        return _no_data(6, criterion)
    key, weakest = _weakest(cells)
    detail = f"SGD -> SLO on layer 1: {'; '.join(parts)}. Higher in {_count(cells)} runs; smallest gain: {key}"
    holds = all(_all_positive(v) for v in cells.values())
    return ClaimResult(6, holds, weakest, detail, criterion)


def check_real_data(base: Group, slo: Group, name: str = "digits") -> ClaimResult:
    """Claim 7: on real data, SLO on layer 1 ends with a higher layer-1 UC-NFA than SGD, every seed."""
    criterion = (f"final layer-1 UC-NFA on {name} with SLO on layer 1 minus that with SGD (same seed "
                 "and start) is positive in every seed; the other layers and test accuracy are shown")
    gains = paired(base, slo, "uc_nfa", 1)
    if not gains:
        return _no_data(7, criterion)
    layers = ", ".join(f"L{l} {_finals(base, 'uc_nfa', l).mean:.3f} -> {_finals(slo, 'uc_nfa', l).mean:.3f}"
                       for l in _layers(base))
    detail = (f"UC-NFA SGD -> SLO on layer 1: {layers}. Layer 1 higher in {_count({'': gains})} seeds; "
              f"test accuracy {_finals(base, 'test_accuracy')} -> {_finals(slo, 'test_accuracy')}, "
              f"test loss {_finals(base, 'test_loss')} -> {_finals(slo, 'test_loss')}")
    return ClaimResult(7, _all_positive(gains), Stat.of(gains), detail, criterion)
