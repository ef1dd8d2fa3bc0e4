"""The experiment list: which runs the claims need, at a given scale.

A plan is a flat list of :class:`RunSpec` (a RunConfig plus where its run folder goes),
so the same list can be run here in a process pool or handed to a cluster scheduler:
every run is ``python -m app.cli run --config configs/<id>.json --out runs/<id>``.

Experiments start from the presets in ``core/config.py`` with as few overrides as
possible; the report prints every one of them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import RunConfig, preset_config
from core.iofiles import atomic_write_text

BASELINE = "sgd"


def slo_variant(layer: int) -> str:
    """The variant name of SLO targeted at ``layer``."""
    return f"slo{layer}"


@dataclass(frozen=True)
class Experiment:
    """A preset (plus overrides) trained with SGD and with SLO on each of ``slo_layers``."""

    name: str
    preset: str
    overrides: dict[str, Any] = field(default_factory=dict)
    slo_layers: tuple[int, ...] = (1,)
    note: str = ""

    @property
    def variants(self) -> tuple[str, ...]:
        return (BASELINE,) + tuple(slo_variant(l) for l in self.slo_layers)

    @property
    def is_digits(self) -> bool:
        return self.preset == "digits"


EXPERIMENTS: tuple[Experiment, ...] = (
    Experiment("quickstart", "quickstart", slo_layers=(1, 2),
               note="y = x0 x1 + x1 x2, depth 2 (the default preset)"),
    Experiment("chain", "chain", note="y = x0 x1 x2, depth 2"),
    Experiment("lowrank", "lowrank", note="y = tanh(x0 + x1 - x2) + sin(x3), depth 2"),
    Experiment("deep3", "quickstart", {"model.depth": 3}, slo_layers=(1, 2, 3),
               note="the quickstart target on a depth-3 net, for SLO on every layer"),
    Experiment("digits", "digits", note="scikit-learn digits, depth 5 (real data, no ground truth)"),
)
"""Every experiment the claims read; each runs once per seed and variant."""

SYNTHETIC_TARGETS = ("quickstart", "chain", "lowrank")
"""Experiments with a ground-truth AGOP (claim 6)."""

PER_LAYER_SLO = ("quickstart", "deep3")
"""Experiments with SLO targeted at every hidden layer in turn (claim 5)."""

REAL_DATA = "digits"
"""The real-data experiment (claim 7)."""


@dataclass(frozen=True)
class Scale:
    """How big the reproduction is: seeds, and factors on the presets' steps and sizes."""

    name: str
    seeds: int
    step_factor: float = 1.0
    digits_step_factor: float = 1.0
    max_points: int | None = None
    max_train: int | None = None
    max_width: int | None = None


SCALES = {
    "full": Scale("full", seeds=5),
    "quick": Scale("quick", seeds=2, step_factor=0.3, digits_step_factor=0.15, max_points=300),
    "tiny": Scale("tiny", seeds=2, step_factor=0.03, digits_step_factor=0.02, max_points=64,
                  max_train=400, max_width=32),
}
"""``full`` (the README's numbers), ``quick`` (``--quick``) and ``tiny`` (tests only)."""


@dataclass(frozen=True)
class RunSpec:
    """One run: its id (also its folder name under ``runs/``) and its full config."""

    experiment: str
    variant: str
    seed: int
    config: RunConfig

    @property
    def id(self) -> str:
        return f"{self.experiment}-{self.variant}-s{self.seed}"

    @property
    def steps(self) -> int:
        return self.config.steps


def scaled_config(exp: Experiment, scale: Scale) -> RunConfig:
    """The experiment's baseline config at ``scale`` (seed 0, SLO off)."""
    cfg = preset_config(exp.preset).replace(**exp.overrides)
    factor = scale.digits_step_factor if exp.is_digits else scale.step_factor
    changes: dict[str, Any] = {}
    if factor != 1.0:
        changes["steps"] = max(20, round(cfg.steps * factor))
        changes["measure.every"] = max(1, round(cfg.measure.every * factor))
    if scale.max_points is not None:
        changes["measure.n_points"] = min(cfg.measure.n_points, scale.max_points)
    if scale.max_train is not None:
        changes["data.n_train"] = min(cfg.data.n_train, scale.max_train)
        changes["data.n_test"] = min(cfg.data.n_test, scale.max_train)
    if scale.max_width is not None:
        changes["model.width"] = min(cfg.model.width, scale.max_width)
    changes["device"] = "cpu"
    return cfg.replace(**changes)


def variant_config(base: RunConfig, variant: str, seed: int) -> RunConfig:
    """``base`` with the variant's optimiser and the seed (same seed: same init and batches)."""
    changes: dict[str, Any] = {"seed": seed, "optim.slo.enabled": variant != BASELINE}
    if variant != BASELINE:
        changes["optim.slo.target_layer"] = int(variant[len("slo"):])
    return base.replace(**changes)


def build_plan(scale: Scale, seeds: int | None = None,
               experiments: tuple[Experiment, ...] = EXPERIMENTS) -> list[RunSpec]:
    """Every run of every experiment, variant and seed.

    Args:
        scale: Sizes and the default number of seeds.
        seeds: Seeds 0..seeds-1 (default: the scale's).
        experiments: The experiments to plan (default: all of them).
    """
    n = scale.seeds if seeds is None else seeds
    specs = []
    for exp in experiments:
        base = scaled_config(exp, scale)
        for seed in range(n):
            for variant in exp.variants:
                specs.append(RunSpec(exp.name, variant, seed, variant_config(base, variant, seed)))
    return specs


def write_plan(specs: list[RunSpec], out: Path) -> None:
    """``configs/<id>.json`` per run and ``plan.json`` (id, experiment, variant, seed, steps)."""
    for spec in specs:
        atomic_write_text(out / "configs" / f"{spec.id}.json", spec.config.to_json() + "\n")
    rows = [{"id": s.id, "experiment": s.experiment, "variant": s.variant, "seed": s.seed,
             "steps": s.steps, "config": f"configs/{s.id}.json", "run": f"runs/{s.id}"} for s in specs]
    atomic_write_text(out / "plan.json", json.dumps(rows, indent=1) + "\n")


OVERHEAD = 3e6
"""Python and torch overhead of a step or a measurement, in multiply-adds (measured on CPU)."""


def run_cost(spec: RunSpec) -> float:
    """A rough relative cost (multiply-adds per step, measurement included) for scheduling and progress."""
    c = spec.config
    width, d = c.model.width, c.data.d if c.data.kind == "synthetic" else 64
    outputs = 10 if c.data.kind == "digits" else 1
    per_step = c.optim.batch_size * (d * width + (c.model.depth - 1) * width ** 2) + OVERHEAD
    per_measure = c.measure.n_points * outputs * c.model.depth * width ** 2 + OVERHEAD
    return c.steps * per_step + (c.steps / c.measure.every) * per_measure


def experiment_by_name(name: str) -> Experiment:
    """The experiment called ``name``."""
    for exp in EXPERIMENTS:
        if exp.name == name:
            return exp
    raise KeyError(name)
