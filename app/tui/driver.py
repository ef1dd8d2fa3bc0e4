"""Advancing engines frame by frame, without any UI: the training side of the TUI.

A *frame* trains up to the next measurement step (``measure.every`` or ``every_epochs``), so every frame
shows freshly measured matrices and the history keeps the config's measurement grid;
the terminal app, the compare view and ``benchmarks/bench_tui.py`` share it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from core.config import Limits
from core.engine import Engine, Snapshot

StopCheck = Callable[[], bool]

EXPORT_FILES = ("config.json", "metrics.csv", "final.npz", "state.npz", "state.json", "nfa.png", "heatmaps.png")
"""The files an export writes, the same as ``python -m app.cli run`` (state.* let ``--resume`` continue)."""

PLAY_LIMIT = Limits().max_steps
"""Playing stops here at the latest (10,000,000 steps, the config's largest run); space plays on."""


def frame_steps(step: int, to_next: int, target: int | None) -> int:
    """Steps of one frame: ``to_next`` (steps to the next measurement), not past ``target``."""
    return to_next if target is None else max(0, min(to_next, target - step))


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
    n = frame_steps(lead.step_count, lead.steps_to_next_measure(), target)
    if max_steps is not None:
        n = min(n, max_steps)
    for engine in engines:
        engine.step(n, should_stop=should_stop)
        if should_stop():
            return None
    snaps = tuple(engine.snapshot() for engine in engines)
    reached = target is not None and snaps[0].step >= target
    done = n == 0 or reached or any(s.stopped for s in snaps)
    return Frame(snaps, time.perf_counter() - start, done)


def default_export_folder(prefix: str = "tui") -> Path:
    """``runs/<prefix>-<date>-<time>``, like the CLI's default output folder."""
    return Path("runs") / f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}"


def export_run(engine: Engine, folder: Path | str) -> tuple[Path, list[str]]:
    """Writes the CLI's run files (config, metrics, final arrays, state, figures) to ``folder``.

    Returns the folder's absolute path and the names of the files this export wrote
    (those whose modification time is not older than the export's start), sorted.
    """
    path = Path(folder).expanduser().resolve()
    start = time.time_ns()
    engine.save(path, figures=True)
    written = sorted(p.name for p in path.iterdir() if p.is_file() and p.stat().st_mtime_ns >= start - 10**7)
    return path, written
