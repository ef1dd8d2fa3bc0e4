"""``sweep``: a base config times ``--grid`` items -> run folders, ``sweep.csv`` and ``sweep.png``.

``DIR/sweep.json`` holds the plan (base config, grid items, run names and values), written
before the first run, so ``sweep --resume DIR`` needs nothing else and skips the finished
run folders.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from app.runner.command import check_backend, execute_plan, guard
from app.runner.execute import Backend
from app.runner.guard import check_out, create_out
from app.runner.jobs import OK, RunJob, RunOutcome
from app.sweep.grid import Axis, combos, grid_size, largest_item, parse_grid, run_names
from core.config import ConfigError, Limits, RunConfig
from core.iofiles import atomic_write_text

PLAN_FILE = "sweep.json"
PLAN_VERSION = 1
EXIT_SOME_FAILED = 3


def main(base: RunConfig | None, grid: list[str], out: Path, backend: Backend, resume: bool = False,
         yes: bool = False, quiet: bool = False, command: str = "", figures: bool = True) -> int:
    """Plans, checks, runs and tabulates a sweep; 0 when every run ended ok, 3 otherwise.

    Args:
        base: The base config (None with ``resume``: it comes from ``DIR/sweep.json``).
        grid: The ``--grid`` items (empty with ``resume``).
        out: The sweep folder.
        backend: Where the runs execute.
        resume: Continue the sweep in ``out``, skipping finished runs.
        yes: Allow more than ``MAX_RUNS`` runs.
        quiet: No plan line, progress bar or summary.
        command: The command line, recorded in ``sweep.json``.
        figures: Draw each run's ``nfa.png`` and ``heatmaps.png`` as ``run`` does (resume: as recorded).
    """
    check_backend(backend)
    check_out(out, resume, PLAN_FILE)
    limits = Limits.from_env()
    plan = _read_plan(out) if resume else None
    if plan is not None:
        base, grid = RunConfig.from_dict(plan["base"], limits), list(plan["grid"])
        figures = bool(plan.get("figures", True))
    axes = parse_grid(grid, base, limits)
    seconds = guard(_sample(axes, base, limits), grid_size(axes), backend, yes,
                    f"--grid {largest_item(axes)}", out if resume else None)
    jobs, points = _jobs(axes, base, limits, figures)
    plan = plan or _new_plan(base, axes, jobs, points, command)
    if [r["name"] for r in plan["runs"]] != [j.name for j in jobs]:
        raise ConfigError("--resume", f"{PLAN_FILE} in {str(out)!r} lists other runs than its grid makes now")
    create_out(out)
    atomic_write_text(out / PLAN_FILE, json.dumps(plan, indent=1) + "\n")
    outcomes = execute_plan(jobs, out, backend, resume, "sweep", seconds, quiet)
    return _finish(out, plan, outcomes, quiet)


def _read_plan(out: Path) -> dict:
    try:
        plan = json.loads((out / PLAN_FILE).read_text(encoding="utf-8"))
        if plan.get("version") != PLAN_VERSION or not isinstance(plan.get("grid"), list):
            raise ValueError("unknown version")
        return plan
    except (OSError, ValueError, AttributeError) as err:
        raise ConfigError("--resume", f"{PLAN_FILE} in {str(out)!r} cannot be read ({err})") from None


def _sample(axes: list[Axis], base: RunConfig, limits: Limits) -> list[RunJob]:
    """A few runs spanning the grid (each axis at its ends), for the time estimate."""
    ends = [Axis(a.item, a.key, tuple(dict.fromkeys((a.values[0], a.values[-1])))) for a in axes]
    return [RunJob(f"sample{i}", cfg) for i, (_, cfg) in enumerate(combos(ends, base, limits))]


def _jobs(axes: list[Axis], base: RunConfig, limits: Limits, figures: bool) -> tuple[list[RunJob], list[dict]]:
    made = combos(axes, base, limits)
    points = [values for values, _ in made]
    names = run_names(points)
    return [RunJob(n, cfg, figures=figures) for n, (_, cfg) in zip(names, made)], points


def _new_plan(base: RunConfig, axes: list[Axis], jobs: list[RunJob], points: list[dict], command: str) -> dict:
    runs = [{"name": j.name, "values": p, "seed": j.config.seed} for j, p in zip(jobs, points)]
    return {"version": PLAN_VERSION, "command": command, "figures": jobs[0].figures, "base": base.to_dict(),
            "grid": [a.item for a in axes], "keys": [a.key for a in axes], "runs": runs}


def _finish(out: Path, plan: dict, outcomes: list[RunOutcome], quiet: bool) -> int:
    from app.sweep.figure import write_sweep_png
    from app.sweep.table import sweep_rows, write_sweep_csv

    rows = sweep_rows(out, plan)
    write_sweep_csv(out / "sweep.csv", rows, plan["keys"])
    write_sweep_png(out / "sweep.png", rows, plan["keys"])
    bad = [o for o in outcomes if o.status != OK]
    if not quiet:
        counts = ", ".join(f"{sum(o.status == s for o in outcomes)} {s}"
                           for s in dict.fromkeys(o.status for o in sorted(outcomes, key=lambda o: o.status != OK)))
        print(f"sweep: {len(outcomes)} runs ({counts}); wrote {out / 'sweep.csv'} and {out / 'sweep.png'}")
        sys.stdout.flush()
    return EXIT_SOME_FAILED if bad else 0
