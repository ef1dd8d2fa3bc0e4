"""The reproduction pipeline: plan, run, analyse.

The analysis reads only the run folders' ``metrics.csv`` and ``final.npz`` (and
``plan.json`` to know which folder is which), so it works on folders made elsewhere.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from pathlib import Path

import numpy as np

from app.reproduce import claims as C
from app.reproduce import comparisons, dynamics
from app.reproduce import figures as F
from app.reproduce.comparisons import targets
from app.reproduce.dynamics import BASELINE
from app.reproduce.identities import check_identities
from app.reproduce.plan import REAL_DATA, SCALES, RunSpec, Scale, build_plan, run_cost, write_plan
from app.reproduce.report import Analysis, Timing, process_seconds, write_outputs
from app.reproduce.results import ExpRuns, experiments_of, load_runs
from app.reproduce.runner import RunOutcome, default_jobs, run_plan
from core.config import ConfigError
from core.iofiles import atomic_write_text
from core.plots import save_figure


class RunProgress:
    """A progress bar over runs, weighted by their estimated cost, on stderr."""

    def __init__(self, specs: list[RunSpec], quiet: bool = False, stream=None):
        self.total = sum(run_cost(s) for s in specs) or 1.0
        self.count, self.n, self.done = 0, len(specs), 0.0
        self.quiet, self.stream = quiet, stream or sys.stderr
        self.tty = self.stream.isatty()
        self.start = time.perf_counter()
        self._last_decile = -1

    def update(self, outcome: RunOutcome, spec: RunSpec) -> None:
        self.count += 1
        self.done += run_cost(spec)
        frac = min(self.done / self.total, 1.0)
        if self.quiet or (not self.tty and int(frac * 10) == self._last_decile and self.count < self.n):
            return
        self._last_decile = int(frac * 10)
        elapsed = time.perf_counter() - self.start
        left = elapsed * (1 - frac) / frac if frac > 0 else 0.0
        bar = "#" * int(frac * 24) + "." * (24 - int(frac * 24))
        note = f" {outcome.id} diverged" if outcome.status != "ok" else ""
        line = f"reproduce [{bar}] {self.count}/{self.n} runs, {elapsed:.0f} s, ~{left:.0f} s left{note}"
        self.stream.write(("\r" + line.ljust(78)) if self.tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and not self.quiet:
            self.stream.write("\n")


def main(out: Path, quick: bool = False, seeds: int | None = None, jobs: int | None = None,
         scale: str | None = None, quiet: bool = False) -> int:
    """See ``app.reproduce.main``."""
    name = scale or ("quick" if quick else "full")
    if name not in SCALES:
        raise ConfigError("scale", f"must be one of {', '.join(SCALES)}; got {name!r}")
    if seeds is not None and seeds < 1:
        raise ConfigError("--seeds", f"must be at least 1; got {seeds}")
    if jobs is not None and jobs < 1:
        raise ConfigError("--jobs", f"must be at least 1; got {jobs}")
    results = reproduce(Path(out), SCALES[name], seeds, jobs or default_jobs(), _command(out, name, seeds, jobs), quiet)
    if not quiet:
        print(_summary(results))
        print(f"wrote {Path(out) / 'report.md'} and {Path(out) / 'claims.csv'}")
    return 0


def _command(out: Path, scale: str, seeds: int | None, jobs: int | None) -> str:
    flags = {"full": "", "quick": " --quick"}.get(scale, f" (scale {scale})")
    flags += f" --seeds {seeds}" if seeds is not None else ""
    flags += f" --jobs {jobs}" if jobs is not None else ""
    return f"python -m app.cli reproduce{flags} --out {out}"


def reproduce(out: Path, scale: Scale, seeds: int | None, jobs: int, command: str,
              quiet: bool = False) -> list[C.ClaimResult]:
    """Plans, runs and analyses; returns the claim results."""
    specs = build_plan(scale, seeds)
    write_plan(specs, out)
    atomic_write_text(out / "meta.json", json.dumps({"scale": scale.name, "seeds": seeds, "command": command}) + "\n")
    if not quiet:
        print(f"reproduce: {len(specs)} runs ({scale.name} scale) on {jobs} worker(s) -> {out}", file=sys.stderr)
    start = time.perf_counter()
    progress = RunProgress(specs, quiet)
    outcomes = run_plan(specs, out, jobs, progress.update)
    progress.close()
    _write_outcomes(out, outcomes)
    return analyse(out, scale, specs, command, time.perf_counter() - start, jobs)


def _write_outcomes(out: Path, outcomes: list[RunOutcome]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(("id", "seconds", "status", "message"))
    for o in sorted(outcomes, key=lambda o: o.id):
        writer.writerow((o.id, f"{o.seconds:.3f}", o.status, o.message))
    atomic_write_text(out / "runs.csv", buf.getvalue())


def _run_seconds(out: Path) -> list[float]:
    path = out / "runs.csv"
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return [float(r["seconds"]) for r in csv.DictReader(f)]


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
