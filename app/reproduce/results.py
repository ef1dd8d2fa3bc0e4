"""Reading run folders back: the analysis sees only ``metrics.csv`` and ``final.npz``.

``plan.json`` says which folder is which experiment, variant and seed; nothing else of
the runner (no engine, no torch) is needed, so the folders may come from anywhere.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.history import History
from core.iofiles import read_npz


@dataclass(frozen=True)
class Run:
    """One finished run as the analysis sees it."""

    experiment: str
    variant: str
    seed: int
    planned_steps: int
    history: History
    final: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    config: dict = field(default_factory=dict, repr=False)
    """The run's config.json as a plain dict (empty when the folder has none)."""

    @property
    def last_step(self) -> int:
        return self.history.last_step or 0

    @property
    def diverged(self) -> bool:
        """True when the run stopped before its planned steps (the engine's divergence stop)."""
        return self.last_step < self.planned_steps

    @property
    def label(self) -> str:
        return f"{self.experiment}/{self.variant}/seed {self.seed}"


def load_runs(out: Path) -> list[Run]:
    """Every run of ``out/plan.json`` whose folder has a metrics.csv (missing ones are skipped)."""
    plan = json.loads((out / "plan.json").read_text(encoding="utf-8"))
    runs = []
    for row in plan:
        folder = out / row["run"]
        if not (folder / "metrics.csv").is_file():
            continue
        final = read_npz(folder / "final.npz") if (folder / "final.npz").is_file() else {}
        config = _read_json(folder / "config.json") or _read_json(out / row.get("config", "-"))
        runs.append(Run(row["experiment"], row["variant"], int(row["seed"]), int(row["steps"]),
                        History.read_csv(folder / "metrics.csv"), final, config))
    return runs


def _read_json(path: Path) -> dict:
    """A JSON object from ``path`` (empty if the file is missing or not an object)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


Group = dict[int, History]
"""Seed -> history of one (experiment, variant)."""


# -- series helpers (histories in, numpy out) --------------------------------------------

def final_value(history: History, key: str, layer: int = 1) -> float:
    """The last defined value of ``key`` for ``layer`` (NaN if none)."""
    _, values = history.series(key, layer)
    defined = values[np.isfinite(values)]
    return float(defined[-1]) if defined.size else float("nan")




def band(histories: Group, key: str, layer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, mean, std) over seeds at the steps measured in any seed (NaN-aware)."""
    series = [h.series(key, layer) for h in histories.values()]
    steps = np.unique(np.concatenate([s for s, _ in series])) if series else np.array([], dtype=np.int64)
    table = np.full((len(series), steps.size), np.nan)
    for i, (s, v) in enumerate(series):
        table[i, np.searchsorted(steps, s)] = v
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (a diverged seed)
        mean = np.nanmean(table, axis=0)
        std = np.nanstd(table, axis=0, ddof=1) if len(series) > 1 else np.zeros(steps.size)
    return steps, mean, np.nan_to_num(std)




def last_value(history: History, key: str, layer: int = 1) -> float:
    """``key`` of ``layer`` at the last measured step (NaN when undefined there, e.g. a dead network)."""
    _, values = history.series(key, layer)
    return float(values[-1]) if values.size else float("nan")


def last_defined_step(history: History, key: str, layer: int = 1) -> int | None:
    """The last measured step where ``key`` is defined (None if never)."""
    steps, values = history.series(key, layer)
    ok = np.isfinite(values)
    return int(steps[ok][-1]) if ok.any() else None


def value_at(history: History, key: str, layer: int, step: int) -> float:
    """``key`` of ``layer`` at the first measured step >= ``step`` (NaN if none or undefined)."""
    steps, values = history.series(key, layer)
    index = np.searchsorted(steps, step)
    return float(values[index]) if index < steps.size else float("nan")


def step_at(history: History, step: int, layer: int = 1) -> int | None:
    """The first measured step >= ``step`` (None if the run never got there)."""
    steps, _ = history.series("step", layer)
    index = np.searchsorted(steps, step)
    return int(steps[index]) if index < steps.size else None


def early_step(config: dict) -> int:
    """The paper code's early point: the end of the warm-up (``optim.warmup_steps``), or step 1 without one.

    The authors' MLP code trains epoch 0 at lr 1e-4 and measures after it, so its first
    point is at the end of the warm-up; the first measured step at or after it is used.
    """
    warmup = (config.get("optim") or {}).get("warmup_steps") or 0
    return max(int(warmup), 1)


@dataclass(frozen=True)
class ExpRuns:
    """One experiment's runs as the checks see them: arm -> seed -> history, plus its setting."""

    name: str
    arms: dict[str, Group]
    """``baseline``, ``control``, ``slo1``, ``slo2``, ... -> seed -> history."""
    early_step: int = 1
    input_dim: int | None = None
    width: int | None = None

    def arm(self, name: str) -> Group:
        """The arm's histories (empty when it was not run)."""
        return self.arms.get(name, {})


def experiments_of(runs: list[Run]) -> dict[str, ExpRuns]:
    """Experiment name -> its runs, in plan order."""
    arms: dict[str, dict[str, Group]] = {}
    first: dict[str, Run] = {}
    for r in runs:
        arms.setdefault(r.experiment, {}).setdefault(r.variant, {})[r.seed] = r.history
        first.setdefault(r.experiment, r)
    out = {}
    for name, by_arm in arms.items():
        run = first[name]
        w = run.final.get("layer1.W")
        out[name] = ExpRuns(name, by_arm, early_step(run.config),
                            int(w.shape[1]) if w is not None else None,
                            int(w.shape[0]) if w is not None else None)
    return out
