"""The claims ``reproduce`` checks: where each comes from, and how a verdict is reached.

Every claim names its source (a sentence of the paper's abstract, or prior NFA work the
abstract restates), the setting it is tested in and the time point it is measured at.
Algebraic identities are not claims: they are checks of this code (``identities``).

A check turns run histories into *cases*: one number per (experiment, layer, seed) that
must be positive for the claim to hold. The verdict holds only when every case is
positive. Each seed's *margin* is its smallest case, so a reader sees how close a verdict
is; a verdict is *clear* when every deciding case lies more than ``CLEAR_SE`` sampling
standard errors (from the finite measurement set) from 0, or, where no standard error is
measured, more than ``CLEAR_FLOOR`` from 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

ABSTRACT = ("Beaglehole, Mitliagkas, Agarwala, Feature learning as alignment: a structural property of "
            "gradient descent in non-linear neural networks, TMLR 2024, abstract")
PRIOR_NFA = ("Radhakrishnan, Beaglehole, Pandit, Belkin, Mechanism for feature learning in neural networks "
             "and backpropagation-free machine learning models, Science 2024 (the neural feature ansatz)")
PAPER_CODE = "the authors' MLP code (github.com/dmbeaglehole/centered_NFA, MLP/main.py)"

CLEAR_SE = 2.0
"""A case is clear of 0 when |value| > CLEAR_SE x its sampling standard error."""

CLEAR_FLOOR = 0.01
"""...or, where no standard error is measured, when |value| > CLEAR_FLOOR."""


@dataclass(frozen=True)
class Claim:
    """What a claim says, where it comes from, and where and when it is measured."""

    number: int
    statement: str
    source: str
    """``abstract`` or ``prior NFA work``."""
    quote: str
    """The sentence of the abstract it rests on (for prior work: the abstract's restatement)."""
    setting: str
    time_point: str
    when: str = ""
    """The time point in a few words, for tables."""

    @property
    def citation(self) -> str:
        ref = ABSTRACT if self.source == "abstract" else f"{PRIOR_NFA}, as the paper's abstract states it"
        return f'{ref}: "{self.quote}"'


CLAIMS: dict[int, Claim] = {c.number: c for c in (
    Claim(1, "Early in training C-NFA > UC-NFA in every hidden layer", "abstract",
          "We further establish that the alignment is driven by the interaction of weight changes induced "
          "by SGD with the pre-activation features",
          "baseline arm (the paper's optimiser, SGD) of every experiment; every hidden layer and seed",
          "the paper code's early point: the first measurement after the warm-up epoch "
          "(main.py measures after epoch 0, trained at lr 1e-4)", "early point"),
    Claim(2, "UC-NFA of layer 1 rises during training", "prior NFA work",
          "Prior works demonstrated that the gram matrices of the weights (the neural feature matrices, NFM) "
          "and the average gradient outer products (AGOP) become correlated during training",
          "baseline arm of every experiment; layer 1 judged, the other layers shown",
          "from the early point (the paper code's first measurement, its 'init' column in gen_csv.py) "
          "to the last step", "early point -> last step"),
    Claim(3, "As the centered term's share of the NFM grows, UC-NFA approaches C-NFA", "abstract",
          "motivated by the observation that the NFA is driven by this centered correlation",
          "every arm (baseline, control, SLO) of every experiment, every hidden layer, pooled per seed",
          "every measured step from the early point on", "every step from the early point"),
    Claim(4, "SLO targeted at layer l raises layer l's UC-NFA over the baseline, for each l", "abstract",
          "we introduce a simple optimization rule that dramatically increases the NFA correlations at "
          "any given layer",
          "experiments with SLO targeted at each hidden layer in turn, against the baseline from the same "
          "initialisation and batches; the control (SLO boost 1) shown",
          "the last step", "last step"),
    Claim(5, "SLO on layer 1 improves feature quality rho(NFM_1, G*) on synthetic targets", "abstract",
          "we introduce a simple optimization rule that dramatically increases the NFA correlations at "
          "any given layer and improves the quality of features learned",
          "synthetic targets (ground-truth AGOP G* known), SLO on layer 1 against the baseline from the "
          "same start; the control and test loss shown",
          "the last step", "last step"),
    Claim(6, "SLO on layer 1 raises layer 1's UC-NFA on real data (digits)", "abstract",
          "we introduce a simple optimization rule that dramatically increases the NFA correlations at "
          "any given layer",
          "the paper-digits experiment, SLO on layer 1 against the baseline from the same start; the "
          "control, the other layers and test accuracy shown",
          "the last step", "last step"),
)}
"""Claim number -> the claim. Identities are checks, listed in ``identities``, not here."""


# -- numbers -------------------------------------------------------------------------------

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


def num(x: float | None) -> str:
    """Four decimals, or scientific notation for tiny non-zero numbers."""
    if x is None or not math.isfinite(x):
        return "nan"
    return f"{x:.2e}" if x != 0 and abs(x) < 1e-3 else f"{x:.4f}"


def signed(x: float) -> str:
    """``+0.1234`` / ``-0.1234`` / ``nan``."""
    text = num(x)
    return text if text.startswith(("-", "nan")) else "+" + text


def quad(*errors: float) -> float:
    """sqrt of the sum of squares (NaN if any is NaN): the SE of a sum or difference."""
    return float(math.sqrt(sum(e * e for e in errors)))


# -- cases and verdicts ----------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    """One number a claim needs positive: a (cell, seed) with its sampling standard error."""

    cell: str
    """Where: ``experiment L<layer>`` or ``experiment``."""
    seed: int
    value: float
    se: float = math.nan

    @property
    def positive(self) -> bool:
        return math.isfinite(self.value) and self.value > 0

    @property
    def band(self) -> float:
        """How far from 0 the value must be to count as clear."""
        return CLEAR_SE * self.se if math.isfinite(self.se) else CLEAR_FLOOR

    @property
    def clear(self) -> bool:
        return math.isfinite(self.value) and abs(self.value) > self.band

    def text(self) -> str:
        se = f", SE {num(self.se)}" if math.isfinite(self.se) else ""
        return f"{self.cell} seed {self.seed}: {signed(self.value)}{se}"


@dataclass(frozen=True)
class Verdict:
    """What a list of cases says: holds, how clearly, the weakest cell, each seed's margin."""

    holds: bool | None
    clear: bool | None
    weakest: str
    value: Stat | None
    margins: dict[int, float]
    narrow: tuple[Case, ...]
    failing: tuple[Case, ...]

    @classmethod
    def of(cls, cases: list[Case]) -> "Verdict":
        if not cases:
            return cls(None, None, "", None, {}, (), ())
        cells: dict[str, list[float]] = {}
        margins: dict[int, float] = {}
        for c in cases:
            cells.setdefault(c.cell, []).append(c.value)
            v = c.value if math.isfinite(c.value) else -math.inf
            margins[c.seed] = min(margins.get(c.seed, math.inf), v)
        weakest = min(cells, key=lambda k: _sort_key(Stat.of(cells[k]).mean))
        failing = tuple(c for c in cases if not c.positive)
        holds = not failing
        clear = all(c.clear for c in cases) if holds else any(
            not math.isfinite(c.value) or c.value < -c.band for c in failing)
        narrow = tuple(c for c in cases if math.isfinite(c.value) and not c.clear)
        return cls(holds, clear, weakest, Stat.of(cells[weakest]), dict(sorted(margins.items())),
                   narrow, failing)

    def margins_text(self) -> str:
        """``seed 0 +0.1200, seed 1 +0.0400``."""
        return ", ".join(f"seed {s} {signed(m)}" for s, m in self.margins.items())


def _sort_key(mean: float) -> float:
    return -math.inf if math.isnan(mean) else mean


def count_positive(cases: list[Case]) -> str:
    """``k/n`` of the cases that are positive."""
    return f"{sum(c.positive for c in cases)}/{len(cases)}"


@dataclass(frozen=True)
class ClaimResult:
    """A claim's verdict, its numbers, and (when it fails or is flagged) the measured reason."""

    number: int
    verdict: Verdict
    criterion: str
    detail: str
    reason: str = ""
    """Why it failed (or why it held narrowly), from measured quantities; empty when clear."""
    flags: tuple[str, ...] = field(default=())
    """Warnings a reader must see beside the verdict (e.g. a baseline far slower than SLO)."""

    @property
    def claim(self) -> Claim:
        return CLAIMS[self.number]

    @property
    def holds(self) -> bool | None:
        return self.verdict.holds

    @property
    def value(self) -> Stat | None:
        return self.verdict.value

    @property
    def holds_text(self) -> str:
        return {True: "yes", False: "no", None: "n/a"}[self.holds]

    @property
    def clear_text(self) -> str:
        """``clear``, ``narrow`` or ``n/a``."""
        return {True: "clear", False: "narrow", None: "n/a"}[self.verdict.clear]

    @property
    def title(self) -> str:
        return f"{self.number}: {self.claim.statement}"


def no_data(number: int, criterion: str) -> ClaimResult:
    """The result of a claim none of whose runs are there."""
    return ClaimResult(number, Verdict.of([]), criterion, "no runs to check it on")


def narrow_reason(verdict: Verdict, limit: int = 3) -> str:
    """Names the cases within the clear band of 0 (empty when there are none)."""
    if not verdict.narrow:
        return ""
    cases = "; ".join(c.text() for c in sorted(verdict.narrow, key=lambda c: abs(c.value))[:limit])
    more = f" (and {len(verdict.narrow) - limit} more)" if len(verdict.narrow) > limit else ""
    return (f"{len(verdict.narrow)} case(s) lie within {CLEAR_SE:g} sampling SE (or {CLEAR_FLOOR:g} where "
            f"no SE is measured) of 0, so this verdict could flip with another measurement set or seed: "
            f"{cases}{more}")
