"""The experiment list: which runs the claims need, at a given scale.

A plan is a flat list of :class:`RunSpec` (a RunConfig plus where its run folder goes),
so the same list can be run here in a process pool or handed to a cluster scheduler:
every run is ``python -m app.cli run --config configs/<id>.json --out runs/<id>``.

Every experiment is trained as the arms of ``core.arms.make_arms`` from one seed (so one
initialisation and one batch order): the baseline optimiser, the control (SLO with boost
1) and SLO targeted at each layer the experiment lists. Experiments start from presets
with as few overrides as possible; the report prints every one of them.

Scales are subsamples of one another, never different regimes: ``quick`` runs the first
seeds of ``full`` with the same configs and measures a subset of the same steps (the early
point and the last step included), so its numbers at those steps are the full run's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.arms import make_arms
from core.config import RunConfig, preset_config
from core.iofiles import atomic_write_text

BASELINE, CONTROL = "baseline", "control"


def slo_variant(layer: int) -> str:
    """The variant (arm) name of SLO targeted at ``layer``."""
    return f"slo{layer}"


@dataclass(frozen=True)
class Experiment:
    """A preset (plus overrides) trained as baseline, control and SLO on each of ``slo_layers``."""

    name: str
    preset: str
    overrides: dict[str, Any] = field(default_factory=dict)
    slo_layers: tuple[int, ...] = (1,)
    note: str = ""

    @property
    def variants(self) -> tuple[str, ...]:
        return (BASELINE, CONTROL) + tuple(slo_variant(l) for l in self.slo_layers)


EXPERIMENTS: tuple[Experiment, ...] = (
    Experiment("paper-digits", "paper-digits", {"measure.every_epochs": 5},
               note="the authors' MLP recipe (5x256 bias-free ReLU, SGD lr 2.0, batch 128, warm-up epoch at lr "
                    "1e-4, 150 epochs, K on all training points) on scikit-learn's digits (input dim 64 < width "
                    "256); measured every 5 epochs instead of every epoch (the claims read the early point, the "
                    "last step and the pooled steps; every epoch would cost 152 x 0.6 s of K per run)"),
    Experiment("paper-synthetic", "paper-synthetic", slo_layers=(1, 2, 3, 4, 5),
               note="the authors' recipe on synthetic data whose input dim (128) exceeds the width (64); SLO on "
                    "each of the 5 layers in turn"),
    Experiment("quickstart", "quickstart", {"optim.warmup_steps": 16}, slo_layers=(1, 2),
               note="this project's default demo (y = x0 x1 + x1 x2, 2x128), with the authors' warm-up epoch "
                    "(16 steps at lr 1e-4) so that its early point is theirs; SLO on each layer"),
)
"""Every experiment the claims read; each runs once per seed and arm."""

REAL_DATA = "paper-digits"
"""The real-data experiment (claim 6)."""


@dataclass(frozen=True)
class Scale:
    """How big the reproduction is: seeds, and how often the full run's steps are measured."""

    name: str
    seeds: int
    measure_stride: int = 1
    """Measure every ``stride``-th of the full run's measurements (the early point and the last step always)."""
    max_train: int | None = None
    max_width: int | None = None
    step_factor: float = 1.0
    """Tests only: a different (shorter) regime."""
    experiments: tuple[str, ...] | None = None
    """Tests only: the experiments to run (None: all)."""
    max_slo_layer: int | None = None
    """Leave out SLO arms targeted above this layer (None: every listed target)."""


SCALES = {
    "full": Scale("full", seeds=3),
    "quick": Scale("quick", seeds=1, measure_stride=5, max_slo_layer=2),
    "tiny": Scale("tiny", seeds=2, measure_stride=1, max_train=256, max_width=32, step_factor=0.02,
                  experiments=("paper-digits", "quickstart")),
}
"""``full`` (the README's numbers; seeds 0-2, as the authors' gen_plots.py), ``quick`` (``--quick``: a
subsample of ``full``: seed 0, its SLO arms on layers 1-2, every 5th measurement; the same runs, so
the same numbers at the steps both measure) and ``tiny`` (tests only: a shorter, smaller regime)."""


@dataclass(frozen=True)
class RunSpec:
    """One run: its id (also its folder name under ``runs/``), its arm's label and its full config."""

    experiment: str
    variant: str
    seed: int
    config: RunConfig
    label: str = ""

    @property
    def id(self) -> str:
        return f"{self.experiment}-{self.variant}-s{self.seed}"

    @property
    def steps(self) -> int:
        return self.config.steps


def scaled_config(exp: Experiment, scale: Scale) -> RunConfig:
    """The experiment's baseline config at ``scale`` (seed 0, SLO off)."""
    cfg = preset_config(exp.preset).replace(**exp.overrides)
    changes: dict[str, Any] = {"device": "cpu"}
    if scale.step_factor != 1.0:
        changes["steps"] = max(20, round(cfg.steps * scale.step_factor))
        changes["measure.every"] = max(1, round(cfg.measure.every * scale.step_factor))
    if scale.measure_stride != 1:
        changes["measure.every"] = cfg.measure.every * scale.measure_stride
        if getattr(cfg.measure, "every_epochs", 0):
            changes["measure.every_epochs"] = cfg.measure.every_epochs * scale.measure_stride
    if scale.max_train is not None:
        changes["data.n_train"] = min(cfg.data.n_train, scale.max_train)
        changes["data.n_test"] = min(cfg.data.n_test, scale.max_train)
    if scale.max_width is not None:
        changes["model.width"] = min(cfg.model.width, scale.max_width)
    return cfg.replace(**changes)


def experiment_arms(exp: Experiment, base: RunConfig, max_slo_layer: int | None = None
                    ) -> list[tuple[str, str, RunConfig]]:
    """(variant, label, config) of every arm: baseline, control and SLO on each listed layer (up to the max)."""
    out: list[tuple[str, str, RunConfig]] = []
    layers = [l for l in exp.slo_layers if max_slo_layer is None or l <= max_slo_layer]
    for layer in layers:
        arms = make_arms(base.replace(**{"optim.slo.target_layer": layer}))
        if not out:
            out += [(a.name, a.label, a.config) for a in arms if a.name in (BASELINE, CONTROL)]
        out += [(slo_variant(layer), a.label, a.config) for a in arms if a.name == "slo"]
    return out


def build_plan(scale: Scale, seeds: int | None = None,
               experiments: tuple[Experiment, ...] = EXPERIMENTS) -> list[RunSpec]:
    """Every run of every experiment, arm and seed.

    Args:
        scale: Sizes and the default number of seeds.
        seeds: Seeds 0..seeds-1 (default: the scale's).
        experiments: The experiments to plan (default: all of them).
    """
    n = scale.seeds if seeds is None else seeds
    specs = []
    for exp in experiments:
        if scale.experiments is not None and exp.name not in scale.experiments:
            continue
        arms = experiment_arms(exp, scaled_config(exp, scale), scale.max_slo_layer)
        for seed in range(n):
            for variant, label, cfg in arms:
                specs.append(RunSpec(exp.name, variant, seed, cfg.replace(seed=seed), label))
    return specs


def write_plan(specs: list[RunSpec], out: Path) -> None:
    """``configs/<id>.json`` per run and ``plan.json`` (id, experiment, variant, label, seed, steps)."""
    for spec in specs:
        atomic_write_text(out / "configs" / f"{spec.id}.json", spec.config.to_json() + "\n")
    rows = [{"id": s.id, "experiment": s.experiment, "variant": s.variant, "label": s.label, "seed": s.seed,
             "steps": s.steps, "config": f"configs/{s.id}.json", "run": f"runs/{s.id}"} for s in specs]
    atomic_write_text(out / "plan.json", json.dumps(rows, indent=1) + "\n")


OVERHEAD = 3e6
"""Python and torch overhead of a step or a measurement, in multiply-adds (measured on CPU)."""


def run_cost(spec: RunSpec) -> float:
    """A rough relative cost (multiply-adds per step, measurement included) for scheduling and progress."""
    c = spec.config
    width, d = c.model.width, c.data.d if c.data.kind == "synthetic" else 64
    outputs = 10 if c.data.kind == "digits" else 1
    points = c.measure.n_points or c.data.n_train
    per_step = c.optim.batch_size * (d * width + (c.model.depth - 1) * width ** 2) + OVERHEAD
    per_measure = points * outputs * c.model.depth * width ** 2 + OVERHEAD
    return c.steps * per_step + (c.steps / c.measure.every) * per_measure


def experiment_by_name(name: str) -> Experiment:
    """The experiment called ``name``."""
    for exp in EXPERIMENTS:
        if exp.name == name:
            return exp
    raise KeyError(name)
