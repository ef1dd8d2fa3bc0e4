"""Run folders on the driver's side: atomic delivery, completeness, resume, ``runs.csv``.

A worker's files are written into a hidden ``runs/.<name>.*.partial`` folder, which is
then renamed to ``runs/<name>`` in one step, so ``runs/<name>`` never holds half a run.
A folder counts as finished when it holds every file ``Engine.save`` writes, its
``config.json`` is the job's config, and its ``state.json`` says the run reached the
config's steps (or ended early as ``diverged``/``dead``).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

from app.runner.jobs import RunJob, RunOutcome, TaskResult
from core.iofiles import atomic_write_text

RUN_FILES = ("config.json", "metrics.csv", "final.npz", "state.npz", "state.json")
"""What every finished run folder holds (``Engine.save``)."""

RUNS_CSV_COLUMNS = ("id", "seconds", "status", "message")

_UMASK = os.umask(0)
os.umask(_UMASK)


def write_run_folder(runs_dir: Path, result: TaskResult) -> Path:
    """Writes a worker's files to ``runs_dir/<name>`` atomically (a temporary folder, then a rename).

    An older folder of the same name (an unfinished one found by ``--resume``) is replaced.
    """
    name = result.outcome.id
    runs_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=runs_dir))
    try:
        for file_name, data in result.files.items():
            if Path(file_name).name != file_name or file_name.startswith("."):
                raise ValueError(f"a worker returned the file name {file_name!r}")
            (tmp / file_name).write_bytes(data)
        os.chmod(tmp, 0o777 & ~_UMASK)
        _move_into_place(tmp, runs_dir / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return runs_dir / name


def _move_into_place(tmp: Path, final: Path) -> None:
    if final.exists():
        stale = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".stale", dir=final.parent))
        os.rename(final, stale / "old")
        os.rename(tmp, final)
        shutil.rmtree(stale, ignore_errors=True)
    else:
        os.rename(tmp, final)


def remove_partials(runs_dir: Path) -> int:
    """Deletes the hidden temporary folders an interrupted driver left; returns how many."""
    if not runs_dir.is_dir():
        return 0
    leftovers = [p for p in runs_dir.iterdir()
                 if p.name.startswith(".") and p.name.endswith((".partial", ".stale")) and p.is_dir()]
    for p in leftovers:
        shutil.rmtree(p, ignore_errors=True)
    return len(leftovers)


def finished_status(folder: Path, job: RunJob) -> str | None:
    """The run's final status if ``folder`` holds ``job`` run to its end, else None."""
    if not all((folder / f).is_file() for f in RUN_FILES):
        return None
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or config != job.config.to_dict():
        return None
    status = state.get("status")
    if status == "running":
        return "ok" if state.get("step") == job.config.steps else None
    return status if isinstance(status, str) else None


def split_finished(jobs: list[RunJob], runs_dir: Path, earlier: dict[str, dict] | None = None
                   ) -> tuple[list[RunJob], list[RunOutcome]]:
    """(jobs still to run, outcomes of the finished ones) for ``--resume``.

    Args:
        jobs: The plan.
        runs_dir: Where the run folders are.
        earlier: ``runs.csv`` rows by id, for the finished runs' seconds and messages.
    """
    earlier = earlier or {}
    todo, done = [], []
    for job in jobs:
        status = finished_status(runs_dir / job.name, job)
        if status is None:
            todo.append(job)
            continue
        row = earlier.get(job.name, {})
        done.append(RunOutcome(job.name, _float(row.get("seconds")), status, row.get("message", ""), skipped=True))
    return todo, done


def _float(text) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")


def read_runs_csv(path: Path) -> dict[str, dict]:
    """``runs.csv`` rows by id (empty when there is none or it cannot be read)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return {r["id"]: r for r in csv.DictReader(f) if r.get("id")}
    except (OSError, ValueError, KeyError):
        return {}


def write_runs_csv(path: Path, outcomes: list[RunOutcome]) -> None:
    """``id,seconds,status,message`` per run, sorted by id (seconds empty where unknown)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(RUNS_CSV_COLUMNS)
    for o in sorted(outcomes, key=lambda o: o.id):
        seconds = "" if o.seconds != o.seconds else f"{o.seconds:.3f}"
        writer.writerow((o.id, seconds, o.status, o.message))
    atomic_write_text(path, buf.getvalue())
