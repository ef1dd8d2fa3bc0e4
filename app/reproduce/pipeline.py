"""The reproduction pipeline: plan, run, analyse.

The analysis reads only the run folders' ``metrics.csv`` and ``final.npz`` (and
``plan.json`` to know which folder is which), so it works on folders made elsewhere.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from app.reproduce import claims as C
from app.reproduce import comparisons, dynamics
from app.reproduce import figures as F
from app.reproduce.comparisons import targets
from app.reproduce.dynamics import BASELINE
from app.reproduce.identities import check_identities
from app.reproduce.plan import REAL_DATA, SCALES, RunSpec, Scale, build_plan, write_plan
from app.reproduce.report import Analysis, Timing, process_seconds, write_outputs
from app.reproduce.results import ExpRuns, experiments_of, load_runs
from app.runner.command import check_backend, execute_plan, guard
from app.runner.execute import Backend
from app.runner.guard import check_out, create_out
from app.runner.jobs import RunJob
from core.config import ConfigError
from core.iofiles import atomic_write_text
from core.plots import save_figure


def main(out: Path, quick: bool = False, seeds: int | None = None, jobs: int | None = None,
         scale: str | None = None, quiet: bool = False, backend: Backend | None = None,
         resume: bool = False, yes: bool = False) -> int:
    """See ``app.reproduce.main``."""
    out = Path(out)
    name = scale or ("quick" if quick else "full")
    if name not in SCALES:
        raise ConfigError("scale", f"must be one of {', '.join(SCALES)}; got {name!r}")
    if seeds is not None and seeds < 1:
        raise ConfigError("--seeds", f"must be at least 1; got {seeds}")
    backend = check_backend(replace(backend or Backend(), jobs=jobs if jobs is not None else (backend or Backend()).jobs))
    check_out(out, resume, "meta.json")
    if resume:
        name, seeds = _resumed(out, scale or ("quick" if quick else None), seeds)
    per_seed = [RunJob(s.id, s.config) for s in build_plan(SCALES[name], 1)]
    n_runs = len(per_seed) * (seeds or SCALES[name].seeds)
    seconds = guard(per_seed, n_runs, backend, yes, "--seeds", out if resume else None)
    command = _command(out, name, seeds, backend, resume)
    results = reproduce(out, SCALES[name], seeds, backend, command, quiet, resume, seconds)
    if not quiet:
        print(_summary(results))
        print(f"wrote {out / 'report.md'} and {out / 'claims.csv'}")
    return 0


def _resumed(out: Path, scale: str | None, seeds: int | None) -> tuple[str, int | None]:
    """The scale and seeds recorded in ``out/meta.json``; flags that disagree with them are refused."""
    try:
        meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
        name, recorded = meta["scale"], meta.get("seeds")
        SCALES[name]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError("--resume", f"meta.json in {str(out)!r} cannot be read ({err})") from None
    if (scale is not None and scale != name) or (seeds is not None and seeds != recorded):
        raise ConfigError("--resume", f"{str(out)!r} was planned at scale {name} with seeds {recorded}; "
                                      "drop --quick/--seeds to continue it")
    return name, recorded


def _command(out: Path, scale: str, seeds: int | None, backend: Backend, resume: bool = False) -> str:
    flags = {"full": "", "quick": " --quick"}.get(scale, f" (scale {scale})")
    flags += f" --seeds {seeds}" if seeds is not None else ""
    flags += f" --jobs {backend.jobs}" if backend.jobs is not None else ""
    flags += f" --backend {backend.kind}" if backend.kind != "local" else ""
    flags += f" --address {backend.address}" if backend.address else ""
    flags += f" --cpus-per-run {backend.cpus_per_run}" if backend.cpus_per_run != 1 else ""
    return f"python -m app.cli reproduce{flags} --{'resume' if resume else 'out'} {out}"


def reproduce(out: Path, scale: Scale, seeds: int | None, backend: Backend, command: str,
              quiet: bool = False, resume: bool = False, seconds: float = 0.0) -> list[C.ClaimResult]:
    """Plans, runs (through ``app.runner``, skipping finished runs when resuming) and analyses."""
    specs = build_plan(scale, seeds)
    create_out(out)
    if not resume:  # first: it makes the folder resumable
        atomic_write_text(out / "meta.json", json.dumps({"scale": scale.name, "seeds": seeds, "command": command}) + "\n")
    write_plan(specs, out)
    start = time.perf_counter()
    execute_plan([RunJob(s.id, s.config) for s in specs], out, backend, resume, f"reproduce ({scale.name})",
                 seconds, quiet)
    return analyse(out, scale, specs, command, time.perf_counter() - start, backend.workers)


def _run_seconds(out: Path) -> list[float]:
    path = out / "runs.csv"
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return [float(r["seconds"]) for r in csv.DictReader(f) if r["seconds"]]


def analyse_folder(out: Path, figures: bool = True) -> int:
    """Rebuilds the report of ``out`` from its run folders (made here or by a cluster)."""
    out = Path(out)
    if not (out / "meta.json").is_file():
        raise ConfigError("--analyse", f"{str(out)!r} has no meta.json; is it a reproduce folder?")
    meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    scale = SCALES[meta["scale"]]
    specs = build_plan(scale, meta.get("seeds"))
    earlier = json.loads((out / "timing.json").read_text()) if (out / "timing.json").is_file() else {}
    results = analyse(out, scale, specs, meta["command"], earlier.get("runs_s"), earlier.get("jobs", 1),
                      figures=figures, process_age=False)
    print(_summary(results))
    return 0


def analyse(out: Path, scale: Scale, specs: list[RunSpec], command: str, runs_seconds: float | None = None,
            jobs: int = 1, figures: bool = True, process_age: bool = True) -> list[C.ClaimResult]:
    """Reads the run folders, checks claims and identities, writes figures (unless told not to), claims.csv,
    checks.csv and report.md.

    ``runs_seconds`` and ``jobs`` describe the training phase (None: made elsewhere);
    ``process_age`` puts this process's age (start-up included) in the report's run time.
    """
    start = time.perf_counter()
    runs = load_runs(out)
    exps = experiments_of(runs)
    results = check_all(exps)
    checks = check_identities(runs)
    if figures:
        write_figures(exps, runs, out)
    timing = Timing(runs_seconds, time.perf_counter() - start, _run_seconds(out), jobs,
                    process_seconds() if process_age else None)
    write_outputs(out, Analysis(results, checks, exps), specs, runs, scale, timing, command)
    return results


def _roles(exps: dict[str, ExpRuns]) -> dict[str, dict[str, ExpRuns]]:
    """Which experiments each comparison claim reads (decided by the arms and data, not by names)."""
    synthetic = {n: e for n, e in exps.items() if _has(e, "feature_quality")}
    per_layer = {n: e for n, e in exps.items() if len(targets(e)) > 1}
    return {"synthetic": synthetic, "per_layer": per_layer}


def _has(exp: ExpRuns, key: str) -> bool:
    return any(np.isfinite(h.series(key, 1)[1]).any() for h in exp.arm(BASELINE).values())


def check_all(exps: dict[str, ExpRuns]) -> list[C.ClaimResult]:
    """The claim results, in order (identities are checked apart: ``identities.check_identities``)."""
    roles = _roles(exps)
    return [
        dynamics.check_early_centered(exps),
        dynamics.check_uc_rises(exps),
        dynamics.check_share_gap(exps),
        comparisons.check_slo_layers(roles["per_layer"]),
        comparisons.check_feature_quality(roles["synthetic"]),
        comparisons.check_real_data(exps.get(REAL_DATA)),
    ]


def write_figures(exps: dict[str, ExpRuns], runs: list, out: Path) -> None:
    """claim1.png ... claim6.png and identities.png."""
    roles = _roles(exps)
    figures = {
        "claim1": lambda: F.fig_early(exps),
        "claim2": lambda: F.fig_uc_rise(exps),
        "claim3": lambda: F.fig_share_gap(exps),
        "claim4": lambda: F.fig_slo_layers(roles["per_layer"]),
        "claim5": lambda: F.fig_feature_quality(roles["synthetic"]),
        "claim6": lambda: F.fig_real_data(exps.get(REAL_DATA)),
        "identities": lambda: F.fig_identity([r.final for r in runs if r.final]),
    }
    for name, make in figures.items():
        save_figure(make(), out / f"{name}.png")


def _summary(results: list[C.ClaimResult]) -> str:
    """The verdicts as a terminal table: claim, holds, clear or narrow, smallest per-seed margin."""
    lines = [f"{'claim':<66} {'holds':>5} {'margin':>7}  smallest per-seed margin"]
    for r in results:
        low = min(r.verdict.margins.values(), default=float("nan"))
        lines.append(f"{r.title[:66]:<66} {r.holds_text:>5} {r.clear_text:>7}  {C.signed(low)}")
    return "\n".join(lines)
