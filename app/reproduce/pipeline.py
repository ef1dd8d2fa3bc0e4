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

from app.reproduce import claims as C
from app.reproduce import figures as F
from app.reproduce.plan import (BASELINE, PER_LAYER_SLO, REAL_DATA, SCALES, SYNTHETIC_TARGETS, RunSpec,
                                Scale, build_plan, experiment_by_name, run_cost, slo_variant, write_plan)
from app.reproduce.report import Timing, process_seconds, write_outputs
from app.reproduce.results import Run, by_seed, group, load_runs
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
    """Reads the run folders, checks the claims, writes figures (unless told not to), claims.csv and report.md.

    ``runs_seconds`` and ``jobs`` describe the training phase (None: made elsewhere);
    ``process_age`` puts this process's age (start-up included) in the report's run time.
    """
    start = time.perf_counter()
    runs = load_runs(out)
    results = check_all(runs)
    if figures:
        write_figures(runs, out)
    timing = Timing(runs_seconds, time.perf_counter() - start, _run_seconds(out), jobs,
                    process_seconds() if process_age else None)
    write_outputs(out, results, specs, runs, scale, timing, command)
    return results


def _inputs(runs: list[Run]) -> dict:
    """The grouped histories every check and figure takes."""
    per_layer = {exp: {l: group(runs, slo_variant(l), (exp,)).get(exp, {})
                       for l in experiment_by_name(exp).slo_layers} for exp in PER_LAYER_SLO}
    finals: dict[int, list] = {}
    for r in runs:
        if r.final:
            finals.setdefault(r.seed, []).append(r.final)
    return {
        "sgd": group(runs, BASELINE),
        "slo1": group(runs, slo_variant(1)),
        "per_layer": {e: {l: g for l, g in t.items() if g} for e, t in per_layer.items()},
        "finals": finals,
        "by_seed": by_seed(runs),
    }


def check_all(runs: list[Run]) -> list[C.ClaimResult]:
    """The seven claim results, in order."""
    x = _inputs(runs)
    synthetic = {e: g for e, g in x["slo1"].items() if e in SYNTHETIC_TARGETS}
    return [
        C.check_early_centered(x["sgd"]),
        C.check_uc_rises(x["sgd"]),
        C.check_identity(x["finals"]),
        C.check_share_gap(x["by_seed"]),
        C.check_slo_layers(x["sgd"], x["per_layer"]),
        C.check_feature_quality(x["sgd"], synthetic),
        C.check_real_data(x["sgd"].get(REAL_DATA, {}), x["slo1"].get(REAL_DATA, {}), REAL_DATA),
    ]


def write_figures(runs: list[Run], out: Path) -> None:
    """claim1.png ... claim7.png."""
    x = _inputs(runs)
    synthetic = {e: g for e, g in x["slo1"].items() if e in SYNTHETIC_TARGETS}
    figures = {
        1: lambda: F.fig_early(x["sgd"]),
        2: lambda: F.fig_uc_rise(x["sgd"]),
        3: lambda: F.fig_identity([f for fs in x["finals"].values() for f in fs]),
        4: lambda: F.fig_share_gap(x["by_seed"]),
        5: lambda: F.fig_slo_layers(x["sgd"], x["per_layer"]),
        6: lambda: F.fig_feature_quality(x["sgd"], synthetic),
        7: lambda: F.fig_real_data(x["sgd"].get(REAL_DATA, {}), x["slo1"].get(REAL_DATA, {}), REAL_DATA),
    }
    for number, make in figures.items():
        save_figure(make(), out / f"claim{number}.png")


def _summary(results: list[C.ClaimResult]) -> str:
    lines = [f"{'claim':<70} {'holds':>5}  value"]
    for r in results:
        lines.append(f"{r.claim[:70]:<70} {r.holds_text:>5}  {r.value or 'n/a'}")
    return "\n".join(lines)
