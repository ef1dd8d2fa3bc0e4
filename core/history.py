"""The measured history of a run: one row per (step, layer), as in ``metrics.csv``.

The rows are kept by column in growable numpy arrays (``_Store``): ``step`` and ``layer``
as int64, every number as float64 (NaN where undefined), ``correlation`` as int32 codes into
a short list of names. A row costs ``ROW_BYTES`` (156 bytes) instead of a Python dict of
20 boxed values (about 740 bytes). Capacity doubles when full, up to ``SPILL_ROWS`` rows in
memory; past them the oldest rows are appended to an anonymous temporary file and read back
on request, so an app that plays for hours keeps every row for export in bounded memory
(about 2.6 MB a store at most, while it spills) while incremental readers find the newest rows in memory.

A ``History`` is an immutable view of the first ``len`` rows of a shared store: ``extend``
appends to the store (or copies the view's rows first when another view has already
appended to it), so older views never change. Rows handed out are fresh dicts with None
where a value is undefined; hot paths read ``column`` and ``series`` instead.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
import threading
from pathlib import Path
from typing import Iterable

import numpy as np

from core.iofiles import atomic_write_text

COLUMNS = (
    "step", "layer", "uc_nfa", "c_nfa", "rel_movement", "train_loss", "test_loss",
    "feature_quality", "test_accuracy", "diag_share", "init_share", "cross_share",
    "centered_share", "correlation", "alpha", "step_norm",
    "nfm_identity", "agop_identity", "uc_nfa_se", "c_nfa_se",
)
"""metrics.csv columns: the contract's eight first, then extras."""

_INT = ("step", "layer")
_STR = "correlation"
_FLOAT = tuple(c for c in COLUMNS if c not in _INT and c != _STR)
_KNOWN = frozenset(COLUMNS)
_WHERE = {**{c: ("ints", j) for j, c in enumerate(_INT)}, **{c: ("floats", j) for j, c in enumerate(_FLOAT)}}
"""Numeric column -> (block, index of its column in the block)."""
_CODE = np.int32
ROW_BYTES = 8 * (len(_INT) + len(_FLOAT)) + np.dtype(_CODE).itemsize
"""Bytes one row takes in the store's arrays (before the capacity's slack)."""
_MIN_CAPACITY = 64
SPILL_ROWS = 1 << 13
"""Rows a store holds in memory (1.3 MB); past them its oldest rows go to a temporary file.

Small enough that an app's memory stops growing with its history within minutes of play
(the terminal app records about 20 rows a second, the web page about 10), large enough
that a spill (about 1 MB appended) comes every few minutes, not every update."""
KEEP_ROWS = 1 << 11
"""Newest rows kept in memory when the others are spilled: what incremental readers read next."""


class _Spill:
    """An anonymous temporary file (unlinked from the start: the system frees it when the last
    store using it is collected, or the process ends, even by kill -9) that rows are appended to."""

    __slots__ = ("file", "end", "lock")

    def __init__(self):
        self.file = tempfile.TemporaryFile(prefix="nfa-history-")
        self.end = 0
        self.lock = threading.Lock()

    def append(self, data: bytes) -> int:
        """Writes ``data`` at the end; returns its offset."""
        with self.lock:
            offset, self.end = self.end, self.end + len(data)
            view = memoryview(data)
            while view:
                view = view[os.pwrite(self.file.fileno(), view, offset + len(data) - len(view)):]
        return offset

    def read(self, offset: int, length: int) -> bytes:
        parts = []
        while length > 0:
            chunk = os.pread(self.file.fileno(), length, offset)
            if not chunk:
                raise OSError(f"the history spill file ended {length} bytes early")
            parts.append(chunk)
            offset, length = offset + len(chunk), length - len(chunk)
        return b"".join(parts)


def _layout(name: str | None, rows: int) -> tuple[int, np.dtype]:
    """(byte offset of a column inside a spilled block of ``rows`` rows, its dtype); None is the codes."""
    if name is None:
        return 8 * rows * (len(_INT) + len(_FLOAT)), np.dtype(_CODE)
    block, j = _WHERE[name]
    if block == "ints":
        return 8 * rows * j, np.dtype(np.int64)
    return 8 * rows * (len(_INT) + j), np.dtype(np.float64)


class _Store:
    """Append-only columns shared by the History views over them.

    Rows below ``base`` live in spilled blocks of a temporary file, the rest in memory:
    ``ints`` (step, layer) and ``floats`` (the _FLOAT columns) as column-major blocks, so a
    column is one contiguous array and appending k rows is one assignment per block. Once the
    memory part passes SPILL_ROWS, all but its newest KEEP_ROWS rows are written out, so a
    long run's memory stays bounded while every row stays readable (``read``).
    ``_mem`` (base and the three arrays) is replaced as one tuple, never mutated in place, and
    ``blocks`` is extended before it: a reader that took ``_mem`` always finds its rows.
    ``token`` names this store; ``parents`` lists (token, rows) of the stores whose first
    ``rows`` rows this one copied, so a reader can tell a continuation from a new history.
    Readers only look below their own length, so appending never disturbs them.
    """

    __slots__ = ("_mem", "blocks", "spill", "spill_failed", "names", "_code_of", "n", "token", "parents",
                 "layer_first")

    def __init__(self, capacity: int = 0):
        self._mem = (0, *self._arrays(capacity))
        self.blocks: tuple[tuple[int, int, _Spill, int, int], ...] = ()
        """(first row, rows of this store, file, offset, rows written: the block's layout), in order."""
        self.spill: _Spill | None = None
        self.spill_failed = False  # no writable temporary directory, or a full disk: rows stay in memory
        self.names: list[str] = []
        self._code_of: dict[str, int] = {}
        self.n = 0
        self.token = object()
        self.parents: tuple[tuple[object, int], ...] = ()
        self.layer_first: tuple[tuple[int, int], ...] = ()  # (layer, its first row); replaced, never mutated

    @staticmethod
    def _arrays(capacity: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (np.empty((capacity, len(_INT)), np.int64, order="F"),
                np.empty((capacity, len(_FLOAT)), np.float64, order="F"), np.empty(capacity, _CODE))

    @property
    def base(self) -> int:
        """Rows below this one are in the spill file."""
        return self._mem[0]

    @property
    def nbytes(self) -> int:
        """Bytes of the in-memory arrays (capacity included; spilled rows are on disk)."""
        return sum(a.nbytes for a in self._mem[1:])

    def read(self, name: str | None, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) of numeric column ``name``, or of the correlation codes (None).

        A view of the memory arrays when every row is there, else a fresh array.
        """
        base, ints, floats, codes = self._mem
        if name is None:
            memory = codes
        else:
            block, j = _WHERE[name]
            memory = (ints if block == "ints" else floats)[:, j]
        if start >= base:
            return memory[start - base:stop - base]
        parts = [self._read_spilled(name, start, min(stop, base))]
        if stop > base:
            parts.append(memory[:stop - base])
        return np.concatenate(parts)

    def _read_spilled(self, name: str | None, start: int, stop: int) -> np.ndarray:
        parts = []
        for first, rows, spill, offset, written in self.blocks:
            a, b = max(start, first), min(stop, first + rows)
            if a >= b:
                continue
            column, dtype = _layout(name, written)
            at = offset + column + (a - first) * dtype.itemsize
            parts.append(np.frombuffer(spill.read(at, (b - a) * dtype.itemsize), dtype))
        return np.concatenate(parts) if parts else np.zeros(0, _layout(name, 0)[1])

    def _reserve(self, need: int) -> None:
        """Room in memory for rows up to ``need``."""
        base, ints, floats, codes = self._mem
        if need - base <= len(codes):
            return
        double = 2 * len(codes) if self.spill_failed else min(2 * len(codes), SPILL_ROWS)
        cap, n = max(need - base, double, _MIN_CAPACITY), self.n - base
        new = self._arrays(cap)
        for old, fresh in zip((ints, floats, codes), new):
            fresh[:n] = old[:n]
        self._mem = (base, *new)

    def _spill_oldest(self) -> None:
        """Writes all in-memory rows but the newest KEEP_ROWS to the spill file."""
        base, ints, floats, codes = self._mem
        move = self.n - base - KEEP_ROWS
        data = b"".join((ints[:move].tobytes(order="F"), floats[:move].tobytes(order="F"), codes[:move].tobytes()))
        try:
            spill = self.spill or _Spill()
            offset = spill.append(data)
        except OSError:  # keep every row in memory, as before the spill file existed, rather than lose the run
            self.spill_failed = True
            return
        self.spill = spill
        self.blocks = self.blocks + ((base, move, spill, offset, move),)
        new = self._arrays(SPILL_ROWS)
        for old, fresh in zip((ints, floats, codes), new):
            fresh[:KEEP_ROWS] = old[move:move + KEEP_ROWS]
        self._mem = (base + move, *new)

    def _code(self, name: str | None) -> int:
        if name is None:
            return -1
        code = self._code_of.get(name)
        if code is None:
            self.names.append(str(name))
            code = self._code_of[name] = len(self.names) - 1
        return code

    def append_blocks(self, ints: np.ndarray, floats: np.ndarray, names: list[str | None]) -> None:
        """Appends k rows: ints (k, 2), floats (k, len(_FLOAT)) with NaN for undefined, k correlation names."""
        n, k = self.n, len(names)
        codes = [self._code(v) for v in names]
        self._reserve(n + k)
        base, mem_ints, mem_floats, mem_codes = self._mem
        mem_ints[n - base:n - base + k] = ints
        mem_floats[n - base:n - base + k] = floats
        mem_codes[n - base:n - base + k] = codes
        self._note_layers(np.asarray(ints)[:, 1] if k else np.zeros(0, np.int64))
        self.n = n + k
        if self.n - base > SPILL_ROWS and not self.spill_failed:
            self._spill_oldest()

    def append_rows(self, rows: list[dict]) -> None:
        """Appends row dicts (missing keys and None are undefined; unknown keys are refused)."""
        for r in rows:
            if not r.keys() <= _KNOWN:
                raise ValueError(f"history rows have no column {sorted(r.keys() - _KNOWN)[0]!r}")
        ints = np.array([[r["step"], r["layer"]] for r in rows], np.int64).reshape(-1, len(_INT))
        floats = np.array([[r.get(c) for c in _FLOAT] for r in rows], np.float64).reshape(-1, len(_FLOAT))
        self.append_blocks(ints, floats, [r.get(_STR) for r in rows])

    def _note_layers(self, layers: np.ndarray) -> None:
        known = {l for l, _ in self.layer_first}
        new = [l for l in dict.fromkeys(layers.tolist()) if l not in known]
        if new:
            first = [(l, self.n + int(np.argmax(layers == l))) for l in new]
            self.layer_first = self.layer_first + tuple(first)

    def select(self, index) -> "_Store":
        """A new store holding the rows at ``index`` (an int array or a slice of rows)."""
        if isinstance(index, slice):
            start, stop, _ = index.indices(self.n)
            take = lambda name: self.read(name, start, stop)  # noqa: E731
        else:
            take = lambda name: self.read(name, 0, self.n)[index]  # noqa: E731
        ints = np.column_stack([take(c) for c in _INT]).reshape(-1, len(_INT))
        floats = np.column_stack([take(c) for c in _FLOAT]).reshape(-1, len(_FLOAT))
        out = _Store(min(len(ints), SPILL_ROWS))
        out.append_blocks(ints, floats, [self.names[c] if c >= 0 else None for c in take(None).tolist()])
        return out

    def copy_prefix(self, length: int) -> "_Store":
        """A new store with this one's first ``length`` rows, remembering where they came from.

        Spilled blocks are shared (they never change, and a reader never reads past its
        length); the in-memory rows below ``length`` are copied.
        """
        base = min(self.base, length)
        out = _Store()
        out.blocks = tuple((first, min(rows, base - first), *rest)  # a block past ``base`` is cut there
                           for first, rows, *rest in self.blocks if first < base)
        out.names, out._code_of = list(self.names), dict(self._code_of)
        ints, floats, codes = out._arrays(max(length - base, _MIN_CAPACITY))
        ints[:length - base] = np.column_stack([self.read(c, base, length) for c in _INT]).reshape(-1, len(_INT))
        floats[:length - base] = np.column_stack([self.read(c, base, length) for c in _FLOAT]).reshape(-1, len(_FLOAT))
        codes[:length - base] = self.read(None, base, length)
        out._mem, out.n = (base, ints, floats, codes), length
        out.layer_first = tuple((l, f) for l, f in self.layer_first if f < length)
        out.parents = tuple((t, min(p, length)) for t, p in self.parents) + ((self.token, length),)
        return out


class History:
    """An append-only table of rows; each row maps COLUMNS to a value (None where undefined).

    A History is a view of the first ``len`` rows of a shared store, so ``extend`` costs only
    the new rows and older views never change.
    """

    __slots__ = ("_store", "_len")

    def __init__(self, rows: Iterable[dict] = (), _store: _Store | None = None, _len: int | None = None):
        if _store is None:
            _store = _Store()
            _store.append_rows(list(rows))
        self._store = _store
        self._len = _store.n if _len is None else _len

    # -- growing -------------------------------------------------------------------

    def extend(self, rows: Iterable[dict]) -> "History":
        """A new view with ``rows`` appended (this view is unchanged)."""
        rows = list(rows)
        store = self._store if self._store.n == self._len else self._store.copy_prefix(self._len)
        store.append_rows(rows)
        return History(_store=store, _len=store.n)

    def until(self, step: int) -> "History":
        """Rows measured at or before ``step``."""
        keep = self.column("step") <= step
        k = int(keep.sum())
        if keep[:k].all():
            return History(_store=self._store, _len=k)
        return History(_store=self._store.select(np.flatnonzero(keep)))

    def for_layer(self, layer: int) -> "History":
        """The rows of one layer, as a History of their own."""
        return History(_store=self._store.select(np.flatnonzero(self.column("layer") == layer)))

    # -- columns (what hot paths read) ----------------------------------------------

    def column(self, name: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Rows [start, stop) of one column of this view, read-only: int64 (step, layer), float64
        with NaN, or names (object). Incremental readers pass ``start`` (rows spilled to disk are
        read back only when asked for)."""
        stop = self._len if stop is None else min(stop, self._len)
        start = min(max(start, 0), stop)
        if name == _STR:
            names = np.array([*self._store.names, None], dtype=object)
            return names[self._store.read(None, start, stop)]
        if name not in _WHERE:
            raise KeyError(name)
        view = self._store.read(name, start, stop)
        view.flags.writeable = False
        return view

    def series(self, key: str, layer: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of one column for one layer; undefined values (and unknown keys) are NaN."""
        mask = self.column("layer") == layer
        steps = self.column("step")[mask]
        if key in _WHERE:
            return steps, self.column(key)[mask].astype(np.float64)
        if key == _STR:
            raise ValueError("correlation is text, not a series")
        return steps, np.full(len(steps), np.nan)

    def mark(self) -> tuple[object, int]:
        """An opaque position: what a reader has seen of this history (see ``continues``)."""
        return self._store.token, self._len

    def continues(self, mark: tuple[object, int]) -> bool:
        """Whether this history's first rows are the ones a reader saw at ``mark``."""
        token, length = mark
        if length > self._len:
            return False
        store = self._store
        return store.token is token or any(t is token and p >= length for t, p in store.parents)

    @property
    def nbytes(self) -> int:
        """Bytes the shared store's in-memory arrays hold (capacity included; spilled rows are on disk)."""
        return self._store.nbytes

    # -- rows (materialised on request) ----------------------------------------------

    @property
    def rows(self) -> tuple[dict, ...]:
        """Every row as a fresh dict (costs a dict per row: not for per-frame use)."""
        return tuple(self._materialise(slice(0, self._len)))

    def row(self, index: int) -> dict:
        """Row ``index`` (0-based) of this view."""
        if not -self._len <= index < self._len:
            raise IndexError(index)
        index %= self._len
        return self._materialise(slice(index, index + 1))[0]

    def rows_since(self, start: int) -> list[dict]:
        """The rows from ``start`` to the end of this view: what an incremental reader has not seen."""
        return self._materialise(slice(min(max(start, 0), self._len), self._len))

    def rows_at(self, step: int) -> list[dict]:
        """The rows measured at ``step`` (one per layer), in order."""
        return self._materialise(np.flatnonzero(self.column("step") == step))

    def _materialise(self, index: np.ndarray) -> list[dict]:
        values = [_cells_of(self, c, index, none="none") for c in COLUMNS]
        return [dict(zip(COLUMNS, row)) for row in zip(*values)]

    # -- the rest of the table's API -------------------------------------------------

    def __len__(self) -> int:
        return self._len

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, History) or len(other) != self._len:
            return False
        same = all(np.array_equal(self.column(c), other.column(c)) for c in _INT)
        same = same and all(np.array_equal(self.column(c), other.column(c), equal_nan=True) for c in _FLOAT)
        return same and self.column(_STR).tolist() == other.column(_STR).tolist()

    __hash__ = None

    def __repr__(self) -> str:
        return f"History({self._len} rows)"

    @property
    def last_step(self) -> int | None:
        return int(self._store.read("step", self._len - 1, self._len)[0]) if self._len else None

    def layers(self) -> list[int]:
        return sorted(l for l, first in self._store.layer_first if first < self._len)

    def to_csv_text(self) -> str:
        """metrics.csv: floats as ``repr``, undefined values as empty cells."""
        index = slice(0, self._len)
        cells = [_cells_of(self, c, index, none="") for c in COLUMNS]
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(zip(*cells))
        return buf.getvalue()

    def write_csv(self, path: Path) -> None:
        atomic_write_text(path, self.to_csv_text())

    @classmethod
    def read_csv(cls, path: Path) -> "History":
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, [])
            columns = _parse_columns(header, reader)
        k = len(columns["step"])
        store = _Store(k)
        store.append_blocks(np.array([columns[c] for c in _INT], np.int64).T.reshape(k, len(_INT)),
                            np.array([columns[c] for c in _FLOAT], np.float64).T.reshape(k, len(_FLOAT)),
                            columns[_STR])
        return cls(_store=store)


def _cells_of(history: History, name: str, index, none: str) -> list:
    """Column ``name`` at ``index`` as Python values (``none="none"``) or CSV cells (``none=""``)."""
    store, n = history._store, len(history)
    if isinstance(index, slice):
        start, stop, _ = index.indices(n)
        read = lambda key: store.read(key, start, stop)  # noqa: E731
    else:
        read = lambda key: store.read(key, 0, n)[index]  # noqa: E731
    if name == _STR:
        empty = None if none == "none" else ""
        return [store.names[c] if c >= 0 else empty for c in read(None).tolist()]
    values = read(name).tolist()
    if name in _INT:
        return values if none == "none" else [str(v) for v in values]
    if none == "none":
        return [None if v != v else v for v in values]
    return [repr(v) if v == v else "" for v in values]


def _parse_columns(header: list[str], reader) -> dict[str, list]:
    """metrics.csv cells -> one list per column (None where a cell is empty or absent)."""
    where = {name: i for i, name in enumerate(header) if name in _KNOWN}
    columns: dict[str, list] = {c: [] for c in COLUMNS}
    for raw in reader:
        if not raw:
            continue
        for name in COLUMNS:
            i = where.get(name)
            text = raw[i] if i is not None and i < len(raw) else None
            columns[name].append(_parse(name, text))
    return columns


def _parse(name: str, text: str | None):
    if name in _INT:
        return int(text)
    if name == _STR:
        return text
    return float(text) if text not in ("", None) else None
