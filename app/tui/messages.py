"""Messages from training workers to the UI thread."""

from __future__ import annotations

from textual.message import Message

from core.engine import Snapshot


class FrameReady(Message):
    """Fresh snapshots from a worker; a newer frame replaces an older one still queued."""

    def __init__(self, snaps: tuple[Snapshot, ...], generation: int, seconds: float = 0.0,
                 end: str | None = None) -> None:
        super().__init__()
        self.snaps = snaps
        self.generation = generation
        self.seconds = seconds
        self.end = end
        """None while playing goes on; else the state it stopped in (paused, finished, diverged)."""

    def can_replace(self, message: Message) -> bool:
        """A queued frame is dropped when a newer one waits behind it, unless it ends a run."""
        return isinstance(message, FrameReady) and self.end is None


class WorkFailed(Message):
    """A worker raised: shown as a status line, never a crash."""

    def __init__(self, what: str, error: BaseException, generation: int) -> None:
        super().__init__()
        self.what = what
        self.error = error
        self.generation = generation

    @property
    def text(self) -> str:
        """One line: what failed and why."""
        return f"{self.what} failed: {type(self.error).__name__}: {self.error}"


class Progress(Message):
    """The step count during a long frame (no measurement yet); newer replaces older."""

    def __init__(self, step: int, generation: int) -> None:
        super().__init__()
        self.step = step
        self.generation = generation

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, Progress)
