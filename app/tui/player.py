"""Playing engines in a thread worker: the shared core of the main and compare screens.

The worker advances frame by frame (``driver.advance``), checks cancellation between
training steps, and posts each frame as a ``FrameReady`` message; newer frames replace
older ones still queued, and frames from before a reset (an older *generation*) are
ignored. Any exception becomes a ``WorkFailed`` message, shown as a status line.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

from textual import work
from textual.worker import get_current_worker

from app.tui.driver import PLAY_LIMIT, Frame, advance
from app.tui.messages import FrameReady, Progress, WorkFailed
from core.config import RunConfig
from core.engine import Engine


PROGRESS_SECONDS = 0.25
"""How often a long frame reports its step count."""


def end_state(frame: Frame, target: int | None) -> str:
    """How a finished frame loop ends: diverged, finished (target reached) or paused."""
    stopped = [s.status for s in frame.snaps if s.stopped]
    if stopped:  # diverged or dead
        return stopped[0]
    if target is not None and frame.snaps[0].step >= target:
        return "finished"
    return "paused"


class Player:
    """Mixin for a Textual node that trains ``engines`` in a worker and receives FrameReady."""

    generation: int = 0
    playing: bool = False
    play_limit: int = PLAY_LIMIT
    """The step where playing stops at the latest (the documented run length)."""

    @property
    def engines(self) -> Sequence[Engine]:
        """The engines this node advances together (first one leads)."""
        raise NotImplementedError

    def play(self) -> None:
        """Plays until paused (or until step ``play_limit``: 10,000,000, the config's largest run)."""
        self.playing = True
        self.run_frames(self.generation, self.play_limit)

    def pause(self) -> None:
        """Stops the training worker after its current step."""
        self.workers.cancel_group(self, "train")
        self.playing = False

    def step_once(self) -> None:
        """Trains to the next measurement (``measure.every`` steps at most), pausing first."""
        self.playing = False
        self.run_frames(self.generation, self.play_limit, max_frames=1)

    def reset_engines(self, configs: Sequence[RunConfig | None]) -> None:
        """New networks (same seed: same start); frames of the old ones are ignored from now."""
        self.generation += 1
        self.playing = False
        self.run_reset(self.generation, list(configs))

    def accept(self, message: FrameReady) -> bool:
        """False for a stale frame; updates ``playing`` when the frame ends a run."""
        if message.generation != self.generation:
            return False
        if message.end is not None:
            self.playing = False
        return True

    @work(thread=True, exclusive=True, group="train", exit_on_error=False)
    def run_frames(self, generation: int, target: int | None, max_steps: int | None = None,
                   max_frames: int | None = None) -> None:
        """Worker: advances frame after frame until cancelled, done, or ``max_frames``."""
        worker = get_current_worker()
        stop = self._stop_check(worker, generation)
        frames = 0
        try:
            while not stop():
                frame = advance(self.engines, target, stop, max_steps)
                if frame is None:
                    return
                frames += 1
                last = frame.done or (max_frames is not None and frames >= max_frames)
                end = end_state(frame, target) if last else None
                self.post_message(FrameReady(frame.snaps, generation, frame.seconds, end))
                if last:
                    return
        except Exception as err:  # noqa: BLE001 - shown to the user, never a crash
            self.post_message(WorkFailed("training", err, generation))

    def _stop_check(self, worker, generation: int) -> Callable[[], bool]:
        """Called between training steps: True once cancelled; posts Progress now and then."""
        lead, last = self.engines[0], [time.monotonic()]

        def stop() -> bool:
            if worker.is_cancelled:
                return True
            now = time.monotonic()
            if now - last[0] >= PROGRESS_SECONDS:
                last[0] = now
                self.post_message(Progress(lead.step_count, generation))
            return False

        return stop

    @work(thread=True, exclusive=True, group="train", exit_on_error=False)
    def run_reset(self, generation: int, configs: list[RunConfig | None]) -> None:
        """Worker: resets every engine (with its new config, if any) and posts the step-0 frame."""
        try:
            snaps = tuple(engine.reset(cfg) for engine, cfg in zip(self.engines, configs))
            self.post_message(FrameReady(snaps, generation, end="paused"))
        except Exception as err:  # noqa: BLE001
            self.post_message(WorkFailed("reset", err, generation))

    @work(thread=True, group="settings", exit_on_error=False)
    def run_configure(self, generation: int, configs: list[RunConfig]) -> None:
        """Worker: applies live settings to every engine and posts a fresh snapshot."""
        try:
            for engine, cfg in zip(self.engines, configs):
                engine.configure(cfg)
            snaps = tuple(engine.snapshot() for engine in self.engines)
            self.post_message(FrameReady(snaps, generation))
        except Exception as err:  # noqa: BLE001
            self.post_message(WorkFailed("settings", err, generation))
