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

from app.reproduce.claims import CLAIMS, ClaimResult
from app.reproduce.plan import EXPERIMENTS, RunSpec, Scale, scaled_config
from app.reproduce.results import Run
from core.iofiles import atomic_write_text

CSV_COLUMNS = ("claim", "holds", "value", "detail")

VALUE_MEANING = {
    1: "smallest early gap C-NFA - UC-NFA (experiment, layer)",
    2: "smallest change of layer 1's UC-NFA, final - initial",
    3: "largest |difference| (per seed)",
    4: "Spearman rho(centered share, |C-NFA - UC-NFA|)",
    5: "smallest gain in the targeted layer's UC-NFA",
    6: "smallest gain in feature quality",
    7: "gain in layer 1's UC-NFA on digits",
}
"""What the value column measures, claim by claim."""


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
    """claims.csv text: ``claim,holds,value,detail`` (holds: yes, no or n/a)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in results:
        writer.writerow([r.claim, r.holds_text, "" if r.value is None else str(r.value), r.detail])
    return buf.getvalue()


def read_claims_csv(path: Path) -> list[dict]:
    """Parses claims.csv: ``holds`` becomes True/False/None, ``mean``/``std`` floats (NaN if absent)."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row["holds"] = {"yes": True, "no": False}.get(row["holds"])
        mean, _, std = row["value"].partition(" ± ")
        row["mean"], row["std"] = _float(mean), _float(std)
        row["number"] = int(row["claim"].split(":", 1)[0])
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

def claims_table(results: list[ClaimResult], detail: bool = False) -> str:
    """The claims as a markdown table."""
    head = "| # | claim | holds | value (mean ± std over seeds) | value is |" + (" detail |" if detail else "")
    lines = [head, "|" + "---|" * (5 + detail)]
    for r in results:
        cells = [str(r.number), CLAIMS[r.number], f"**{r.holds_text}**", str(r.value or "n/a"),
                 VALUE_MEANING[r.number]] + ([r.detail] if detail else [])
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def _claim_section(r: ClaimResult) -> str:
    verdict = {True: "holds", False: "does not hold", None: "could not be checked"}[r.holds]
    return (f"## Claim {r.number}: {CLAIMS[r.number]}\n\n"
            f"*Checked:* {r.criterion}.\n\n"
            f"*Result:* **{verdict}**; {VALUE_MEANING[r.number]}: {r.value or 'n/a'}.\n\n"
            f"{r.detail}.\n\n![claim {r.number}](claim{r.number}.png)\n")


def experiments_table(scale: Scale) -> str:
    """A row per experiment: what it trains and how."""
    lines = ["| experiment | preset + overrides | data | model | SGD | SLO (speed, boost, targets) | steps | measured |",
             "|---|---|---|---|---|---|---|---|"]
    for exp in EXPERIMENTS:
        c = scaled_config(exp, scale)
        data = f"{c.data.kind}" + (f" d={c.data.d}, y = {c.data.target}" if c.data.kind == "synthetic" else "")
        over = ", ".join(f"{k}={v}" for k, v in exp.overrides.items()) or "none"
        s = c.optim.slo
        lines.append(
            f"| {exp.name} | {exp.preset}; {over} | {data}, n_train {c.data.n_train} | "
            f"{c.model.depth}x{c.model.width} {c.model.activation}, bias {c.model.bias} | "
            f"lr {c.optim.lr:g}, batch {c.optim.batch_size} | {s.speed:g}, {s.boost:g}, layers "
            f"{', '.join(map(str, exp.slo_layers))} | {c.steps} | every {c.measure.every} on "
            f"{c.measure.n_points} points, {c.measure.correlation}, alpha {c.measure.alpha:g} |")
    return "\n".join(lines)


def _config_blocks(specs: list[RunSpec]) -> str:
    """Each experiment's seed-0 SGD config as JSON, folded."""
    blocks = []
    for spec in specs:
        if spec.seed == 0 and spec.variant == "sgd":
            blocks.append(f"<details><summary>{spec.experiment}: config of {spec.id} (SLO variants differ only in "
                          f"optim.slo.enabled and target_layer; seeds only in seed)</summary>\n\n```json\n"
                          f"{spec.config.to_json()}\n```\n</details>\n")
    return "\n".join(blocks)


def _runs_section(specs: list[RunSpec], runs: list[Run]) -> str:
    seeds = sorted({s.seed for s in specs})
    diverged = [r.label + f" (stopped at step {r.last_step} of {r.planned_steps})" for r in runs if r.diverged]
    missing = len(specs) - len(runs)
    text = (f"{len(specs)} runs: {len(EXPERIMENTS)} experiments x variants x seeds "
            f"{', '.join(map(str, seeds))}. Same seed means the same data, initial weights and "
            f"batch order, so SGD and SLO start from the same network.\n\n")
    text += ("Diverged runs (their measurements up to the divergence are used): " + "; ".join(diverged)
             if diverged else "No run diverged.")
    if missing:
        text += f"\n\n{missing} planned run folder(s) had no metrics.csv and were left out."
    return text + "\n"


def report_markdown(results: list[ClaimResult], specs: list[RunSpec], runs: list[Run], scale: Scale,
                    timing: Timing, command: str) -> str:
    """The whole report.md."""
    seeds = sorted({s.seed for s in specs})
    parts = [
        "# Feature learning as alignment: the paper's claims, measured\n",
        "Beaglehole, Mitliagkas, Agarwala, *Feature learning as alignment: a structural property of "
        "gradient descent in non-linear neural networks*, TMLR 2024. Every number below comes from the "
        "run folders under `runs/` (their `metrics.csv` and `final.npz`); a claim that did not hold is "
        "reported as such.\n",
        f"- Command: `{command}` ({scale.name} scale, {len(seeds)} seeds: {', '.join(map(str, seeds))})",
        f"- Written: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        f"- Machine: {machine()}",
        f"- Run time: {timing_line(timing)}\n",
        "## Summary\n", claims_table(results), "",
        "A comparison holds only if it holds in every seed (and every experiment and layer it covers). "
        "Std is the sample std over seeds. Correlations are Pearson (the paper's) with alpha 1, except "
        "claim 3, which is about the cosine form.\n",
        *[_claim_section(r) for r in results],
        "## Experiments\n", experiments_table(scale), "",
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


def readme_section(results: list[ClaimResult], specs: list[RunSpec], timing: Timing, command: str) -> str:
    """The README's "What the paper says, and what this tool measured" section."""
    seeds = sorted({s.seed for s in specs})
    held = sum(r.holds is True for r in results)
    return "\n".join([
        "## What the paper says, and what this tool measured\n",
        f"`{command}` trains {len(specs)} runs ({len(EXPERIMENTS)} experiments, SGD and SLO from the same "
        f"initialisation, seeds {', '.join(map(str, seeds))}) and checks each of the paper's claims "
        f"from the saved run folders. On {machine()}: {timing_line(timing)}. "
        f"{held} of {len(results)} claims held:\n",
        claims_table(results), "",
        "A comparison holds only if it holds in every seed (and every experiment and layer it covers).\n",
        *[f"- Claim {r.number} did not hold: {r.detail}." for r in results if r.holds is False],
        "",
        "The report (`report.md`, with a figure per claim and every config) and `claims.csv` are "
        "written to the output folder; `python -m app.cli reproduce --quick --out runs/claims` checks "
        "the same claims with 2 seeds and fewer steps in under 45 s on 2 cores.\n",
    ])


def write_outputs(out: Path, results: list[ClaimResult], specs: list[RunSpec], runs: list[Run],
                  scale: Scale, timing: Timing, command: str) -> None:
    """claims.csv, report.md, readme-section.md and timing.json (figures are written separately)."""
    atomic_write_text(out / "claims.csv", claims_csv(results))
    atomic_write_text(out / "report.md", report_markdown(results, specs, runs, scale, timing, command))
    atomic_write_text(out / "readme-section.md", readme_section(results, specs, timing, command))
    atomic_write_text(out / "timing.json", json.dumps(
        {"total_s": timing.total, "process_s": timing.process, "runs_s": timing.runs, "analysis_s": timing.analysis,
         "jobs": timing.jobs, "run_seconds_sum": sum(timing.run_seconds), "scale": scale.name}, indent=1) + "\n")

