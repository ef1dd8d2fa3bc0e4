"""Command line: ``python -m app.cli {run,compare,web,tui,reproduce,sweep} ...``.

Parses arguments and delegates to the engine. User errors (bad config, value, file or
output folder) end with one line on stderr and exit status 2, before any training; a run
that diverged or died exits with status 3; SIGINT/SIGTERM save the run and exit 130/143.
Bugs keep their traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
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
        p.add_argument("--out", help="output folder, new or empty (default runs/<command>-<time>)")
        p.add_argument("--force", action="store_true",
                       help="replace an earlier run in --out (a folder holding anything else is still refused)")
        p.add_argument("--checkpoint-every", type=float, default=None, metavar="SECONDS",
                       help="save the run folder this often while training (default 60; 0: at every measurement)")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        if name == "run":
            p.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its last checkpoint")
    web = sub.add_parser("web", help="the Gradio web app")
    web.add_argument("--host", default="127.0.0.1")
    web.add_argument("--port", type=_port, default=7860, help="TCP port, 1..65535 (default 7860)")
    tui = sub.add_parser("tui", help="the Textual terminal app")
    tui.add_argument("--config", help="config JSON file or preset name")
    _add_reproduce_parser(sub)
    _add_sweep_parser(sub)
    return parser


def _add_reproduce_parser(sub) -> None:
    rep = sub.add_parser("reproduce", help="check the paper's claims and write a report")
    rep.add_argument("--quick", action="store_true", help="2 seeds, fewer steps: under 45 s on 2 cores")
    rep.add_argument("--seeds", type=int, default=None, help="seeds per experiment")
    rep.add_argument("--out", type=Path, help="report folder (new or empty)")
    _add_plan_args(rep, "report")


def _add_sweep_parser(sub) -> None:
    sw = sub.add_parser("sweep", help="a grid of runs over config keys, on local processes or Ray")
    _add_config_args(sw)
    sw.add_argument("--grid", action="append", default=[], metavar="KEY=VALUES",
                    help="vary a dotted key: KEY=v1,v2,... or KEY=START:STOP[:STEP] (integers; repeatable)")
    sw.add_argument("--out", type=Path, help="sweep folder (new or empty)")
    sw.add_argument("--no-figures", action="store_true",
                    help="skip each run's nfa.png and heatmaps.png (about a second per run saved)")
    _add_plan_args(sw, "sweep")


def _add_plan_args(p: argparse.ArgumentParser, what: str) -> None:
    """Flags shared by reproduce and sweep: resume, size guard, backend and resources."""
    from app.runner.guard import MAX_RUNS

    p.add_argument("--resume", type=Path, metavar="DIR", help=f"continue the {what} in DIR, skipping finished runs")
    p.add_argument("--yes", action="store_true", help=f"allow more than {MAX_RUNS} runs")
    p.add_argument("--quiet", action="store_true", help="no plan line, progress bar or summary")
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="local: processes on this machine (default); ray: Ray tasks (pip install -r requirements-cluster.txt)")
    p.add_argument("--jobs", type=int, default=None, help="runs at once (default: CPU cores / --cpus-per-run)")
    p.add_argument("--address", default=None, help="Ray cluster to join (auto, HOST:PORT, ray://HOST:10001); default: local Ray")
    p.add_argument("--cpus-per-run", type=int, default=1, help="CPUs per run (Ray resource; torch threads)")
    p.add_argument("--gpus-per-run", type=float, default=0.0, help="GPUs per run (Ray resource)")


def _port(text: str) -> int:
    if not (text.isdigit() and len(text) <= 5 and 1 <= int(text) <= 65535):
        raise argparse.ArgumentTypeError(f"must be a whole number in 1..65535; got {text[:20]!r}")
    return int(text)


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help=f"config JSON file, run folder, or preset ({', '.join(PRESETS)})")
    p.add_argument("--steps", type=int, help="training steps (overrides the config)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set optim.slo.enabled=true (repeatable)")


def resolve_config(args: argparse.Namespace) -> RunConfig:
    """Config file or preset, then --set overrides, then --steps; validated."""
    cfg = load_config(args.config) if args.config is not None else default_config()  # "" is refused there
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
    """runs/<command>-<time>, made here: a second run started in the same second gets ``-2``, ``-3``, ..."""
    base = Path("runs") / f"{command}-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        base.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"--out: cannot create the folder 'runs': {err.strerror or err}") from None
    for i in range(1, 1000):
        out = base if i == 1 else base.with_name(f"{base.name}-{i}")
        try:
            out.mkdir()  # atomic: of two runs, only one creates a given name
            return out
        except FileExistsError:
            continue
        except OSError as err:
            raise UserError(f"--out: cannot create the folder {str(out)!r}: {err.strerror or err}") from None
    raise UserError(f"--out: too many runs named {base.name}-*; give --out")


def _own_entries(out: Path, command: str) -> tuple[list[Path], list[str]]:
    """(a run's own files in ``out``, names of anything else) for ``--force``."""
    from core.iofiles import RUN_FILES, foreign_entries  # numpy only: still no torch import

    if command == "run":
        return [out / n for n in RUN_FILES if (out / n).exists()], foreign_entries(out)
    own, foreign = [out / n for n in ("compare.csv", "compare.png") if (out / n).exists()], []
    for entry in sorted(out.iterdir()):
        if entry.name in ("compare.csv", "compare.png"):
            continue
        inner = foreign_entries(entry) if entry.is_dir() and not entry.is_symlink() else None
        if inner is None or inner:
            foreign.append(entry.name if inner is None else f"{entry.name}/{inner[0]}")
        else:
            own += [entry / n for n in RUN_FILES if (entry / n).exists()]
    return own, foreign


def _prepare_out(out: Path, command: str, force: bool) -> Path:
    """Checks ``--out`` before any training: new or empty (or, with --force, an earlier run), writable."""
    if out.is_dir() and any(out.iterdir()):
        if not force:
            hint = f", continue it with run --resume {out}" if (out / "state.json").exists() else ""
            raise UserError(f"--out: {str(out)!r} is not empty; give a new or empty folder{hint}, "
                            f"or replace the run there with --force")
        own, foreign = _own_entries(out, command)
        if foreign:
            raise UserError(f"--out: {str(out)!r} holds {foreign[0]!r}, which is not a run's file; "
                            f"--force replaces only a run folder")
        _check_writable(out)
        for path in own:
            path.unlink()
        return out
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"--out: cannot create the folder {str(out)!r}: {err.strerror or err}") from None
    _check_writable(out)
    return out


def _check_writable(folder: Path) -> None:
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise UserError(f"--out: cannot write in {str(folder)!r}: {err.strerror or err}") from None


def _out_arg(args: argparse.Namespace, command: str) -> tuple[Path, bool]:
    """(the output folder, whether this command created it)."""
    if args.out is None:
        return _default_out(command), True
    if not args.out.strip():
        raise UserError("--out: is empty; give a folder path")
    existed = os.path.lexists(args.out)
    return _prepare_out(Path(args.out), command, args.force), not existed


def _every(args: argparse.Namespace) -> float:
    from app.checkpoints import DEFAULT_EVERY_S

    every = args.checkpoint_every
    if every is None:
        return DEFAULT_EVERY_S
    if not (0 <= every <= 1e7):
        raise UserError(f"--checkpoint-every: must be in [0, 1e7] seconds; got {every:g}")
    return every


def main(argv: Sequence[str] | None = None, own_process: bool = False) -> int:
    """Runs one command; ``own_process``: this process is the CLI's alone (``python -m app.cli``), so a
    headless training command may settle it for training once its arguments are checked (app/process.py)."""
    try:
        args = build_parser().parse_args(argv)
        return _dispatch(args, own_process)
    except (ConfigError, UserError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # Interrupted from a checkpointed run: saved, say where
        from app.checkpoints import Interrupted

        if not isinstance(err, Interrupted):
            raise
        hint = f": continue with python -m app.cli run --resume {err.folder}" if err.folder is not None else ""
        print(f"{err}{hint}", file=sys.stderr)
        return err.exit_status


def _settle(own_process: bool) -> None:
    if own_process:
        from app.process import settle_for_training

        settle_for_training()


def _dispatch(args: argparse.Namespace, own_process: bool = False) -> int:
    if args.command == "run" and args.resume is not None:
        return _resume(args, own_process)
    if args.command in ("run", "compare"):
        cfg, every = resolve_config(args), _every(args)
        out, created = _out_arg(args, args.command)
        from app import headless  # after the config checks: user errors need no torch import

        _settle(own_process)

        if args.command == "run":
            runner = lambda: headless.run_command(cfg, out, quiet=args.quiet, every_s=every)  # noqa: E731
        else:
            from app.compare import compare_command

            runner = lambda: compare_command(cfg, out, quiet=args.quiet, every_s=every)  # noqa: E731
        try:
            return runner()
        except ConfigError:
            if created:
                _remove_if_empty(out)  # a data error found on loading: leave no empty folder behind
            raise
    if args.command == "web":
        from app.web import main as web_main

        return web_main(host=args.host, port=args.port)
    if args.command == "tui":
        cfg = load_config(args.config) if args.config is not None else default_config()  # checked before Textual
        from app.tui import main as tui_main

        return tui_main(cfg)
    if args.command == "reproduce":
        return _reproduce_command(args, own_process)
    if args.command == "sweep":
        return _sweep_command(args, own_process)
    raise UserError(f"unknown command {args.command!r}")


def _resume(args: argparse.Namespace, own_process: bool = False) -> int:
    """``run --resume DIR``: the config, data and position all come from DIR."""
    for flag, given in (("--config", args.config), ("--set", args.sets), ("--steps", args.steps),
                        ("--out", args.out), ("--force", args.force)):
        if given:
            raise UserError(f"--resume: {flag} cannot be combined with it; the run folder holds the whole config")
    if not args.resume.strip():
        raise UserError("--resume: is empty; give a run folder")
    folder = Path(args.resume)
    if not (folder / "state.json").is_file():
        raise UserError(f"--resume: {args.resume!r} is not a run folder (no state.json)")
    _check_writable(folder)
    every = _every(args)
    from app.headless import resume_command

    _settle(own_process)
    return resume_command(folder, quiet=args.quiet, every_s=every)


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


def _plan_folder(args: argparse.Namespace) -> tuple[Path, bool]:
    """(folder, resuming) from --out / --resume DIR."""
    if args.resume is not None:
        if args.out is not None and Path(args.out) != Path(args.resume):
            raise UserError("--out: give either --out DIR (a new plan) or --resume DIR (continue one), not both")
        return Path(args.resume), True
    if args.out is None:
        raise UserError(f"{args.command}: --out DIR (a new folder) or --resume DIR is required")
    return Path(args.out), False


def _backend(args: argparse.Namespace):
    from app.runner.execute import Backend

    return Backend(args.backend, args.jobs, args.address, args.cpus_per_run, args.gpus_per_run)


def _reproduce_command(args: argparse.Namespace, own_process: bool = False) -> int:
    from app.reproduce import main as reproduce_main

    out, resume = _plan_folder(args)
    _settle(own_process)
    return reproduce_main(out=out, quick=args.quick, seeds=args.seeds, jobs=args.jobs, quiet=args.quiet,
                          backend=_backend(args), resume=resume, yes=args.yes)


def _sweep_command(args: argparse.Namespace, own_process: bool = False) -> int:
    from app.sweep.pipeline import main as sweep_main

    out, resume = _plan_folder(args)
    if resume and (args.grid or args.config or args.sets or args.steps is not None):
        raise UserError("--resume: the sweep's plan is in DIR/sweep.json; drop --grid, --config, --set and --steps")
    base = None if resume else resolve_config(args)
    command = "python -m app.cli " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["sweep"] else ""
    _settle(own_process)
    return sweep_main(base, args.grid, out, _backend(args), resume=resume, yes=args.yes, quiet=args.quiet,
                      command=command, figures=not args.no_figures)


if __name__ == "__main__":
    sys.exit(main(own_process=True))
