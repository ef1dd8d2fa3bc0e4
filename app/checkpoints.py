"""Training that never loses work: periodic checkpoints and a clean stop on SIGINT/SIGTERM.

:func:`train_with_checkpoints` steps an engine, writing a complete, loadable run folder
(``Engine.save``, atomic file by file, state last) every ``every_s`` seconds (checked at
each measurement), and on SIGINT/SIGTERM saves where the run is and raises
:class:`Interrupted`. A checkpoint measures nothing, so a run resumed from it
(``python -m app.cli run --resume DIR``) writes the same files as an uninterrupted one.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Callable

from core.engine import RUNNING, Engine, Snapshot

DEFAULT_EVERY_S = 60.0
"""Seconds between checkpoints of a running ``run``/``compare`` (``--checkpoint-every``)."""


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; the run was saved at ``step`` in ``folder`` (None when not checkpointing)."""

    def __init__(self, signum: int, step: int, total: int, folder: Path | None):
        self.signum, self.step, self.total, self.folder = signum, step, total, folder
        name = signal.Signals(signum).name
        where = f"; saved in {folder}" if folder is not None else ""
        super().__init__(f"interrupted by {name} at step {step} of {total}{where}")

    @property
    def exit_status(self) -> int:
        """128 + the signal number: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + self.signum


class StopSignals:
    """While active, SIGINT and SIGTERM only set ``signum`` (the training loop stops at the next step)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signum: int | None = None
        self._old: dict[int, object] = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, _frame) -> None:
        self.signum = signum

    def __call__(self) -> bool:
        return self.signum is not None

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def train_with_checkpoints(engine: Engine, steps: int, checkpoint: Path | None = None,
                           every_s: float = DEFAULT_EVERY_S,
                           on_measure: Callable[[Snapshot], None] | None = None) -> Snapshot:
    """Trains ``steps`` more steps, measuring as ``Engine.run`` does; returns the final snapshot.

    With ``checkpoint`` (a run folder), saves it at the first measurement after every
    ``every_s`` seconds (0: at every measurement) and, on SIGINT/SIGTERM, at the step
    reached, then raises :class:`Interrupted`. The final save (with figures) is the caller's.
    """
    target = engine.step_count + steps
    last_save = time.monotonic()
    with StopSignals() as stop:
        while engine.step_count < target and engine.status == RUNNING and not stop():
            engine.step(min(engine.steps_to_next_measure(), target - engine.step_count), should_stop=stop)
            if stop():
                break
            snap = engine.snapshot()
            if on_measure is not None:
                on_measure(snap)
            if checkpoint is not None and time.monotonic() - last_save >= every_s:
                engine.save(checkpoint, measure=False)
                last_save = time.monotonic()
        if stop():
            if checkpoint is not None:
                engine.save(checkpoint, measure=False)  # still under StopSignals: a second Ctrl-C cannot cut it
            raise Interrupted(stop.signum, engine.step_count, target, checkpoint)
    return engine.snapshot()
