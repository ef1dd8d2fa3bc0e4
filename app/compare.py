"""``compare``: the arms of ``core.arms.make_arms`` from one initialisation and one batch order.

Every arm (baseline optimiser, SLO with boost 1 as the control, SLO) gets a run folder
``DIR/<arm>/``; ``DIR/compare.csv`` holds every arm's metrics in long format (an ``arm``
column, then the metrics.csv columns); ``DIR/compare.png`` draws each layer's UC-NFA with
one colour and dash per arm; the printed summary has one column per arm and flags a
baseline whose steps are far smaller than SLO's.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from core.arms import Arm, make_arms
from core.engine import Engine, Snapshot
from core.history import COLUMNS, History
from core.iofiles import atomic_write_text

SLOW_BASELINE = 0.1
"""A baseline whose median step norm is below this share of SLO's unboosted speed (any layer) is flagged."""

DASHES = {"solid": "-", "dash": "--", "dot": ":", "dashdot": "-.", "longdash": (0, (8, 3))}
"""Arm dash names (plotly's) as matplotlib line styles."""


def compare_csv_text(named: Sequence[tuple[str, History]]) -> str:
    """compare.csv: ``arm`` then the metrics.csv columns, one row per (arm, step, layer)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(("arm",) + COLUMNS)
    for name, history in named:
        for line in history.to_csv_text().splitlines()[1:]:
            writer.writerow([name] + next(csv.reader([line])))
    return buf.getvalue()


def median_step_norms(history: History, after: int = 0) -> dict[int, float]:
    """Layer -> median step norm over the measurements after step ``after`` (NaN when none)."""
    out = {}
    for layer in history.layers():
        steps, norms = history.series("step_norm", layer)
        keep = norms[(steps > after) & np.isfinite(norms)]
        out[layer] = float(np.median(keep)) if keep.size else float("nan")
    return out


def speed_note(arms: Sequence[Arm], snaps: dict[str, Snapshot]) -> str:
    """A warning when the baseline's steps are far smaller than SLO's unboosted ones, else the ratios.

    The reference is the control arm (every layer at SLO's speed, no boost), or the SLO arm
    when there is no control (boost 1): the target layer's boost is SLO's point, but a
    baseline that moves every layer far slower than SLO's base speed is under-trained.
    """
    ref = "control" if "control" in snaps else "slo"
    if "baseline" not in snaps or ref not in snaps:
        return ""
    after = arms[0].config.optim.warmup_steps
    base = median_step_norms(snaps["baseline"].history, after)
    other = median_step_norms(snaps[ref].history, after)
    ratios = {l: base[l] / other[l] for l in base if other.get(l, 0) > 0 and np.isfinite(base[l])}
    if not ratios:
        return ""
    worst = min(ratios, key=ratios.get)
    text = ", ".join(f"layer {l} {r:.3g}" for l, r in sorted(ratios.items()))
    if ratios[worst] < SLOW_BASELINE:
        return (f"warning: the baseline moves far slower than SLO: median step norm baseline/{ref} {text}; "
                f"layer {worst}: {base[worst]:.3g} vs {other[worst]:.3g}. Differences may be speed, not SLO; "
                "raise the baseline's optim.lr or lower optim.slo.speed")
    return f"step norm baseline/{ref} (median after warm-up): {text}"


def summary_table(arms: Sequence[Arm], snaps: dict[str, Snapshot]) -> str:
    """One column per arm: each layer's UC-NFA, C-NFA and median step norm, then losses and accuracy."""
    names = [a.name for a in arms]
    width = max(12, *(len(n) for n in names))
    target = arms[-1].config.optim.slo.target_layer
    after = arms[0].config.optim.warmup_steps
    norms = {a.name: median_step_norms(snaps[a.name].history, after) for a in arms}
    head = f"{'':<24}" + "".join(f"{n:>{width}}" for n in names)
    lines = [f"{a.name}: {a.label}" for a in arms] + [head, "-" * len(head)]
    for i, layer in enumerate(s.layer for s in snaps[names[0]].layers):
        mark = "  <- SLO target" if layer == target else ""
        for key, label in (("uc_nfa", "UC-NFA"), ("c_nfa", "C-NFA")):
            cells = "".join(_cell(getattr(snaps[n].layers[i], key), width) for n in names)
            lines.append(f"{f'layer {layer} {label}':<24}{cells}{mark if key == 'uc_nfa' else ''}")
        cells = "".join(_cell(norms[n].get(layer), width) for n in names)
        lines.append(f"{f'layer {layer} step norm':<24}{cells}")
    for key, label in (("train_loss", "train loss"), ("test_loss", "test loss"), ("test_accuracy", "test accuracy")):
        values = [getattr(snaps[n], key) for n in names]
        if all(v is None for v in values):
            continue
        lines.append(f"{label:<24}" + "".join(_cell(v, width) for v in values))
    step = snaps[names[0]].measured_step
    lines.append(f"at step {step}; step norm = median over the measurements after warm-up")
    return "\n".join(lines)


def _cell(value, width: int) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return f"{'n/a':>{width}}"
    return f"{value:>{width}.4g}" if abs(value) < 1e-3 and value != 0 else f"{value:>{width}.4f}"


def compare_figure(arms: Sequence[Arm], histories: dict[str, History]):
    """UC-NFA per layer (one panel each) and the training loss; one colour and dash per arm."""
    from core.plots import pyplot

    plt = pyplot()

    layers = histories[arms[0].name].layers()
    target = arms[-1].config.optim.slo.target_layer
    fig, axes = plt.subplots(1, len(layers) + 1, figsize=(3.2 * (len(layers) + 1), 3.0), squeeze=False)
    for ax, layer in zip(axes[0], layers):
        for arm in arms:
            steps, uc = histories[arm.name].series("uc_nfa", layer)
            ax.plot(steps, uc, color=arm.color, linestyle=DASHES.get(arm.dash, "-"), label=arm.label)
        ax.set_title(f"layer {layer}{' (SLO target)' if layer == target else ''}: UC-NFA", fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    loss_ax = axes[0][-1]
    for arm in arms:
        steps, loss = histories[arm.name].series("train_loss", layers[0])
        loss_ax.plot(steps, loss, color=arm.color, linestyle=DASHES.get(arm.dash, "-"), label=arm.name)
    loss_ax.set_yscale("log")
    loss_ax.set_title("train loss", fontsize=9)
    loss_ax.set_xlabel("step")
    loss_ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


def run_arms(cfg, out: Path, quiet: bool = False,
             every_s: float | None = None) -> tuple[list[Arm], dict[str, Snapshot], int]:
    """Trains every arm into ``out/<arm>/``, each checkpointed there like ``run`` (every ``every_s``
    seconds and on SIGINT/SIGTERM); returns the arms, their final snapshots and the worst exit status."""
    from app.headless import DEFAULT_EVERY_S, EXIT_OK, _finish, train

    every_s = DEFAULT_EVERY_S if every_s is None else every_s
    arms = make_arms(cfg)
    snaps: dict[str, Snapshot] = {}
    status = EXIT_OK
    for arm in arms:
        engine = Engine(arm.config)
        print(f"{arm.name}: {arm.label}", file=sys.stderr)
        snaps[arm.name] = train(engine, arm.config.steps, label=f"{arm.name:>8} ", quiet=quiet,
                                checkpoint=out / arm.name, every_s=every_s)
        print(f"== {arm.name}: {arm.label} ==")
        status = max(status, _finish(engine, snaps[arm.name], out / arm.name))
    return arms, snaps, status


def compare_command(cfg, out: Path, quiet: bool = False, every_s: float | None = None) -> int:
    """``compare``: baseline, control and SLO from one initialisation and batch order."""
    from core.plots import save_figure

    arms, snaps, status = run_arms(cfg, out, quiet, every_s)
    histories = {a.name: snaps[a.name].history for a in arms}
    atomic_write_text(out / "compare.csv", compare_csv_text([(a.name, histories[a.name]) for a in arms]))
    save_figure(compare_figure(arms, histories), out / "compare.png")
    print(summary_table(arms, snaps))
    note = speed_note(arms, snaps)
    if note:
        print(note)
    print(f"wrote {out / 'compare.csv'} and {out / 'compare.png'}")
    return status
