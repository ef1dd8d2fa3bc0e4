"""Writing and reading the outputs: claims.csv, report.md and the README section."""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from app.reproduce import tables as T
from app.reproduce.claims import CLEAR_FLOOR as C_FLOOR
from app.reproduce.claims import CLEAR_SE as C_SE
from app.reproduce.claims import ClaimResult, signed
from app.reproduce.diagnose import SLOW_BASELINE as D_SLOW
from app.reproduce.identities import SOURCE as IDENTITY_SOURCE
from app.reproduce.identities import IdentityResult
from app.reproduce.plan import EXPERIMENTS, RunSpec, Scale, scaled_config
from app.reproduce.results import ExpRuns, Run
from core.iofiles import atomic_write_text

CSV_COLUMNS = ("claim", "holds", "margin", "value", "per_seed_margin", "source", "setting", "time_point",
               "reason", "flags", "detail")
CHECK_COLUMNS = ("check", "source", "holds", "largest_difference", "tolerance", "detail")


@dataclass(frozen=True)
class Analysis:
    """What the analysis found: claim results, identity checks, and the runs they read."""

    results: list[ClaimResult]
    checks: list[IdentityResult]
    exps: dict[str, ExpRuns]


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of the phases of one reproduction."""

    runs: float | None
    """Training wall time; None when the runs were made elsewhere (``--analyse``)."""
    analysis: float
    run_seconds: list[float]
    jobs: int
    process: float | None = None
    """Seconds since this Python process started (start-up included), where the OS says."""

    @property
    def total(self) -> float:
        return (self.runs or 0.0) + self.analysis


# -- claims.csv --------------------------------------------------------------------------

def claims_csv(results: list[ClaimResult]) -> str:
    """claims.csv text, one row per claim (holds: yes, no or n/a; margin: clear, narrow or n/a)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in results:
        margins = "; ".join(f"{s}:{signed(m)}" for s, m in r.verdict.margins.items())
        writer.writerow([r.title, r.holds_text, r.clear_text, "" if r.value is None else str(r.value), margins,
                         r.claim.citation, r.claim.setting, r.claim.time_point, r.reason, " | ".join(r.flags),
                         r.detail])
    return buf.getvalue()


def checks_csv(checks: list[IdentityResult]) -> str:
    """checks.csv text: the identities, one row each."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CHECK_COLUMNS)
    for c in checks:
        writer.writerow([f"{c.key}: {c.statement}", IDENTITY_SOURCE, c.holds_text, repr(c.worst), c.tolerance,
                         c.detail])
    return buf.getvalue()


def read_claims_csv(path: Path) -> list[dict]:
    """Parses claims.csv: ``holds`` True/False/None, ``mean``/``std`` floats (NaN if absent), ``margins``."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row["holds"] = {"yes": True, "no": False}.get(row["holds"])
        mean, _, std = row["value"].partition(" ± ")
        row["mean"], row["std"] = _float(mean), _float(std)
        row["number"] = int(row["claim"].split(":", 1)[0])
        pairs = [p.split(":") for p in row["per_seed_margin"].split("; ") if p]
        row["margins"] = {int(s): _float(m) for s, m in pairs}
    return rows


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


# -- machine and timing ------------------------------------------------------------------

def machine() -> str:
    """One line: OS, CPU model, cores, Python and library versions."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{platform.system()} {platform.machine()}, {_cpu_model()}, {cores} CPU cores available; "
            f"Python {platform.python_version()}, torch {_version('torch')} (CPU, 1 thread per run), "
            f"numpy {_version('numpy')}")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


def duration(seconds: float) -> str:
    """``3 min 12 s`` or ``41.3 s``."""
    if round(seconds, 1) < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    return f"{whole // 60} min {whole % 60} s"


def timing_line(t: Timing) -> str:
    """The run time as one sentence."""
    if t.runs is None:
        return (f"runs made elsewhere ({len(t.run_seconds)} with recorded times, {duration(sum(t.run_seconds))} "
                f"summed); analysis and figures {duration(t.analysis)}")
    since = (f"{duration(t.process)} wall from the start of the Python process" if t.process is not None
             else f"{duration(t.total)} wall (Python start-up not included)")
    return (f"{since}: training {duration(t.runs)} on {t.jobs} worker(s) "
            f"({len(t.run_seconds)} runs, {duration(sum(t.run_seconds))} of run time summed), "
            f"analysis and figures {duration(t.analysis)}")


def process_seconds() -> float | None:
    """How long this process has been running, from /proc (None elsewhere)."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


# -- report.md ---------------------------------------------------------------------------

def _claim_section(r: ClaimResult) -> str:
    verdict = {True: "holds", False: "does not hold", None: "could not be checked"}[r.holds]
    c = r.claim
    parts = [f"## Claim {r.number}: {c.statement}\n",
             f"- *Source:* {c.citation}.",
             f"- *Setting:* {c.setting}.",
             f"- *Time point:* {c.time_point}.",
             f"- *Checked:* {r.criterion}.",
             f"- *Result:* **{verdict}** ({r.clear_text}); {T.VALUE_MEANING[r.number]}, weakest case "
             f"{r.verdict.weakest or 'n/a'}: {r.value or 'n/a'}; per-seed margin: {r.verdict.margins_text() or 'n/a'}.\n",
             f"{r.detail}.\n"]
    if r.reason:
        parts.append(f"**Why{' not' if r.holds is False else ''}, measured:** {r.reason}.\n")
    parts += [f"**Flag:** {f}.\n" for f in r.flags]
    parts.append(f"![claim {r.number}](claim{r.number}.png)\n")
    return "\n".join(parts)


def _planned(specs: list[RunSpec]) -> list:
    """The experiments the plan runs, in plan order."""
    names = dict.fromkeys(s.experiment for s in specs)
    return [e for e in EXPERIMENTS if e.name in names]


def experiments_table(scale: Scale, specs: list[RunSpec]) -> str:
    """A row per planned experiment: what it trains and how."""
    lines = ["| experiment | preset + overrides | data | model | baseline | SLO (speed, boost, targets) | steps | "
             "measured |", "|---|---|---|---|---|---|---|---|"]
    for exp in _planned(specs):
        c = scaled_config(exp, scale)
        data = f"{c.data.kind}" + (f" d={c.data.d}, y = {c.data.target}" if c.data.kind == "synthetic" else "")
        over = ", ".join(f"{k}={v}" for k, v in exp.overrides.items()) or "none"
        s = c.optim.slo
        points = c.measure.n_points or "all"
        lines.append(
            f"| {exp.name} | {exp.preset}; {over} | {data}, n_train {c.data.n_train} | "
            f"{c.model.depth}x{c.model.width} {c.model.activation}, bias {c.model.bias} | "
            f"{c.optim.name} lr {c.optim.lr:g}, batch {c.optim.batch_size} | {s.speed:g}, {s.boost:g}, layers "
            f"{', '.join(map(str, exp.slo_layers))} | {c.steps} | every {c.measure.every} steps on "
            f"{points} points, {c.measure.correlation}, alpha {c.measure.alpha:g} |")
    return "\n".join(lines)


def _config_blocks(specs: list[RunSpec]) -> str:
    """Each experiment's seed-0 config per arm as JSON, folded."""
    blocks = []
    for spec in specs:
        if spec.seed == 0:
            blocks.append(f"<details><summary>{spec.experiment}, {spec.variant} ({spec.label}): {spec.id} "
                          f"(other seeds differ only in seed)</summary>\n\n```json\n{spec.config.to_json()}\n```\n"
                          f"</details>\n")
    return "\n".join(blocks)


def _runs_section(specs: list[RunSpec], runs: list[Run]) -> str:
    seeds = sorted({s.seed for s in specs})
    diverged = [r.label + f" (stopped at step {r.last_step} of {r.planned_steps})" for r in runs if r.diverged]
    missing = len(specs) - len(runs)
    text = (f"{len(specs)} runs: {len(_planned(specs))} experiments x arms x seeds {', '.join(map(str, seeds))}. "
            f"Same seed means the same data, initial weights and batch order, so every arm starts from the "
            f"same network.\n\n")
    text += ("Diverged runs (their measurements up to the divergence are used): " + "; ".join(diverged)
             if diverged else "No run diverged.")
    if missing:
        text += f"\n\n{missing} planned run folder(s) had no metrics.csv and were left out."
    return text + "\n"


def held_line(results: list[ClaimResult]) -> str:
    """``4 of 6 claims held (3 clearly); identities are checked apart``."""
    held = [r for r in results if r.holds is True]
    clear = sum(r.verdict.clear is True for r in held)
    return f"{len(held)} of {len(results)} claims held ({clear} of them clearly)"


def _arms_sections(exps: dict[str, ExpRuns]) -> list[str]:
    parts = []
    for e in exps.values():
        parts += [f"### {e.name}\n", "At the last step (mean ± std over seeds):\n", T.arms_table(e), "",
                  "UC-NFA from the early point to the last step (mean over seeds):\n", T.arms_change_table(e), ""]
    return parts


def report_markdown(a: Analysis, specs: list[RunSpec], runs: list[Run], scale: Scale, timing: Timing,
                    command: str) -> str:
    """The whole report.md."""
    seeds = sorted({s.seed for s in specs})
    flags = [f for r in a.results for f in r.flags]
    parts = [
        "# Feature learning as alignment: the paper's claims, measured\n",
        "Beaglehole, Mitliagkas, Agarwala, *Feature learning as alignment: a structural property of "
        "gradient descent in non-linear neural networks*, TMLR 2024. Every number below comes from the "
        "run folders under `runs/` (their `metrics.csv`, `config.json` and `final.npz`); a claim that did not "
        "hold is reported as such, with the measured reason.\n",
        f"- Command: `{command}` ({scale.name} scale, {len(seeds)} seeds: {', '.join(map(str, seeds))})",
        f"- Written: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        f"- Machine: {machine()}",
        f"- Run time: {timing_line(timing)}\n",
        "## Claims\n", f"{held_line(a.results)}. Identities are checks of this code, listed apart below and "
        "not counted.\n", T.claims_table(a.results), "",
        "A claim holds only if every case (experiment, layer, seed) is positive. A seed's margin is its "
        f"smallest case. *Clear*: every deciding case lies more than {C_SE} sampling standard errors of UC-NFA "
        f"and C-NFA (from the finite measurement set) from 0, or more than {C_FLOOR} where no standard error "
        "is measured; *narrow*: some case does not, so another seed or measurement set could flip it. "
        "Correlations are Pearson (the paper code's `mat_cov`) with alpha 1.\n",
        "### Where each claim comes from\n", T.sources_table(a.results), "",
        *[_claim_section(r) for r in a.results],
        "## Identities: checks of this code, not claims\n",
        "These hold by algebra whatever training does; they test that the code computes what it says.\n",
        T.identities_table(a.checks), "", *[f"- {c.key}: {c.detail}." for c in a.checks], "",
        "![identities](identities.png)\n",
        "## Are the arms comparable? Step norms\n",
        "Median Frobenius norm of each layer's update over the measured steps after the early point (the "
        "`step_norm` column). The control (SLO boost 1) moves every layer at SLO's base speed; a baseline whose "
        f"steps are below {D_SLOW:g}x the control's is flagged, and gains over it are read against the control.\n",
        T.pace_table(a.exps), "", *[f"**Flag:** {f}.\n" for f in dict.fromkeys(flags)],
        "## The arms\n", *_arms_sections(a.exps),
        "## The baseline's diagnostics\n",
        "The quantities the reasons above use, at the early point and the last step (mean over seeds).\n",
        T.baseline_diagnostics_table(a.exps), "",
        "## Experiments\n", experiments_table(scale, specs), "",
        "SLO moves every layer by `speed` (Frobenius norm) per step and the target layer by "
        "`speed x boost` (docs/nfa-math.md). Each run's full config is in `configs/<id>.json`; "
        "`plan.json` maps run ids to folders.\n",
        _config_blocks(specs),
        "## Runs\n", _runs_section(specs, runs),
        "## Rerunning one run, or all of them elsewhere\n",
        "Each run is independent: `python -m app.cli run --config configs/<id>.json --out runs/<id> --quiet` "
        "(or `python -m app.reproduce.runner configs/<id>.json runs/<id>`) writes the same folder; a "
        "cluster can run `plan.json`'s rows in any order, and `python -m app.reproduce --analyse DIR` "
        "rebuilds this report from the folders alone.\n",
    ]
    return "\n".join(parts)


def readme_section(a: Analysis, specs: list[RunSpec], timing: Timing, command: str) -> str:
    """The README's "What the paper says, and what this tool measured" section, from the measured numbers."""
    seeds = sorted({s.seed for s in specs})
    lines = [
        "## What the paper says, and what this tool measured\n",
        f"`{command}` trains {len(specs)} runs ({len(_planned(specs))} experiments, each as baseline, control "
        f"(SLO boost 1) and SLO arms from one initialisation, seeds {', '.join(map(str, seeds))}) and checks each "
        f"claim from the saved run folders. On {machine()}: {timing_line(timing)}. "
        f"{held_line(a.results)}:\n",
        T.claims_table(a.results), "",
        "Where each claim comes from, the setting it is tested in and when it is measured:\n",
        T.sources_table(a.results), "",
    ]
    for r in a.results:
        if r.holds is False or r.verdict.clear is False:
            word = "did not hold" if r.holds is False else "held narrowly"
            lines.append(f"- **Claim {r.number} {word}.** {r.reason}.")
    lines += [f"- **Flag:** {f}." for f in dict.fromkeys(f for r in a.results for f in r.flags)]
    lines += ["", "Identities are checks of this code, not claims, and are not counted above:\n",
              T.identities_table(a.checks), ""]
    return "\n".join(lines)


def write_outputs(out: Path, a: Analysis, specs: list[RunSpec], runs: list[Run], scale: Scale, timing: Timing,
                  command: str) -> None:
    """claims.csv, checks.csv, report.md, readme-section.md and timing.json (figures are written separately)."""
    atomic_write_text(out / "claims.csv", claims_csv(a.results))
    atomic_write_text(out / "checks.csv", checks_csv(a.checks))
    atomic_write_text(out / "report.md", report_markdown(a, specs, runs, scale, timing, command))
    atomic_write_text(out / "readme-section.md", readme_section(a, specs, timing, command))
    atomic_write_text(out / "timing.json", json.dumps(
        {"total_s": timing.total, "process_s": timing.process, "runs_s": timing.runs, "analysis_s": timing.analysis,
         "jobs": timing.jobs, "run_seconds_sum": sum(timing.run_seconds), "scale": scale.name}, indent=1) + "\n")
