"""Identities: checks of this code, reported apart from the claims and never counted among them.

An identity holds by algebra whatever training does, so its passing says the code computes
what it says, not that the paper is right. Each check reads only ``final.npz`` (and the
last rows of ``metrics.csv``), so a reader can redo it from the saved files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from app.reproduce.claims import num
from app.reproduce.results import Run
from app.reproduce.results import last_value as final_value

SOURCE = "identity: a check of this code"

TOLERANCE = 1e-6
"""Largest allowed difference between the two sides of an identity."""


@dataclass(frozen=True)
class IdentityResult:
    """One identity over every run and layer: the largest difference between its two sides."""

    key: str
    statement: str
    holds: bool | None
    worst: float
    pairs: int
    detail: str
    tolerance: float = TOLERANCE

    @property
    def holds_text(self) -> str:
        return {True: "yes", False: "no", None: "n/a"}[self.holds]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of two flattened matrices (NaN when either is zero)."""
    a, b = np.ravel(a), np.ravel(b)
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / denom) if denom > 0 else math.nan


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine after subtracting each matrix's mean entry (the paper code's ``mat_cov``)."""
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    return cosine(a - a.mean(), b - b.mean())


def _layers(final: dict[str, np.ndarray]) -> list[int]:
    layer, out = 1, []
    while f"layer{layer}.W" in final:
        out.append(layer)
        layer += 1
    return out


def alignment_pairs(final: dict[str, np.ndarray]) -> list[tuple[float, float]]:
    """Per layer: (rho_cos(NFM, AGOP) from the saved matrices, rho_cos(S^2, S U^T K U S) from W and K)."""
    out = []
    for l in _layers(final):
        w, k = final[f"layer{l}.W"].astype(np.float64), final[f"layer{l}.K"].astype(np.float64)
        u, s, _ = np.linalg.svd(w, full_matrices=False)
        aligned = s[:, None] * (u.T @ k @ u) * s[None, :]
        out.append((cosine(final[f"layer{l}.nfm"], final[f"layer{l}.agop"]), cosine(np.diag(s * s), aligned)))
    return out


def _result(key: str, statement: str, pairs: list[tuple[float, float]], detail: str) -> IdentityResult:
    undefined = sum(math.isnan(x) and math.isnan(y) for x, y in pairs)
    pairs = [(x, y) for x, y in pairs if not (math.isnan(x) and math.isnan(y))]
    if not pairs:
        return IdentityResult(key, statement, None, math.nan, 0, "no saved runs to check it on")
    worst = max(abs(x - y) if math.isfinite(x - y) else math.inf for x, y in pairs)
    skipped = (f"; {undefined} pair(s) left out where both sides are undefined (a zero AGOP: a network with a "
               f"dead layer)" if undefined else "")
    return IdentityResult(key, statement, worst < TOLERANCE, worst, len(pairs),
                          f"largest |difference| {num(worst)} over {len(pairs)} (run, layer) pairs{skipped}; {detail}")


def check_alignment(finals: list[dict[str, np.ndarray]]) -> IdentityResult:
    """A: with cosine rho, rho(NFM, AGOP) = rho(S^2, S U^T K U S), from every run's final.npz."""
    pairs = [p for f in finals for p in alignment_pairs(f)]
    rhos = [x for x, _ in pairs if math.isfinite(x)]
    detail = (f"rho_cos(NFM, AGOP) ranged {min(rhos):.4f} to {max(rhos):.4f} at the last step; U, S from numpy's "
              f"SVD of the saved W" if rhos else "")
    return _result("A", "With cosine rho, rho(NFM, AGOP) = rho(S^2, S U^T K U S) (W = U S V^T): the abstract's "
                   "'equivalent to alignment' as algebra", pairs, detail)


def recompute_pairs(run: Run) -> list[tuple[float, float]]:
    """Per layer: (UC-NFA in metrics.csv's last row, Pearson rho of final.npz's NFM and AGOP)."""
    measure = run.config.get("measure") or {}
    if measure.get("correlation", "pearson") != "pearson" or measure.get("alpha", 1.0) != 1.0:
        return []
    return [(final_value(run.history, "uc_nfa", l), pearson(run.final[f"layer{l}.nfm"], run.final[f"layer{l}.agop"]))
            for l in _layers(run.final)]


def check_recompute(runs: list[Run]) -> IdentityResult:
    """B: metrics.csv's last UC-NFA equals the Pearson rho recomputed from final.npz's NFM and AGOP."""
    pairs = [p for r in runs if r.final for p in recompute_pairs(r)]
    return _result("B", "The last UC-NFA in metrics.csv equals rho(NFM, AGOP) recomputed from final.npz",
                   pairs, "final.npz holds the weights of the last measured step, so a reader can redo the number")


def check_identities(runs: list[Run]) -> list[IdentityResult]:
    """Every identity, in order."""
    return [check_alignment([r.final for r in runs if r.final]), check_recompute(runs)]
