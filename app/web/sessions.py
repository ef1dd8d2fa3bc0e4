"""One engine per browser session: the session store, its caps, time-to-live and files.

A ``SessionStore`` belongs to one ``build_demo`` call (never to the module). It maps
Gradio's session hash to a ``Session`` holding that visitor's run(s), a private folder
for what the app writes for them, and a lock that serialises their events.

Two kinds of session share ``max_sessions`` slots. A *page* session belongs to a browser
page that loaded the app: its events carry the token that came with the page's HTML
(``app.web.guard`` checks it and marks the session hash here). Every other session is an *API* session (a script calling the endpoints): it lives
``api_ttl`` seconds without an event (pages: ``ttl``), at most ``max_api`` exist, and at
most ``api_per_client`` per client address. When the slots are full a newcomer takes the
slot of the longest-idle session it may displace: a page displaces any API session, or a
page idle for ``page_reclaim`` seconds; an API caller displaces only an API session idle
for ``api_reclaim`` seconds. Sessions are also released on page unload and when the store
is closed; releasing one deletes its folder and the files uploaded for it, and hands the
freed memory back to the system (``release_memory``). ``forget`` (set by the page's
wiring) is called with the key of every session that cannot come back: a page that
unloaded, an API session released for any reason (a page swept after its time-out may
still send events, so its key is not forgotten).
"""

from __future__ import annotations

import ctypes
import gc
import logging
import secrets
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from core.arms import Arm
from core.config import RunConfig
from core.engine import Engine
from core.series import HistoryView

LOG = logging.getLogger("nfa.web")
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
    client: str = ""
    """The caller's network address (what per-client caps count)."""
    uploads: list[Path] = field(default_factory=list)
    """Files Gradio's upload route stored for this session; deleted with the session."""
    clicks: int = 0
    """Step clicks of this page counted so far (the page sends its running total)."""
    pause_mark: int = field(default_factory=time.time_ns)
    """When this session was created or last paused (ns): every status line carries it, so the page
    can tell an update answer rendered before the last Pause from one rendered after it."""
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
    """Sessions keyed by Gradio's session hash: caps, time-to-live, page/API kinds, reclaiming."""

    def __init__(self, root: Path, max_sessions: int, ttl: float, clock: Callable[[], float] = time.monotonic,
                 *, api_ttl: float | None = None, max_api: int | None = None, api_per_client: int | None = None,
                 page_reclaim: float = 600.0, api_reclaim: float = 30.0):
        """The API caps default to none beyond ``max_sessions`` and ``ttl`` (``WebApp`` passes its settings)."""
        self.root = Path(root)
        self.max_sessions, self.ttl = max_sessions, ttl
        self.api_ttl = ttl if api_ttl is None else api_ttl
        self.max_api = max_sessions if max_api is None else max_api
        self.api_per_client = max_sessions + 1 if api_per_client is None else api_per_client
        self.page_reclaim, self.api_reclaim = page_reclaim, api_reclaim
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._pages: dict[str, float] = {}
        self._lock = threading.Lock()
        self.forget: Callable[[str], None] = lambda key: None
        """Called with the key of a session that cannot come back (the web layer drops Gradio's state for it)."""

    def __len__(self) -> int:
        return len(self._sessions)

    # -- pages ----------------------------------------------------------------------------

    def mark_page(self, key: str) -> None:
        """A page that loaded the app (``app.web.guard`` checked its token) sends events as ``key``."""
        with self._lock:
            self._pages[key] = self._clock()

    def is_page(self, key: str) -> bool:
        return key in self._pages

    # -- sessions ------------------------------------------------------------------------

    def get(self, key: str) -> Session | None:
        """The live session for ``key`` (touched), or None."""
        self.sweep()
        with self._lock:
            session = self._sessions.get(key)
            if session is not None:
                session.last_seen = self._clock()
            return session

    def peek(self, key: str) -> Session | None:
        """The live session for ``key``, without touching it."""
        return self._sessions.get(key)

    def open(self, key: str, base: RunConfig, client: str = "") -> Session:
        """The session for ``key``, created when absent (reclaiming a slot if needed).

        Raises CapacityError when no slot can be had.
        """
        self.sweep()
        evicted: Session | None = None
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                evicted = self._make_room(key in self._pages, client)
                folder = self.root / secrets.token_hex(12)
                folder.mkdir(parents=True)
                session = Session(key=key, folder=folder, base=base, client=client)
                self._sessions[key] = session
            session.last_seen = self._clock()
        if evicted is not None:
            LOG.info("session slot reclaimed from one idle for %.0f s", self._clock() - evicted.last_seen)
            self._end([evicted], pages={evicted.key} & self._pages.keys())
        return session

    def _make_room(self, page: bool, client: str) -> Session | None:
        """Checks the caps for a newcomer; pops and returns the session it displaces (or None).

        Called with the store's lock held; raises CapacityError when the newcomer must wait.
        """
        now, api = self._clock(), [s for s in self._sessions.values() if s.key not in self._pages]
        victim = None
        if not page:
            own = [s for s in api if s.client == client]
            if len(own) >= self.api_per_client:
                victim = self._idlest(own, now, self.api_reclaim, f"this address holds {len(own)} API sessions")
            elif len(api) >= self.max_api:
                victim = self._idlest(api, now, self.api_reclaim, f"all {self.max_api} API session slots are in use")
        if victim is None and len(self._sessions) >= self.max_sessions:
            pages = [s for s in self._sessions.values() if s.key in self._pages]
            if page and api:
                victim = self._idlest(api, now, 0.0, "")
            else:
                candidates = [s for s in api if now - s.last_seen >= self.api_reclaim]
                candidates += [s for s in pages if now - s.last_seen >= self.page_reclaim]
                victim = self._idlest(candidates, now, 0.0, f"all {self.max_sessions} session slots are in use")
        if victim is not None:
            self._sessions.pop(victim.key, None)
        return victim

    @staticmethod
    def _idlest(sessions: list[Session], now: float, min_idle: float, why: str) -> Session:
        """The longest-idle session of ``sessions`` if idle at least ``min_idle`` s; else CapacityError(why)."""
        idlest = min(sessions, key=lambda s: s.last_seen, default=None)
        if idlest is None or now - idlest.last_seen < min_idle:
            raise CapacityError(why)
        return idlest

    def add_upload(self, key: str, paths: list[Path]) -> bool:
        """Records files uploaded for ``key`` (deleted with the session); False if no session is live."""
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                return False
            session.uploads.extend(paths)
            return True

    def close(self, key: str) -> bool:
        """The page unloaded (or a caller is done): releases the session's engines, folder and uploads,
        and forgets the key; False if there was no session."""
        with self._lock:
            session = self._sessions.pop(key, None)
            self._pages.pop(key, None)
        if session is None:
            self.forget(key)
            return False
        self._end([session], pages=set())
        return True

    def sweep(self) -> list[str]:
        """Closes sessions idle for longer than their time-to-live; returns their keys."""
        now = self._clock()
        with self._lock:
            stale = [k for k, s in self._sessions.items()
                     if now - s.last_seen > (self.ttl if k in self._pages else self.api_ttl)]
            pages = {k for k in stale if k in self._pages}
            gone = [self._sessions.pop(k) for k in stale]
            unused = [k for k, t in self._pages.items() if k not in self._sessions and now - t > self.api_ttl]
            for k in stale + unused:
                self._pages.pop(k, None)
        self._end(gone, pages)
        return stale

    def _end(self, gone: list[Session], pages: set[str]) -> None:
        """Releases sessions the store no longer holds; forgets those not in ``pages`` (API sessions)."""
        for session in gone:
            _release(session)
            if session.key not in pages:
                self.forget(session.key)
        if gone:
            release_memory()

    def close_all(self) -> None:
        """Closes every session and removes the root folder."""
        with self._lock:
            gone = list(self._sessions.values())
            self._sessions.clear()
            self._pages.clear()
        for session in gone:
            _release(session)
        shutil.rmtree(self.root, ignore_errors=True)


def _release(session: Session) -> None:
    session.playing = False  # a running tick stops at its next step
    with session.lock:
        session.run, session.compare, session.playing = None, None, False
        uploads, session.uploads = session.uploads, []
    shutil.rmtree(session.folder, ignore_errors=True)
    for path in uploads:
        _remove_upload(path)


def _remove_upload(path: Path) -> None:
    """Deletes an uploaded file and the folder Gradio made for it (when that is left empty)."""
    try:
        path.unlink(missing_ok=True)
        path.parent.rmdir()
    except OSError:
        pass


M_MMAP_THRESHOLD, M_ARENA_MAX = -3, -8
"""glibc's ``mallopt`` parameters (malloc.h)."""


def tune_malloc(arenas: int = 2, mmap_threshold: int = 128 * 1024) -> bool:
    """Makes glibc give freed memory back: few arenas, big blocks mapped on their own.

    Gradio runs handlers in a pool of threads, and glibc gives each thread under contention
    an arena of its own (up to 8 per core) whose freed pages stay with it; and glibc raises
    its mmap threshold after large frees (up to 32 MiB), so tensors and arrays land in those
    arenas too. Two arenas and a fixed 128 KiB threshold (the same as the environment
    ``GLIBC_TUNABLES=glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=131072``) let a
    released session's memory go back to the system. Call before the server starts its
    threads; False where glibc is absent.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_ARENA_MAX, arenas)) and bool(libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold))
    except (OSError, AttributeError):
        return False


def release_memory() -> None:
    """Collects garbage and asks glibc to hand freed heap pages back to the system.

    Without ``malloc_trim`` the server's RSS stays at its high-water mark after sessions end
    (freed tensors stay in malloc's arenas); where glibc is absent this only collects.
    """
    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass
