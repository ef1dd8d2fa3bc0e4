"""The one runner behind ``reproduce`` and ``sweep``: configs in, run folders out.

A plan is a list of :class:`~app.runner.jobs.RunJob` (a readable name and a RunConfig).
Each job is trained by a worker into a temporary folder with ``Engine.save``; the worker
returns the folder's files and this process writes them under ``DIR/runs/<name>/``
(into a hidden temporary folder, then one rename), so a run folder exists only when it
is complete, also when the worker ran on another machine of a Ray cluster.

Backends (:mod:`app.runner.backends`): ``local`` (this process, or a pool of spawned
processes) and ``ray`` (local Ray or an existing cluster; optional dependency). Both run
the same task function, so their folders are byte-identical. Resume
(:func:`app.runner.folders.split_finished`) skips the folders that are complete.

This package stays light: pool workers import it, so torch loads on first use.
"""

from __future__ import annotations

from app.runner.jobs import RunJob, RunOutcome, TaskResult, default_jobs, train_task

__all__ = ["RunJob", "RunOutcome", "TaskResult", "default_jobs", "train_task"]
