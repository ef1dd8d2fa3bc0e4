"""The Ray backend: each run is a Ray task, retried when its worker dies.

Without ``--address`` a local Ray instance is started for the plan (``jobs x cpus_per_run``
CPUs, no dashboard) and shut down afterwards; with ``--address`` the driver joins an
existing cluster (``auto``, ``HOST:PORT`` or ``ray://HOST:10001``) and ships this project's
code to it as the job's ``working_dir``. Tasks ask for ``cpus_per_run`` CPUs and
``gpus_per_run`` GPUs; torch uses that many threads. A task returns its run folder's
files, so no shared file system is needed: this process writes them.

Ray is optional (``requirements-cluster.txt``); without it ``--backend ray`` is a user error.
"""

from __future__ import annotations

import logging
from pathlib import Path

from app.runner.jobs import FAILED, RunJob, RunOutcome, TaskResult, one_line
from app.runner.local import Deliver, Task, longest_first, task_args
from core.config import ConfigError

INSTALL_HINT = "Ray is not installed; install it with: pip install -r requirements-cluster.txt"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHIP_EXCLUDES = [".git", ".venv", "venv", "runs", "**/__pycache__", "*.png", "*.npz", "tests/__snapshots__"]


def import_ray():
    """The ``ray`` module, or a user error saying what to install."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--backend ray", INSTALL_HINT) from None
    return ray


def run_ray(jobs: list[RunJob], workers: int, threads: int, retries: int, address: str | None,
            gpus_per_run: float, deliver: Deliver, task: Task, out: Path | None = None) -> None:
    """Runs every job as a Ray task; Ctrl-C cancels the outstanding tasks (finished folders stay)."""
    ray = import_ray()
    started = _connect(ray, address, workers * threads, out)
    try:
        if address is None:
            _check_fits(ray, threads, gpus_per_run)
        remote = ray.remote(task).options(num_cpus=threads, num_gpus=gpus_per_run,
                                          max_retries=retries, retry_exceptions=False)
        refs = {remote.remote(*task_args(job, threads)): job for job in longest_first(jobs)}
        _collect(ray, refs, retries, deliver)
    finally:
        if started:
            ray.shutdown()


def _collect(ray, refs: dict, retries: int, deliver: Deliver) -> None:
    try:
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1)
            for ref in ready:
                job = refs.pop(ref)
                deliver(_result(ray, ref, job, retries))
    except BaseException:
        for ref in refs:
            ray.cancel(ref, force=True)
        raise


def _result(ray, ref, job: RunJob, retries: int) -> TaskResult:
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as err:  # the worker died more than ``retries`` times, or the node is gone
        why = f"the Ray task failed after {retries + 1} attempt(s): {one_line(err)}"
        return TaskResult(RunOutcome(job.name, float("nan"), FAILED, why))


def _connect(ray, address: str | None, cpus: int, out: Path | None) -> bool:
    """Starts local Ray or joins ``address``; False when this process was already connected."""
    if ray.is_initialized():
        return False
    quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    try:
        if address is None:
            ray.init(address="local", num_cpus=cpus, **quiet)
        else:
            ray.init(address=address, runtime_env=_shipped_code(out), **quiet)
    except Exception as err:  # Ray raises plain Exception for a node that does not start in 30 s
        where = "--address" if address else "--backend ray"
        raise ConfigError(where, f"cannot start or reach Ray: {one_line(err)}") from None
    return True


def _shipped_code(out: Path | None) -> dict:
    """This project as the job's ``working_dir``, without outputs, so cluster workers can import it."""
    excludes = list(SHIP_EXCLUDES)
    if out is not None:
        try:
            excludes.append("/" + str(Path(out).resolve().relative_to(PROJECT_ROOT)))
        except ValueError:
            pass
    return {"working_dir": str(PROJECT_ROOT), "excludes": excludes}


def _check_fits(ray, cpus_per_run: int, gpus_per_run: float) -> None:
    """A task that asks for more than the local instance has would wait forever: refuse it."""
    have = ray.cluster_resources()
    if have.get("CPU", 0) < cpus_per_run:
        raise ConfigError("--cpus-per-run", f"{cpus_per_run} is more than the {have.get('CPU', 0):g} CPUs of local Ray")
    if gpus_per_run > have.get("GPU", 0):
        raise ConfigError("--gpus-per-run", f"{gpus_per_run:g} is more than the {have.get('GPU', 0):g} GPUs of local Ray")
