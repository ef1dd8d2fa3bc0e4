"""The old entry point of reproduce's runner; the runner itself is :mod:`app.runner`.

``python -m app.reproduce.runner CONFIG.json RUN_FOLDER`` still trains one config into a
run folder (the same task as every backend of ``reproduce`` and ``sweep``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from app.runner.__main__ import main, run_one
from app.runner.jobs import RunOutcome, default_jobs

__all__ = ["RunOutcome", "default_jobs", "execute_restoring_threads", "main"]


def execute_restoring_threads(config_json: str, folder: str, run_id: str = "") -> RunOutcome:
    """Trains one config into ``folder`` in this process on one torch thread (``run_one``)."""
    outcome = run_one(config_json, Path(folder))
    return RunOutcome(run_id or outcome.id, outcome.seconds, outcome.status, outcome.message)


if __name__ == "__main__":
    sys.exit(main())
