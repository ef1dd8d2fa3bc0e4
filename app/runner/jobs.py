"""Jobs and the task every backend runs: one config in, one run folder's files out."""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from core.config import RunConfig

OK, FAILED = "ok", "failed"
"""Outcome statuses besides the engine's own terminal ones (``diverged``, ``dead``)."""

OVERHEAD = 3e6
"""Python and torch overhead of a step or a measurement, in multiply-adds (measured on CPU)."""


@dataclass(frozen=True)
class RunJob:
    """One run of a plan: its folder name under ``runs/`` and its full config."""

    name: str
    config: RunConfig
    figures: bool = False
    """Also draw ``nfa.png`` and ``heatmaps.png`` (as ``run`` does)."""

    @property
    def cost(self) -> float:
        return config_cost(self.config)


@dataclass(frozen=True)
class RunOutcome:
    """What became of a job (the measurements themselves are in its run folder)."""

    id: str
    seconds: float
    status: str
    """``ok``, the engine's terminal status (``diverged``, ``dead``), or ``failed`` (no folder)."""
    message: str
    skipped: bool = False
    """True when ``--resume`` found the folder complete and did not run it again."""


@dataclass(frozen=True)
class TaskResult:
    """A worker's answer: the outcome and the run folder's files (name -> bytes)."""

    outcome: RunOutcome
    files: dict[str, bytes] = field(default_factory=dict, repr=False)


def config_cost(cfg: RunConfig) -> float:
    """A rough relative cost (multiply-adds per step, measurement included) for scheduling and estimates."""
    width, d = cfg.model.width, cfg.data.d if cfg.data.kind == "synthetic" else 64
    outputs = 10 if cfg.data.kind == "digits" else 1
    per_step = cfg.optim.batch_size * (d * width + (cfg.model.depth - 1) * width ** 2) + OVERHEAD
    per_measure = cfg.measure.n_points * outputs * cfg.model.depth * width ** 2 + OVERHEAD
    return cfg.steps * per_step + (cfg.steps / cfg.measure.every + 1) * per_measure


def one_line(err: BaseException) -> str:
    """An exception as one short line: its type and first line."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text}"[:300] if text else type(err).__name__


def train_task(config_json: str, name: str, figures: bool, threads: int) -> TaskResult:
    """Trains one config to its ``steps`` in a temporary folder and returns that folder's files.

    Every backend runs this function (in this process, in a pool worker, or as a Ray task).
    An exception in the run becomes a ``failed`` outcome with a one-line reason; it never
    reaches the other runs.

    Args:
        config_json: A RunConfig as JSON (``RunConfig.to_json``).
        name: The run's name (its folder under ``runs/``).
        figures: Draw ``nfa.png`` and ``heatmaps.png`` too.
        threads: torch threads for this run (the CPUs it was given).
    """
    import torch

    from app.process import keep_freed_memory

    keep_freed_memory()  # the process runs sweep tasks: measurements reuse freed memory (app/process.py)
    torch.set_num_threads(max(1, threads))
    start = time.perf_counter()
    try:
        return _train(config_json, name, figures, start)
    except Exception as err:  # a failed run is reported, never raised into the other runs
        return TaskResult(RunOutcome(name, time.perf_counter() - start, FAILED, one_line(err)))


def _train(config_json: str, name: str, figures: bool, start: float) -> TaskResult:
    from core.engine import Engine

    engine = Engine(RunConfig.from_dict(json.loads(config_json)))
    snap = engine.run()
    with tempfile.TemporaryDirectory(prefix="nfa-run-") as tmp:
        engine.save(Path(tmp), figures=figures)
        files = {p.name: p.read_bytes() for p in sorted(Path(tmp).iterdir()) if p.is_file()}
    status = OK if snap.status == "running" else snap.status
    return TaskResult(RunOutcome(name, time.perf_counter() - start, status, snap.message), files)


def default_jobs() -> int:
    """The CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)
