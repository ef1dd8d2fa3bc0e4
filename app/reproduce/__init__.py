"""``reproduce``: check the paper's claims on this machine and write a report.

Three stages, each usable alone: ``plan`` (a list of RunConfigs), ``runner`` (each config
becomes a run folder written by ``Engine.save``, through :mod:`app.runner`: a process pool
or Ray) and ``pipeline.analyse``, which reads only the run folders and writes
``claims.csv``, ``report.md`` and a figure per claim (``claims``, ``figures``, ``report``).
This module stays light: pool workers import it, so the heavy parts load on first use.
"""

from __future__ import annotations

from pathlib import Path


def main(out: Path, quick: bool = False, seeds: int | None = None, jobs: int | None = None,
         scale: str | None = None, quiet: bool = False, backend=None, resume: bool = False,
         yes: bool = False) -> int:
    """Runs every experiment, checks the claims, writes DIR/report.md and DIR/claims.csv.

    Args:
        out: The report folder (run folders go to ``out/runs``).
        quick: Fewer seeds and steps (the ``quick`` scale), same claims.
        seeds: Seeds per experiment (default: the scale's).
        jobs: Parallel worker processes (default: the CPU cores available).
        scale: ``full``, ``quick`` or ``tiny`` (tests only); overrides ``quick``.
        quiet: No progress bar or summary.
        backend: An ``app.runner.execute.Backend`` (default: the local pool).
        resume: Continue the reproduction in ``out``, skipping its finished runs.
        yes: Allow more than ``app.runner.guard.MAX_RUNS`` runs.

    Returns:
        0 once the report is written, whatever the claims showed.
    """
    from app.reproduce.pipeline import main as run

    return run(Path(out), quick=quick, seeds=seeds, jobs=jobs, scale=scale, quiet=quiet, backend=backend,
               resume=resume, yes=yes)
