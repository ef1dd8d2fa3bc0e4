"""Bounded views of a growing history: what a screen draws after a million steps.

The history keeps every measurement (for ``metrics.csv`` and exports); a chart draws a
view of it whose size does not grow with the run. ``MinMaxSeries`` keeps at most
``capacity`` buckets over the step axis, each holding its minimum and maximum (so a spike
stays visible) and its last point; when the run outgrows the buckets, their width doubles
and neighbours merge. ``HistoryView`` keeps one such series per (column, layer) and is
updated from the rows appended since the last call, so an update costs the new rows plus
a bounded amount, whatever the run's length. ``Recent`` is the last ``maxlen`` raw points,
for a readable recent window.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Iterable

import numpy as np

from core.history import History


class MinMaxSeries:
    """At most ``capacity`` step buckets of (min, max, last); NaN values leave gaps."""

    __slots__ = ("capacity", "width", "_keys", "_min", "_max", "_last", "count", "_done_steps", "_done_values", "_n_done")

    def __init__(self, capacity: int = 512):
        if capacity < 2:
            raise ValueError("capacity must be at least 2")
        self.capacity = capacity
        self.width = 1
        self._keys: list[int] = []
        self._min: list[tuple[int, float]] = []
        self._max: list[tuple[int, float]] = []
        self._last: list[tuple[int, float]] = []
        self.count = 0
        self._clear_done()

    def _clear_done(self) -> None:
        """Forgets the cached points of the closed buckets (after buckets merge)."""
        self._done_steps: list[int] = []
        self._done_values: list[float] = []
        self._n_done = 0

    def __len__(self) -> int:
        return len(self._keys)

    def append(self, step: int, value: float) -> None:
        """Adds one point; steps must not decrease."""
        self.count += 1
        value = float("nan") if value is None else float(value)
        key = step // self.width
        if self._keys and self._keys[-1] == key:
            self._fold(-1, (step, value), (step, value), (step, value))
            return
        self._keys.append(key)
        self._min.append((step, value))
        self._max.append((step, value))
        self._last.append((step, value))
        while len(self._keys) > self.capacity:
            self._coarsen()

    def _fold(self, i: int, lo: tuple[int, float], hi: tuple[int, float], last: tuple[int, float]) -> None:
        if _less(lo[1], self._min[i][1]):
            self._min[i] = lo
        if _less(self._max[i][1], hi[1]):
            self._max[i] = hi
        self._last[i] = last

    def _coarsen(self) -> None:
        """Doubles the bucket width, merging buckets that now share a key."""
        self.width *= 2
        self._clear_done()
        keys, mins, maxs, lasts = self._keys, self._min, self._max, self._last
        self._keys, self._min, self._max, self._last = [], [], [], []
        for key, lo, hi, last in zip(keys, mins, maxs, lasts):
            new = key // 2
            if self._keys and self._keys[-1] == new:
                self._fold(-1, lo, hi, last)
            else:
                self._keys.append(new)
                self._min.append(lo)
                self._max.append(hi)
                self._last.append(last)

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values): each bucket's min and max in step order, and the very last point.

        Buckets before the last one no longer change (until buckets merge), so their points
        are kept between calls: a call costs the buckets closed since the last call.
        """
        closed = len(self._keys) - 1
        for i in range(self._n_done, closed):
            self._add_bucket(i, self._done_steps, self._done_values)
        self._n_done = max(closed, self._n_done)
        steps, values = list(self._done_steps), list(self._done_values)
        if self._keys:
            self._add_bucket(len(self._keys) - 1, steps, values)
        if self._last and (not steps or steps[-1] != self._last[-1][0]):
            steps.append(self._last[-1][0])
            values.append(self._last[-1][1])
        return np.asarray(steps, dtype=np.int64), np.asarray(values, dtype=np.float64)

    def _add_bucket(self, i: int, steps: list[int], values: list[float]) -> None:
        """Appends bucket ``i``'s min and max (once if they are the same point), in step order."""
        lo, hi = self._min[i], self._max[i]
        for s, v in sorted({lo, hi}, key=lambda p: p[0]):
            steps.append(s)
            values.append(v)


def _less(a: float, b: float) -> bool:
    """a < b, where NaN loses to any number (a NaN bucket takes the first real value)."""
    if math.isnan(a):
        return False
    return math.isnan(b) or a < b


class Recent:
    """The last ``maxlen`` raw points."""

    __slots__ = ("_steps", "_values")

    def __init__(self, maxlen: int = 1000):
        self._steps: deque[int] = deque(maxlen=maxlen)
        self._values: deque[float] = deque(maxlen=maxlen)

    def append(self, step: int, value: float) -> None:
        self._steps.append(step)
        self._values.append(float("nan") if value is None else float(value))

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self._steps, dtype=np.int64), np.asarray(self._values, dtype=np.float64)


class HistoryView:
    """Bounded per-(column, layer) series of a History, updated from new rows only.

    ``update(history)`` reads only the rows appended since the last call; a history that
    is not a continuation of the one seen before (a reset, a loaded run) starts the view
    over. ``series(key, layer)`` returns the whole run decimated, or with
    ``recent=True`` the last ``recent`` raw measurements.
    """

    def __init__(self, keys: Iterable[str], capacity: int = 512, recent: int = 1000):
        self.keys = tuple(keys)
        self.capacity, self.recent_len = capacity, recent
        self._clear()

    def _clear(self) -> None:
        self._all: dict[tuple[str, int], MinMaxSeries] = {}
        self._recent: dict[tuple[str, int], Recent] = {}
        self._seen = 0
        self._mark: tuple[object, int] | None = None
        self.last_step: int | None = None

    def update(self, history: History) -> int:
        """Consumes the rows appended since the last update; returns how many were read.

        Reads the new rows' columns only (no row dicts), so an update costs the new rows.
        """
        n = len(history)
        if self._mark is not None and not history.continues(self._mark):
            self._clear()
        start = self._seen
        if n > start:
            steps = history.column("step", start, n).tolist()
            layers = history.column("layer", start, n).tolist()
            for key in self.keys:
                self._append_column(key, steps, layers, history.column(key, start, n).tolist())
            self.last_step = steps[-1]
        self._seen, self._mark = n, history.mark()
        return n - start

    def _append_column(self, key: str, steps: list[int], layers: list[int], values: list[float]) -> None:
        for step, layer, v in zip(steps, layers, values):
            sk = (key, layer)
            if sk not in self._all:
                self._all[sk] = MinMaxSeries(self.capacity)
                self._recent[sk] = Recent(self.recent_len)
            self._all[sk].append(step, v)
            self._recent[sk].append(step, v)

    @property
    def layers(self) -> list[int]:
        return sorted({layer for _, layer in self._all})

    def series(self, key: str, layer: int = 1, recent: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of one column for one layer, bounded in length."""
        store = self._recent if recent else self._all
        s = store.get((key, layer))
        if s is None:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
        return s.points()
