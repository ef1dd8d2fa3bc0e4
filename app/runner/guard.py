"""Checks before any training: the output folder, the plan's size, a time estimate.

``reproduce`` and ``sweep`` write into a folder that must be new or empty, unless
``--resume`` continues one of their own folders. More than :data:`MAX_RUNS` runs need
``--yes``; the refusal prints the plan's size and estimated time, at once.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from app.runner.jobs import RunJob, config_cost
from core.config import ConfigError

MAX_RUNS = 1000
"""Plans with more runs than this need ``--yes`` (the full ``reproduce`` is 65 runs)."""

HARD_MAX_RUNS = 100_000
"""Plans with more runs than this are refused even with ``--yes``."""


def check_out(out: Path, resume: bool, marker: str, flag: str = "--out") -> None:
    """Refuses an output folder that is not new or empty (or, resuming, not one of ours), without creating it.

    Args:
        out: The folder.
        resume: Continue the plan already in ``out``.
        marker: The file that makes ``out`` one of this command's folders (``sweep.json``, ``meta.json``).
        flag: The flag to name in messages.
    """
    if str(out) in ("", "."):
        raise ConfigError(flag, "give a folder name (not the current directory)")
    if out.exists() and not out.is_dir():
        raise ConfigError(flag, f"{str(out)!r} exists and is not a folder")
    if resume:
        if not (out / marker).is_file():
            raise ConfigError("--resume", f"{str(out)!r} has no {marker}; it is not a folder this command made")
        return
    if out.is_dir() and any(out.iterdir()):
        raise ConfigError(flag, f"{str(out)!r} is not empty; choose a new folder, or --resume {out} to continue it")
    parent = _existing_parent(out)
    if not parent.is_dir():
        raise ConfigError(flag, f"{str(out)!r} is under {str(parent)!r}, which is a file")


def _existing_parent(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def create_out(out: Path, flag: str = "--out") -> Path:
    """Creates ``out`` and its ``runs/`` folder and proves both writable (one line on failure)."""
    try:
        (out / "runs").mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=out / "runs")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ConfigError(flag, f"cannot write in {str(out)!r}: {err.strerror or err}") from None
    return out


PROBE = {"data.n_train": 256, "data.n_test": 64, "measure.n_points": 128, "model.width": 128,
         "model.depth": 2, "optim.batch_size": 128, "device": "cpu", "seed": 0}
"""The calibration run: the quickstart preset, small data, a typical layer size."""


def calibrate(steps: int = 20) -> float:
    """Seconds per unit of ``config_cost`` on this machine: ``steps`` steps and two measurements of
    :data:`PROBE` on one thread, timed after a warm-up (imports and first calls are not counted)."""
    import torch

    from core.config import preset_config
    from core.engine import Engine

    probe = preset_config("quickstart").replace(steps=2 * steps, **{"measure.every": steps}, **PROBE)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        engine = Engine(probe)
        engine.step(1)
        start = time.perf_counter()
        engine.run(2 * steps - 1)
        seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(before)
    return seconds / (config_cost(probe) * (2 * steps - 1) / (2 * steps))


def rate_from_runs(jobs: list[RunJob], seconds: dict[str, float]) -> float | None:
    """Seconds per unit of cost measured on finished runs (None when there are none)."""
    pairs = [(seconds[j.name], j.cost) for j in jobs if j.name in seconds and seconds[j.name] == seconds[j.name]]
    total = sum(c for _, c in pairs)
    return sum(s for s, _ in pairs) / total if pairs and total > 0 else None


def duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3.5 h``, ``2.1 days``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def check_size(n_runs: int, seconds: float, workers: int, yes: bool, flag: str) -> None:
    """Refuses more than MAX_RUNS runs without ``yes`` (and more than HARD_MAX_RUNS always)."""
    size = f"{n_runs} runs (~{duration(seconds)} on {workers} worker(s))"
    if n_runs > HARD_MAX_RUNS:
        raise ConfigError(flag, f"{size} is more than the {HARD_MAX_RUNS} allowed; split the plan")
    if n_runs > MAX_RUNS and not yes:
        raise ConfigError(flag, f"{size} is more than {MAX_RUNS}; add --yes to run them")
