"""One engine per browser session: the session store, its caps, time-to-live and files.

A ``SessionStore`` belongs to one ``build_demo`` call (never to the module). It maps
Gradio's session hash to a ``Session`` holding that visitor's run(s), a private folder
for what the app writes for them, and a lock that serialises their events. Sessions
are released on page unload, after ``ttl`` seconds without an event, and when the
store is closed; at most ``max_sessions`` exist at once.
"""

from __future__ import annotations

import secrets
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from core.arms import Arm
from core.config import RunConfig
from core.engine import Engine
from core.series import HistoryView

SERIES_KEYS = ("uc_nfa", "c_nfa", "rel_movement", "train_loss", "test_loss", "feature_quality",
               "init_share", "cross_share", "centered_share", "test_accuracy", "step_norm")
CURVE_BUCKETS, RECENT_POINTS = 256, 200
"""Min/max buckets per curve over the whole run (about one per pixel column), raw points in the recent window."""


class CapacityError(RuntimeError):
    """Every session slot is taken."""


def curve_view() -> HistoryView:
    """The bounded, incrementally updated view of a run's history that the curves draw."""
    return HistoryView(SERIES_KEYS, capacity=CURVE_BUCKETS, recent=RECENT_POINTS)


@dataclass
class Run:
    """An engine and the bounded curve view of its history."""

    engine: Engine
    series: HistoryView = field(default_factory=curve_view)
    arm: Arm | None = None
    """The comparison arm this run is (None for the single run)."""

    def snapshot(self):
        """The engine's snapshot (measured now if stale) with the series brought up to date."""
        snap = self.engine.snapshot()
        self.series.update(snap.history)
        return snap


@dataclass
class Session:
    """One visitor: a single run, or one run per comparison arm while comparing."""

    key: str
    folder: Path
    base: RunConfig
    """The preset, URL or loaded config the form's values are laid over."""
    run: Run | None = None
    compare: tuple[Run, ...] | None = None
    """One run per arm of ``core.arms.make_arms`` while comparing."""
    playing: bool = False
    pending: tuple[str, ...] = ()
    data_file: str = ""
    """This session's uploaded data file (a copy in ``folder``); the only path a config may name."""
    revived: bool = False
    """Set when an expired session restarted at the default setup (the page should say so once)."""
    last_seen: float = 0.0
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def runs(self) -> list[Run]:
        """The runs a tick advances."""
        if self.compare is not None:
            return list(self.compare)
        return [self.run] if self.run is not None else []

    def new_file(self, name: str) -> Path:
        """A fresh path in this session's folder (an unguessable subfolder per call)."""
        sub = self.folder / secrets.token_hex(8)
        sub.mkdir(parents=True, exist_ok=True)
        return sub / name


class SessionStore:
    """Sessions keyed by Gradio's session hash, with a cap and a time-to-live."""

    def __init__(self, root: Path, max_sessions: int, ttl: float,
                 clock: Callable[[], float] = time.monotonic):
        self.root = Path(root)
        self.max_sessions = max_sessions
        self.ttl = ttl
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, key: str) -> Session | None:
        """The live session for ``key`` (touched), or None."""
        self.sweep()
        with self._lock:
            session = self._sessions.get(key)
            if session is not None:
                session.last_seen = self._clock()
            return session

    def open(self, key: str, base: RunConfig) -> Session:
        """The session for ``key``, created when absent; raises CapacityError when full."""
        self.sweep()
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                if len(self._sessions) >= self.max_sessions:
                    raise CapacityError(f"all {self.max_sessions} session slots are in use")
                folder = self.root / secrets.token_hex(12)
                folder.mkdir(parents=True)
                session = Session(key=key, folder=folder, base=base)
                self._sessions[key] = session
            session.last_seen = self._clock()
            return session

    def close(self, key: str) -> bool:
        """Releases a session's engines and deletes its folder; False if there was none."""
        with self._lock:
            session = self._sessions.pop(key, None)
        if session is None:
            return False
        _release(session)
        return True

    def sweep(self) -> list[str]:
        """Closes sessions idle for longer than ``ttl``; returns their keys."""
        now = self._clock()
        with self._lock:
            stale = [k for k, s in self._sessions.items() if now - s.last_seen > self.ttl]
            gone = [self._sessions.pop(k) for k in stale]
        for session in gone:
            _release(session)
        return stale

    def close_all(self) -> None:
        """Closes every session and removes the root folder."""
        with self._lock:
            gone = list(self._sessions.values())
            self._sessions.clear()
        for session in gone:
            _release(session)
        shutil.rmtree(self.root, ignore_errors=True)


def _release(session: Session) -> None:
    with session.lock:
        session.run, session.compare, session.playing = None, None, False
    shutil.rmtree(session.folder, ignore_errors=True)
