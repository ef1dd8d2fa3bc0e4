"""Running a plan: pick the backend, deliver each worker's folder, keep ``runs.csv`` current."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from app.runner.folders import read_runs_csv, remove_partials, split_finished, write_run_folder, write_runs_csv
from app.runner.jobs import RunJob, RunOutcome, TaskResult, default_jobs, train_task
from core.config import ConfigError

BACKENDS = ("local", "ray")
DEFAULT_RETRIES = 2
"""How often a run whose worker died is tried again (Ray: ``max_retries``; local: pool restarts)."""


@dataclass(frozen=True)
class Backend:
    """Where and how runs execute (the ``--backend ... --gpus-per-run`` flags)."""

    kind: str = "local"
    jobs: int | None = None
    """Runs at once (local: worker processes; local Ray: its CPUs / cpus_per_run). Default: CPU cores."""
    address: str | None = None
    """Ray cluster to join (None: start local Ray for the plan)."""
    cpus_per_run: int = 1
    """CPUs per run (Ray resource), also torch's threads in the run."""
    gpus_per_run: float = 0.0
    """GPUs per run (Ray resource; runs with ``device`` auto or cuda use them)."""
    retries: int = DEFAULT_RETRIES

    def check(self) -> "Backend":
        """Raises ConfigError naming the flag for a value out of range."""
        if self.kind not in BACKENDS:
            raise ConfigError("--backend", f"must be one of {', '.join(BACKENDS)}; got {self.kind!r}")
        if self.jobs is not None and self.jobs < 1:
            raise ConfigError("--jobs", f"must be at least 1; got {self.jobs}")
        if self.cpus_per_run < 1:
            raise ConfigError("--cpus-per-run", f"must be at least 1; got {self.cpus_per_run}")
        if not 0 <= self.gpus_per_run <= 64:
            raise ConfigError("--gpus-per-run", f"must be in [0, 64]; got {self.gpus_per_run:g}")
        if self.kind == "local" and (self.address is not None or self.gpus_per_run):
            flag = "--address" if self.address is not None else "--gpus-per-run"
            raise ConfigError(flag, "needs --backend ray (the local pool does not schedule machines or GPUs)")
        if self.retries < 0:
            raise ConfigError("retries", f"must be at least 0; got {self.retries}")
        return self

    @property
    def workers(self) -> int:
        """Runs at once on this machine."""
        return self.jobs or max(1, default_jobs() // self.cpus_per_run)

    def describe(self) -> str:
        if self.kind == "ray":
            where = f"Ray at {self.address}" if self.address else f"local Ray ({self.workers * self.cpus_per_run} CPUs)"
            return f"{where}, {self.cpus_per_run} CPU(s){f' and {self.gpus_per_run:g} GPU(s)' if self.gpus_per_run else ''} per run"
        return f"{self.workers} local worker(s)" if self.workers > 1 else "this process"


class _Collector:
    """Writes each finished run's folder, records its outcome and rewrites ``runs.csv``."""

    def __init__(self, out: Path, earlier: list[RunOutcome], on_done: Callable[[RunOutcome], None] | None):
        self.out, self.on_done = out, on_done
        self.outcomes = list(earlier)

    def __call__(self, result: TaskResult) -> None:
        if result.files:
            write_run_folder(self.out / "runs", result)
        self.outcomes.append(result.outcome)
        write_runs_csv(self.out / "runs.csv", self.outcomes)
        if self.on_done is not None:
            self.on_done(result.outcome)


def resume_split(jobs: list[RunJob], out: Path) -> tuple[list[RunJob], list[RunOutcome]]:
    """(jobs to run, outcomes of the finished ones) in ``out``; removes an interrupted driver's leftovers."""
    remove_partials(out / "runs")
    return split_finished(jobs, out / "runs", read_runs_csv(out / "runs.csv"))


def run_jobs(jobs: list[RunJob], out: Path, backend: Backend, finished: list[RunOutcome] = (),
             on_done: Callable[[RunOutcome], None] | None = None,
             task: Callable[..., TaskResult] = train_task) -> list[RunOutcome]:
    """Runs ``jobs`` into ``out/runs/<name>`` on ``backend``; returns every outcome (``finished`` first).

    Args:
        jobs: What to run (after ``resume_split`` when resuming).
        out: The plan's folder (``runs/`` and ``runs.csv`` go there).
        backend: Where and how.
        finished: Outcomes of runs already done (kept in ``runs.csv``).
        on_done: Called in this process as each run finishes.
        task: The worker function (``train_task``; tests pass one that crashes its worker once).
    """
    collect = _Collector(out, list(finished), on_done)
    threads = backend.cpus_per_run
    if backend.kind == "ray":
        from app.runner.ray_backend import run_ray

        run_ray(jobs, backend.workers, threads, backend.retries, backend.address, backend.gpus_per_run,
                collect, task, out)
    elif backend.workers <= 1 or len(jobs) <= 1:
        from app.runner.local import run_in_process

        run_in_process(jobs, threads, collect, task)
    else:
        from app.runner.local import run_pool

        run_pool(jobs, backend.workers, threads, backend.retries, collect, task)
    return collect.outcomes
