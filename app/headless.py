"""Headless ``run`` and ``compare``: train, print progress and a table, write the run folder."""

from __future__ import annotations

import copy
import sys
import time
from pathlib import Path

from core.engine import Engine, Snapshot
from core.history import History
from core.iofiles import atomic_write_text

EXIT_OK, EXIT_DIVERGED = 0, 3


class Progress:
    """A one-line progress bar on stderr (a line per 10% when stderr is not a terminal)."""

    def __init__(self, total: int, label: str = "", quiet: bool = False, stream=None):
        self.total, self.label, self.quiet = max(total, 1), label, quiet
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.start = time.perf_counter()
        self._last_decile = -1

    def update(self, done: int, snap: Snapshot) -> None:
        if self.quiet:
            return
        frac = min(done / self.total, 1.0)
        decile = int(frac * 10)
        if not self.tty and decile == self._last_decile:
            return
        self._last_decile = decile
        bar = "#" * int(frac * 24) + "." * (24 - int(frac * 24))
        uc = " ".join(f"{s.uc_nfa:.2f}" for s in snap.layers)
        rate = done / max(time.perf_counter() - self.start, 1e-9)
        line = (f"{self.label}[{bar}] {done}/{self.total} loss {snap.train_loss:.4g} "
                f"test {snap.test_loss:.4g} UC-NFA {uc} ({rate:.0f} steps/s)")
        self.stream.write(("\r" + line) if self.tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and not self.quiet:
            self.stream.write("\n")


def train(engine: Engine, steps: int, label: str = "", quiet: bool = False) -> Snapshot:
    """Runs ``steps`` steps with a progress bar; returns the final snapshot."""
    progress = Progress(steps, label, quiet)
    start = engine.step_count
    snap = engine.run(steps, on_measure=lambda s: progress.update(s.step - start, s))
    progress.close()
    return snap


def layer_table(snap: Snapshot) -> str:
    """The final per-layer table."""
    head = f"{'layer':>5} {'shape':>11} {'UC-NFA':>8} {'C-NFA':>8} {'rel.move':>9} {'diag.share':>10} {'quality':>8}"
    lines = [head, "-" * len(head)]
    for s in snap.layers:
        shape = f"{s.shape[0]}x{s.shape[1]}"
        lines.append(f"{s.layer:>5} {shape:>11} {s.uc_nfa:>8.4f} {_fmt(s.c_nfa):>8} "
                     f"{s.rel_movement:>9.4f} {s.diag_share:>10.4f} {_fmt(s.feature_quality):>8}")
    acc = f", test accuracy {snap.test_accuracy:.3f}" if snap.test_accuracy is not None else ""
    lines.append(f"step {snap.measured_step}: train loss {snap.train_loss:.5g}, test loss {snap.test_loss:.5g}{acc}; "
                 f"{snap.config.measure.correlation} correlation, alpha {snap.config.measure.alpha:g}")
    return "\n".join(lines)


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def _finish(engine: Engine, snap: Snapshot, out: Path) -> int:
    engine.save(out, figures=True)
    print(layer_table(snap))
    if snap.diverged:
        print(snap.message, file=sys.stderr)
        print(f"wrote {out} (measurements up to step {snap.measured_step})")
        return EXIT_DIVERGED
    print(f"wrote {out}")
    return EXIT_OK


def run_command(cfg, out: Path, quiet: bool = False) -> int:
    """``run``: one headless training run."""
    engine = Engine(cfg)
    print(f"run: {engine.dataset.description}; {cfg.model.depth}x{cfg.model.width} {cfg.model.activation} MLP; "
          f"{engine.snapshot().optimizer}; {cfg.steps} steps on {engine.device}", file=sys.stderr)
    snap = train(engine, cfg.steps, quiet=quiet)
    return _finish(engine, snap, out)


def compare_configs(cfg):
    """The pair of configs ``compare`` runs: SLO off (baseline) and SLO on; same seed, same start."""
    base, slo = copy.deepcopy(cfg), copy.deepcopy(cfg)
    base.optim.slo.enabled = False
    slo.optim.slo.enabled = True
    return base, slo


COMPARE_KEYS = ("uc_nfa", "c_nfa", "rel_movement", "feature_quality", "train_loss", "test_loss")


def compare_csv(base: History, slo: History) -> str:
    """compare.csv: a row per (step, layer) measured in both runs."""
    index = {(r["step"], r["layer"]): r for r in slo.rows}
    cols = ["step", "layer"] + [f"{k}_{side}" for k in COMPARE_KEYS for side in ("baseline", "slo")]
    lines = [",".join(cols)]
    for r in base.rows:
        other = index.get((r["step"], r["layer"]))
        if other is None:
            continue
        cells = [str(r["step"]), str(r["layer"])]
        for k in COMPARE_KEYS:
            cells += [_cell(r.get(k)), _cell(other.get(k))]
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


def _cell(v) -> str:
    return "" if v is None else repr(float(v))


def compare_command(cfg, out: Path, quiet: bool = False) -> int:
    """``compare``: baseline and SLO from the same initial weights and batches."""
    base_cfg, slo_cfg = compare_configs(cfg)
    snaps = {}
    status = EXIT_OK
    for name, c in (("baseline", base_cfg), ("slo", slo_cfg)):
        engine = Engine(c)
        print(f"{name}: {engine.snapshot().optimizer}", file=sys.stderr)
        snaps[name] = train(engine, c.steps, label=f"{name:>8} ", quiet=quiet)
        print(f"== {name} ==")
        status = max(status, _finish(engine, snaps[name], out / name))
    atomic_write_text(out / "compare.csv", compare_csv(snaps["baseline"].history, snaps["slo"].history))
    from core.plots import save_figure  # matplotlib only once figures are drawn (start-up stays fast)

    save_figure(_compare_figure(snaps["baseline"].history, snaps["slo"].history, cfg), out / "compare.png")
    print(_compare_summary(snaps["baseline"], snaps["slo"], cfg.optim.slo.target_layer))
    print(f"wrote {out / 'compare.csv'}")
    return status


def _compare_summary(base: Snapshot, slo: Snapshot, target: int) -> str:
    lines = [f"{'layer':>5} {'UC-NFA base':>12} {'UC-NFA SLO':>11} {'quality base':>13} {'quality SLO':>12}"]
    for b, s in zip(base.layers, slo.layers):
        mark = " <- SLO target" if b.layer == target else ""
        lines.append(f"{b.layer:>5} {b.uc_nfa:>12.4f} {s.uc_nfa:>11.4f} {_fmt(b.feature_quality):>13} "
                     f"{_fmt(s.feature_quality):>12}{mark}")
    lines.append(f"test loss: baseline {base.test_loss:.5g}, SLO {slo.test_loss:.5g}")
    return "\n".join(lines)


def _compare_figure(base: History, slo: History, cfg):
    import matplotlib.pyplot as plt

    layers = base.layers()
    fig, axes = plt.subplots(1, len(layers), figsize=(3.4 * len(layers), 3.0), squeeze=False, sharey=True)
    for ax, layer in zip(axes[0], layers):
        for hist, name, color in ((base, "baseline", "tab:gray"), (slo, "SLO", "tab:red")):
            steps, uc = hist.series("uc_nfa", layer)
            ax.plot(steps, uc, color=color, label=f"UC-NFA {name}")
        target = " (SLO target)" if layer == cfg.optim.slo.target_layer else ""
        ax.set_title(f"layer {layer}{target}", fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("UC-NFA")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig
