"""``python -m app.reproduce --analyse DIR``: rebuild a report from its run folders."""

from __future__ import annotations

import sys


def _main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "--analyse":
        print("usage: python -m app.reproduce --analyse DIR   (to run: python -m app.cli reproduce)",
              file=sys.stderr)
        return 2
    from app.reproduce.pipeline import analyse_folder
    from core.config import ConfigError

    try:
        return analyse_folder(argv[1])
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
