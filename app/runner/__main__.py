"""``python -m app.runner CONFIG.json RUN_FOLDER``: one run, as a cluster job would run it.

The same task as every backend (``train_task``), its files written atomically into
RUN_FOLDER, which must be new or empty. CONFIG.json is read as ``run --config`` reads it (a
regular file of bounded size and JSON depth, a run folder or a preset name), and every field
is checked before training. Exit 0 (ok), 3 (diverged or failed), 2 (usage or a bad config,
one line on stderr).
"""

from __future__ import annotations

import sys
from pathlib import Path

from app.runner.folders import write_run_folder
from core.config import ConfigError, load_config
from app.runner.jobs import OK, RunOutcome, TaskResult, train_task


def run_one(config_json: str, folder: Path, threads: int = 1) -> RunOutcome:
    """Trains ``config_json`` into ``folder`` (new or empty), restoring torch's thread count."""
    import torch

    before = torch.get_num_threads()
    try:
        result = train_task(config_json, folder.name, False, threads)
    finally:
        torch.set_num_threads(before)
    if result.files:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
        write_run_folder(folder.parent, result)
    return result.outcome


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m app.runner CONFIG.json RUN_FOLDER", file=sys.stderr)
        return 2
    folder = Path(argv[1])
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        print(f"error: RUN_FOLDER: {str(folder)!r} exists and is not an empty folder", file=sys.stderr)
        return 2
    try:
        text = load_config(argv[0]).to_json()  # a regular file, bounded in size and depth; every field checked
    except ConfigError as err:
        where = "CONFIG.json: " + err.problem if err.key == "--config" else str(err)
        print(f"error: {where}", file=sys.stderr)
        return 2
    outcome = run_one(text, folder)
    print(f"{outcome.id}: {outcome.status} in {outcome.seconds:.1f} s {outcome.message}".rstrip())
    return 0 if outcome.status == OK else 3


if __name__ == "__main__":
    sys.exit(main())
