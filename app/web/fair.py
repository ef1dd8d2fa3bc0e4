"""Fair sharing of the server's training work: a global limit and a per-client limit.

Gradio's queue caps how many events run at once, but not per caller: one script sending
many events at once would fill every worker. ``TrainingGate`` sits inside the handlers
(``handlers.trains``): at most ``limit`` training events run at once over all clients and
at most ``per_client`` for one client, first come first served among those allowed to go.
A client may have ``per_client + max_waiting`` events inside the gate; more are refused at
once (``BusyError``) so that no client can hold the queue's workers waiting here.

A *client* is a page (its session hash: a page that loaded the app, see
``app.web.sessions``), or, for API callers, their network address: a script can make up
session hashes at will, but not addresses.
"""

from __future__ import annotations

import functools
import itertools
import threading
import time
from collections import Counter
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from core.config import default_config


class BusyError(RuntimeError):
    """This client already has as much training work running and waiting as it may."""


class TrainingGate:
    """Counts training events running at once, globally and per client."""

    def __init__(self, limit: int, per_client: int = 1, max_waiting: int = 1, wait_seconds: float = 30.0):
        self.limit, self.per_client, self.max_waiting = limit, per_client, max_waiting
        self.wait_seconds = wait_seconds
        self._cond = threading.Condition()
        self._running: Counter[str] = Counter()
        self._waiting: list[tuple[int, str]] = []
        self._tickets = itertools.count()

    @property
    def running(self) -> int:
        return sum(self._running.values())

    def waiting(self, client: str) -> int:
        return sum(1 for _, c in self._waiting if c == client)

    @contextmanager
    def hold(self, client: str) -> Iterator[None]:
        """Runs the block once the client's turn comes; BusyError if it may not wait (or waited too long)."""
        self._enter(client)
        try:
            yield
        finally:
            with self._cond:
                self._running[client] -= 1
                if self._running[client] <= 0:
                    del self._running[client]
                self._cond.notify_all()

    def _enter(self, client: str) -> None:
        with self._cond:
            if self._running[client] + self.waiting(client) >= self.per_client + self.max_waiting:
                raise BusyError("your earlier requests are still running")
            ticket = (next(self._tickets), client)
            self._waiting.append(ticket)
            deadline = time.monotonic() + self.wait_seconds
            try:
                while not self._may_go(ticket):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise BusyError(f"the server stayed busy for {self.wait_seconds:.0f} s")
                    self._cond.wait(left)
            finally:
                self._waiting.remove(ticket)
                self._cond.notify_all()
            self._running[client] += 1

    def _may_go(self, ticket: tuple[int, str]) -> bool:
        """Under the limits, and no earlier waiter that could go instead."""
        if self.running >= self.limit:
            return False
        for earlier in self._waiting:
            if earlier == ticket:
                return self._running[ticket[1]] < self.per_client
            if self._running[earlier[1]] < self.per_client:
                return False
        return False


class Key(str):
    """A session key (Gradio's session hash) that also carries the caller's network address."""

    client: str = ""

    @classmethod
    def of(cls, session_hash: str, client: str) -> "Key":
        key = cls(session_hash)
        key.client = client
        return key


def client_of(key: str) -> str:
    return getattr(key, "client", "")


def work_client(app: Any, key: str) -> str:
    """Whom the training gate counts: a page by its session, an API caller by its address."""
    return f"page:{key}" if app.store.is_page(key) else f"addr:{client_of(key)}"


def trains(fn: Callable[..., dict] | None = None, *, quiet: bool = False):
    """Runs the handler within the app's training gate (global and per-client limits).

    The caller's session slot is taken (or refused) first, so a caller the server has no
    room for is told so at once instead of after waiting for a turn.

    With ``quiet`` a refusal changes nothing on the page (a timer tick: the next one tries
    again); otherwise ``guarded`` shows it.
    """
    if fn is None:
        return functools.partial(trains, quiet=quiet)

    @functools.wraps(fn)
    def wrapper(app: Any, key: str, *args, **kwargs) -> dict:
        app.store.open(key, default_config(), client_of(key))  # no slot: CapacityError before waiting a turn
        try:
            with app.gate.hold(work_client(app, key)):
                return fn(app, key, *args, **kwargs)
        except BusyError:
            if quiet:
                return {}
            raise

    return wrapper
