"""What ``reproduce`` and ``sweep`` share around the runner: estimate, refuse, announce, run, report.

The order matters: every check (backend, output folder, plan size) happens before the
folder is created or anything is trained.
"""

from __future__ import annotations

import sys
from pathlib import Path

from app.runner.execute import Backend, resume_split, run_jobs
from app.runner.folders import read_runs_csv
from app.runner.guard import calibrate, check_size, create_out, duration, rate_from_runs
from app.runner.jobs import RunJob, RunOutcome
from app.runner.progress import RunProgress, failures_text


def check_backend(backend: Backend) -> Backend:
    """Flag checks, and for ``ray`` that Ray can be imported (a user error naming what to install)."""
    backend.check()
    if backend.kind == "ray":
        from app.runner.ray_backend import import_ray

        import_ray()
    return backend


def estimate(sample: list[RunJob], n_runs: int, workers: int, out: Path | None = None) -> float:
    """Wall seconds for ``n_runs`` runs like ``sample`` on ``workers``: from finished runs in ``out``
    when there are any, else from a short calibration run (``guard.calibrate``)."""
    rate = None
    if out is not None:
        seconds = {k: _float(r.get("seconds")) for k, r in read_runs_csv(out / "runs.csv").items()}
        rate = rate_from_runs(sample, seconds)
    if rate is None:
        rate = calibrate()
    mean_cost = sum(j.cost for j in sample) / max(1, len(sample))
    return rate * mean_cost * n_runs / max(1, workers)


def _float(text) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")


def guard(sample: list[RunJob], n_runs: int, backend: Backend, yes: bool, flag: str,
          out: Path | None = None) -> float:
    """The plan's estimated wall seconds; refuses an oversized plan (see ``check_size``)."""
    seconds = estimate(sample, n_runs, backend.workers, out)
    check_size(n_runs, seconds, backend.workers, yes, flag)
    return seconds


def execute_plan(jobs: list[RunJob], out: Path, backend: Backend, resume: bool, label: str,
                 seconds: float, quiet: bool = False) -> list[RunOutcome]:
    """Creates ``out``, skips finished runs when resuming, runs the rest with a progress bar.

    Returns every outcome (skipped ones included); failures are listed on stderr at the end.
    On Ctrl-C the outstanding runs are cancelled, the finished folders stay complete, and a
    line says how to continue before KeyboardInterrupt goes on up.
    """
    create_out(out)
    todo, finished = resume_split(jobs, out) if resume else (jobs, [])
    if not quiet:
        left = seconds * sum(j.cost for j in todo) / max(1e-9, sum(j.cost for j in jobs))
        skipped = f" ({len(finished)} finished, {len(todo)} to run)" if resume else ""
        print(f"{label}: {len(jobs)} runs{skipped} on {backend.describe()}, ~{duration(left)} -> {out}",
              file=sys.stderr)
    progress = RunProgress(todo, label, quiet)
    try:
        outcomes = run_jobs(todo, out, backend, finished, progress.update)
    except KeyboardInterrupt:
        progress.close()
        print(f"{label}: stopped; the finished runs are in {out / 'runs'}; continue with --resume {out}",
              file=sys.stderr)
        raise
    progress.close()
    text = failures_text(outcomes)
    if text and not quiet:
        print(text, file=sys.stderr)
    return outcomes
