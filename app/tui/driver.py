"""Advancing engines frame by frame, without any UI: the training side of the TUI.

A *frame* trains up to the next measurement step (``measure.every``), so every frame
shows freshly measured matrices and the history keeps the config's measurement grid;
the terminal app, the compare view and ``benchmarks/bench_tui.py`` share it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from core.engine import Engine, Snapshot

StopCheck = Callable[[], bool]

EXPORT_FILES = ("config.json", "metrics.csv", "final.npz", "nfa.png", "heatmaps.png")
"""The files an export writes, the same as ``python -m app.cli run``."""


def play_target(step: int, steps: int) -> int | None:
    """The step where playing pauses: the next multiple of ``steps`` (None: never)."""
    if steps <= 0:
        return None
    return (step // steps + 1) * steps


def frame_steps(step: int, every: int, target: int | None) -> int:
    """Steps from ``step`` to the next measurement, not past ``target``."""
    n = every - step % every
    return n if target is None else max(0, min(n, target - step))


@dataclass(frozen=True)
class Frame:
    """One advance of one or more engines: their snapshots and the time it took."""

    snaps: tuple[Snapshot, ...]
    seconds: float
    done: bool
    """True when playing should stop here (target reached, diverged, or nothing to do)."""


def advance(engines: Sequence[Engine], target: int | None, should_stop: StopCheck,
            max_steps: int | None = None) -> Frame | None:
    """Trains every engine to its next measurement (at most ``max_steps``); None when stopped.

    Engines advance in turn to the same step, so a baseline and an SLO run stay in step.
    """
    start = time.perf_counter()
    lead = engines[0]
    n = frame_steps(lead.step_count, lead.config.measure.every, target)
    if max_steps is not None:
        n = min(n, max_steps)
    for engine in engines:
        engine.step(n, should_stop=should_stop)
        if should_stop():
            return None
    snaps = tuple(engine.snapshot() for engine in engines)
    reached = target is not None and snaps[0].step >= target
    done = n == 0 or reached or any(s.diverged for s in snaps)
    return Frame(snaps, time.perf_counter() - start, done)


def default_export_folder(prefix: str = "tui") -> Path:
    """``runs/<prefix>-<date>-<time>``, like the CLI's default output folder."""
    return Path("runs") / f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}"


def export_run(engine: Engine, folder: Path | str) -> Path:
    """Writes the CLI's run files (config, metrics, final arrays, figures) to ``folder``."""
    return engine.save(Path(folder).expanduser(), figures=True)
