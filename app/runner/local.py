"""The local backend: runs in this process (one job at a time) or in a pool of spawned processes.

Workers are spawned (not forked), so a parent that already used torch's thread pool cannot
deadlock them; they ignore SIGINT, so Ctrl-C reaches only this process, which cancels the
queued runs and stops the workers. A worker that dies (killed, out of memory) breaks the
pool: a new pool takes the unfinished runs, each of which may be retried ``retries``
times before it is reported as failed.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Callable

from app.runner.jobs import FAILED, RunJob, RunOutcome, TaskResult

Task = Callable[[str, str, bool, int], TaskResult]
Deliver = Callable[[TaskResult], None]


def task_args(job: RunJob, threads: int) -> tuple:
    """The task's arguments for ``job`` (plain values: they cross process and machine boundaries)."""
    return (job.config.to_json(), job.name, job.figures, threads)


def longest_first(jobs: list[RunJob]) -> list[RunJob]:
    """The costliest runs first, so the pool does not end on one long straggler."""
    return sorted(jobs, key=lambda j: -j.cost)


def run_in_process(jobs: list[RunJob], threads: int, deliver: Deliver, task: Task) -> None:
    """One job after the other in this process, putting torch's thread count back afterwards."""
    import torch

    before = torch.get_num_threads()
    try:
        for job in jobs:
            deliver(task(*task_args(job, threads)))
    finally:
        torch.set_num_threads(before)


def run_pool(jobs: list[RunJob], workers: int, threads: int, retries: int, deliver: Deliver, task: Task) -> None:
    """Runs ``jobs`` on ``workers`` spawned processes; a broken pool is replaced for the unfinished runs."""
    pending = {job.name: job for job in longest_first(jobs)}
    breaks = {name: 0 for name in pending}
    while pending:
        broken = _one_pool(list(pending.values()), workers, threads, pending, deliver, task)
        if not broken:
            return
        for name in list(pending):
            breaks[name] += 1
            if breaks[name] > retries:
                job = pending.pop(name)
                deliver(TaskResult(RunOutcome(job.name, float("nan"), FAILED,
                                              f"a worker process died {breaks[name]} times while this run was queued or running")))


def _one_pool(jobs: list[RunJob], workers: int, threads: int, pending: dict, deliver: Deliver, task: Task) -> bool:
    """Runs until every job is delivered (False) or the pool breaks (True)."""
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx, initializer=_worker_init)
    try:
        with thread_env(threads):  # workers are spawned by the first submits and inherit it
            futures: dict[Future, str] = {pool.submit(task, *task_args(j, threads)): j.name for j in jobs}
        for fut in as_completed(futures):
            try:
                result = fut.result()
            except BrokenProcessPool:
                return True
            pending.pop(futures[fut], None)
            deliver(result)
        return False
    except BaseException:
        _stop(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancels the queued runs and terminates the workers (Ctrl-C: do not wait for the running ones)."""
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        if proc.is_alive():
            proc.terminate()


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
"""Set for spawned workers, as Ray sets OMP_NUM_THREADS for its workers: ``torch.set_num_threads``
alone left some native work on every core, and two workers on 2 cores then ran the
paper-digits runs about 1.5x slower than Ray's (README, Sweeps and clusters)."""


@contextlib.contextmanager
def thread_env(threads: int):
    """This process's environment gives ``threads`` native threads to children started inside (then restored)."""
    saved = {key: os.environ.get(key) for key in THREAD_VARIABLES}
    os.environ.update({key: str(max(1, threads)) for key in THREAD_VARIABLES})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _worker_init() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
