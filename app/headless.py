"""Headless ``run``: train, print progress and a table, write the run folder.

``compare`` (three arms) lives in ``app.compare``.

Training goes through :func:`train`, which checkpoints the run folder on a timer and on
SIGINT/SIGTERM (``app.checkpoints``); ``run --resume DIR`` continues such a folder.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from app.checkpoints import DEFAULT_EVERY_S, train_with_checkpoints
from core.engine import Engine, Snapshot

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
        uc = " ".join(_fmt(s.uc_nfa, 2) for s in snap.layers)
        rate = done / max(time.perf_counter() - self.start, 1e-9)
        line = (f"{self.label}[{bar}] {done}/{self.total} loss {snap.train_loss:.4g} "
                f"test {snap.test_loss:.4g} UC-NFA {uc} ({rate:.0f} steps/s)")
        self.stream.write(("\r" + line) if self.tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and not self.quiet:
            self.stream.write("\n")


def train(engine: Engine, steps: int, label: str = "", quiet: bool = False,
          checkpoint: Path | None = None, every_s: float = DEFAULT_EVERY_S) -> Snapshot:
    """Runs ``steps`` more steps with a progress bar; returns the final snapshot.

    ``checkpoint``: a run folder saved (loadable, resumable) every ``every_s`` seconds and on
    SIGINT/SIGTERM, after which ``app.checkpoints.Interrupted`` is raised. The caller writes
    the final folder (``_finish``).
    """
    progress = Progress(steps, label, quiet)
    start = engine.step_count
    try:
        return train_with_checkpoints(engine, steps, checkpoint, every_s,
                                      on_measure=lambda s: progress.update(s.step - start, s))
    finally:
        progress.close()


def layer_table(snap: Snapshot) -> str:
    """The final per-layer table."""
    head = f"{'layer':>5} {'shape':>11} {'UC-NFA':>8} {'C-NFA':>8} {'rel.move':>9} {'diag.share':>10} {'quality':>8}"
    lines = [head, "-" * len(head)]
    for s in snap.layers:
        shape = f"{s.shape[0]}x{s.shape[1]}"
        lines.append(f"{s.layer:>5} {shape:>11} {_fmt(s.uc_nfa):>8} {_fmt(s.c_nfa):>8} "
                     f"{_fmt(s.rel_movement):>9} {_fmt(s.diag_share):>10} {_fmt(s.feature_quality):>8}")
    acc = f", test accuracy {snap.test_accuracy:.3f}" if snap.test_accuracy is not None else ""
    lines.append(f"step {snap.measured_step}: train loss {_fmt(snap.train_loss, 5, 'g')}, "
                 f"test loss {_fmt(snap.test_loss, 5, 'g')}{acc}; "
                 f"{snap.config.measure.correlation} correlation, alpha {snap.config.measure.alpha:g}")
    return "\n".join(lines)


def _fmt(v: float | None, digits: int = 4, kind: str = "f") -> str:
    """A number for the tables; "n/a" where it is undefined (None or NaN)."""
    return "n/a" if v is None or v != v else f"{v:.{digits}{kind}}"


def _finish(engine: Engine, snap: Snapshot, out: Path) -> int:
    engine.save(out, figures=True)
    print(layer_table(snap))
    if snap.stopped:  # diverged, or a layer died: measurements up to there are kept
        print(snap.message, file=sys.stderr)
        print(f"wrote {out} (measurements up to step {snap.measured_step})")
        return EXIT_DIVERGED
    print(f"wrote {out}")
    return EXIT_OK


def run_command(cfg, out: Path, quiet: bool = False, every_s: float = DEFAULT_EVERY_S) -> int:
    """``run``: one headless training run, checkpointed into ``out``."""
    engine = Engine(cfg)
    print(f"run: {engine.dataset.description}; {cfg.model.depth}x{cfg.model.width} {cfg.model.activation} MLP; "
          f"{engine.snapshot().optimizer}; {cfg.steps} steps on {engine.device}", file=sys.stderr)
    _note_points(engine)
    engine.save(out, measure=False)  # a resumable folder from step 0 on
    snap = train(engine, cfg.steps, quiet=quiet, checkpoint=out, every_s=every_s)
    return _finish(engine, snap, out)


def resume_command(folder: Path, quiet: bool = False, every_s: float = DEFAULT_EVERY_S) -> int:
    """``run --resume DIR``: continues a checkpointed run to its ``steps``, bit-for-bit on CPU."""
    engine = Engine.load(folder)
    cfg, done = engine.config, engine.step_count
    snap = engine.snapshot()
    if snap.stopped:
        print(layer_table(snap))
        print(f"{snap.message}", file=sys.stderr)
        print(f"nothing to resume: the run in {folder} stopped at step {done} ({engine.status})", file=sys.stderr)
        return EXIT_DIVERGED
    print(f"resume: {folder} at step {done} of {cfg.steps}; {engine.dataset.description}; "
          f"{snap.optimizer} on {engine.device}", file=sys.stderr)
    snap = train(engine, max(cfg.steps - done, 0), quiet=quiet, checkpoint=folder, every_s=every_s)
    return _finish(engine, snap, folder)


def _note_points(engine: Engine) -> None:
    """Says so when measure.n_points asks for more points than the training set has."""
    asked, used = engine.config.measure.n_points, int(engine.dataset.measure_index.shape[0])
    if 0 < used < asked:
        print(f"note: measure.n_points is {asked} but the training set has {used} points; "
              f"K and AGOP are averaged over all {used}", file=sys.stderr)
