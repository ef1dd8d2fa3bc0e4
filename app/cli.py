"""Command line: ``python -m app.cli {run,compare,web,tui,reproduce} ...``.

Parses arguments and delegates to the engine. User errors (bad config, value or file)
end with one line on stderr and exit status 2; a diverged run exits with status 3.
Bugs keep their traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

from core.config import ConfigError, RunConfig, default_config, load_config, set_dotted, validate, Limits, PRESETS

EXIT_USER_ERROR = 2
EXIT_DIVERGED = 3


class UserError(Exception):
    """An error whose one-line message is all the user needs."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every other user error
        raise UserError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m app.cli", description="NFA Explorer: watch feature learning as alignment.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, help_text in (("run", "train headless and write a run folder"),
                            ("compare", "baseline, control (SLO boost 1) and SLO from the same start and batches")):
        p = sub.add_parser(name, help=help_text)
        _add_config_args(p)
        p.add_argument("--out", type=Path, help="output folder (default runs/<command>-<time>)")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
    web = sub.add_parser("web", help="the Gradio web app")
    web.add_argument("--host", default="127.0.0.1")
    web.add_argument("--port", type=int, default=7860)
    tui = sub.add_parser("tui", help="the Textual terminal app")
    tui.add_argument("--config", help="config JSON file or preset name")
    rep = sub.add_parser("reproduce", help="check the paper's claims and write a report")
    rep.add_argument("--quick", action="store_true", help="2 seeds, fewer steps: under 45 s on 2 cores")
    rep.add_argument("--seeds", type=int, default=None, help="seeds per experiment")
    rep.add_argument("--out", type=Path, required=True, help="report folder")
    rep.add_argument("--jobs", type=int, default=None, help="parallel workers (default: CPU cores)")
    return parser


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help=f"config JSON file, run folder, or preset ({', '.join(PRESETS)})")
    p.add_argument("--steps", type=int, help="training steps (overrides the config)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set optim.slo.enabled=true (repeatable)")


def resolve_config(args: argparse.Namespace) -> RunConfig:
    """Config file or preset, then --set overrides, then --steps; validated."""
    cfg = load_config(args.config) if args.config else default_config()
    for item in args.sets:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError("--set", f"expects KEY=VALUE, got {item!r}")
        set_dotted(cfg, key.strip(), value.strip())
    if args.steps is not None:
        set_dotted(cfg, "steps", args.steps)
    validate(cfg, Limits.from_env())
    return cfg


def _default_out(command: str) -> Path:
    return Path("runs") / f"{command}-{time.strftime('%Y%m%d-%H%M%S')}"


def _prepare_out(out: Path) -> Path:
    """Creates the output folder before training, so a bad --out fails at once, as a user error."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"--out: cannot create the folder {str(out)!r}: {err.strerror or err}") from None
    return out


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return _dispatch(args)
    except (ConfigError, UserError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "run":
        cfg, out = resolve_config(args), _prepare_out(args.out or _default_out("run"))
        from app.headless import run_command  # after the config checks: user errors need no torch import

        return run_command(cfg, out, quiet=args.quiet)
    if args.command == "compare":
        cfg, out = resolve_config(args), _prepare_out(args.out or _default_out("compare"))
        from app.compare import compare_command  # after the config checks: user errors need no torch import

        return compare_command(cfg, out, quiet=args.quiet)
    if args.command == "web":
        from app.web import main as web_main

        return web_main(host=args.host, port=args.port)
    if args.command == "tui":
        from app.tui import main as tui_main

        cfg = load_config(args.config) if args.config else default_config()
        return tui_main(cfg)
    if args.command == "reproduce":
        from app.reproduce import main as reproduce_main

        return reproduce_main(out=args.out, quick=args.quick, seeds=args.seeds, jobs=args.jobs)
    raise UserError(f"unknown command {args.command!r}")


if __name__ == "__main__":
    sys.exit(main())
