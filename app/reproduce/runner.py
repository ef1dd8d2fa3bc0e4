"""Runs a plan: each RunSpec becomes a run folder written by ``Engine.save``.

Runs are independent, so they go to a process pool of up to ``jobs`` workers, each
limited to one torch thread. Workers are spawned (not forked), so a parent that already
used torch's thread pool cannot deadlock them. ``jobs=1`` runs in this process.

For a cluster, hand out ``plan.json``'s rows instead: each is
``python -m app.reproduce.runner configs/<id>.json runs/<id>`` (or, equivalently,
``python -m app.cli run --config configs/<id>.json --out runs/<id> --quiet``).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from app.reproduce.plan import RunSpec, run_cost


@dataclass(frozen=True)
class RunOutcome:
    """What a worker reports back (the measurements themselves are in the run folder)."""

    id: str
    seconds: float
    status: str
    """``ok`` or ``diverged``."""
    message: str


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def execute(config_json: str, folder: str, run_id: str = "") -> RunOutcome:
    """Trains one config to its ``steps`` and saves the run folder (no figures).

    Uses torch's thread setting as it finds it (pool workers set one thread when they start).

    Args:
        config_json: A RunConfig as JSON (``RunConfig.to_json``).
        folder: The run folder ``Engine.save`` writes.
        run_id: The name reported back (default: the folder's name).

    Returns:
        The run's id, wall seconds and status; the measurements are in ``folder``.
    """
    from core.config import RunConfig
    from core.engine import Engine

    start = time.perf_counter()
    engine = Engine(RunConfig.from_dict(json.loads(config_json)))
    snap = engine.run()
    engine.save(Path(folder), figures=False)
    status = "diverged" if snap.diverged else "ok"
    return RunOutcome(run_id or Path(folder).name, time.perf_counter() - start, status, snap.message)


def default_jobs() -> int:
    """The CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def run_plan(specs: list[RunSpec], out: Path, jobs: int,
             on_done: Callable[[RunOutcome, RunSpec], None] | None = None) -> list[RunOutcome]:
    """Runs every spec into ``out/runs/<id>``.

    Args:
        specs: The plan.
        out: The reproduce folder.
        jobs: Worker processes (1: in this process, one after the other).
        on_done: Called in this process as each run finishes, with its outcome and spec.

    Returns:
        The outcomes, in the order the runs finished.
    """
    args = [(s.config.to_json(), str(out / "runs" / s.id), s.id) for s in specs]
    by_id = {s.id: s for s in specs}
    outcomes = []
    if jobs <= 1:
        for a in args:
            outcomes.append(_report(execute_restoring_threads(*a), by_id, on_done))
        return outcomes
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_one_thread) as pool:
        futures = [pool.submit(execute, *a) for a in _longest_first(args, specs)]
        for fut in as_completed(futures):
            outcomes.append(_report(fut.result(), by_id, on_done))
    return outcomes


def _longest_first(args: list[tuple], specs: list[RunSpec]) -> list[tuple]:
    """Submits the costliest runs first so the pool does not end on one long straggler."""
    cost = {s.id: run_cost(s) for s in specs}
    return sorted(args, key=lambda a: -cost[a[2]])


def execute_restoring_threads(config_json: str, folder: str, run_id: str) -> RunOutcome:
    """``execute`` in this process on one torch thread, putting the thread count back afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return execute(config_json, folder, run_id)
    finally:
        torch.set_num_threads(threads)


def _report(outcome: RunOutcome, by_id: dict, on_done) -> RunOutcome:
    if on_done is not None:
        on_done(outcome, by_id[outcome.id])
    return outcome


def main(argv: list[str] | None = None) -> int:
    """``python -m app.reproduce.runner CONFIG.json RUN_FOLDER``: one run, as a cluster job."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m app.reproduce.runner CONFIG.json RUN_FOLDER", file=sys.stderr)
        return 2
    outcome = execute(Path(argv[0]).read_text(encoding="utf-8"), argv[1])
    print(f"{outcome.id}: {outcome.status} in {outcome.seconds:.1f} s {outcome.message}".rstrip())
    return 0 if outcome.status == "ok" else 3


if __name__ == "__main__":
    sys.exit(main())
