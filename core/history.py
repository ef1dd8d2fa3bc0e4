"""The measured history of a run: one row per (step, layer), as in ``metrics.csv``.

The rows are kept by column in growable numpy arrays (``_Store``): ``step`` and ``layer``
as int64, every number as float64 (NaN where undefined), ``correlation`` as int32 codes into
a short list of names. A row costs ``ROW_BYTES`` (156 bytes) instead of a Python dict of
20 boxed values (about 740 bytes). Capacity doubles when full; ``np.empty`` leaves the
unused tail untouched, so the resident set grows with the rows actually written.

A ``History`` is an immutable view of the first ``len`` rows of a shared store: ``extend``
appends to the store (or copies the view's rows first when another view has already
appended to it), so older views never change. Rows handed out are fresh dicts with None
where a value is undefined; hot paths read ``column`` and ``series`` instead.
"""

from __future__ import annotations

import csv
import io
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


class _Store:
    """Append-only columns shared by the History views over them.

    ``ints`` (step, layer) and ``floats`` (the _FLOAT columns) are column-major blocks, so a
    column is one contiguous array and appending k rows is one assignment per block.
    ``token`` names this store; ``parents`` lists (token, rows) of the stores whose first
    ``rows`` rows this one copied, so a reader can tell a continuation from a new history.
    Readers only look below their own length, so appending never disturbs them.
    """

    __slots__ = ("ints", "floats", "codes", "names", "_code_of", "n", "token", "parents", "layer_first")

    def __init__(self, capacity: int = 0):
        self.ints = np.empty((capacity, len(_INT)), np.int64, order="F")
        self.floats = np.empty((capacity, len(_FLOAT)), np.float64, order="F")
        self.codes = np.empty(capacity, _CODE)
        self.names: list[str] = []
        self._code_of: dict[str, int] = {}
        self.n = 0
        self.token = object()
        self.parents: tuple[tuple[object, int], ...] = ()
        self.layer_first: tuple[tuple[int, int], ...] = ()  # (layer, its first row); replaced, never mutated

    @property
    def capacity(self) -> int:
        return len(self.codes)

    @property
    def nbytes(self) -> int:
        return self.ints.nbytes + self.floats.nbytes + self.codes.nbytes

    def col(self, name: str) -> np.ndarray:
        """Numeric column ``name`` over the whole capacity (only rows below ``n`` are written)."""
        block, j = _WHERE[name]
        return getattr(self, block)[:, j]

    def _reserve(self, need: int) -> None:
        if need <= self.capacity:
            return
        cap, n = max(need, 2 * self.capacity, _MIN_CAPACITY), self.n
        for block in ("ints", "floats"):
            old = getattr(self, block)
            new = np.empty((cap, old.shape[1]), old.dtype, order="F")
            new[:n] = old[:n]
            setattr(self, block, new)
        codes = np.empty(cap, _CODE)
        codes[:n] = self.codes[:n]
        self.codes = codes

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
        self._reserve(n + k)
        self.ints[n:n + k] = ints
        self.floats[n:n + k] = floats
        self.codes[n:n + k] = [self._code(v) for v in names]
        self._note_layers(self.ints[n:n + k, 1])
        self.n = n + k

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
        n = self.n
        ints, floats = self.ints[:n][index], self.floats[:n][index]
        out = _Store(len(ints))
        out.append_blocks(ints, floats, [self.names[c] if c >= 0 else None for c in self.codes[:n][index].tolist()])
        return out

    def copy_prefix(self, length: int) -> "_Store":
        """A new store with this one's first ``length`` rows, remembering where they came from."""
        out = self.select(slice(0, length))
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

    def column(self, name: str) -> np.ndarray:
        """One column of this view, read-only: int64 (step, layer), float64 with NaN, or names (object)."""
        if name == _STR:
            names = np.array([*self._store.names, None], dtype=object)
            return names[self._store.codes[:self._len]]
        if name not in _WHERE:
            raise KeyError(name)
        view = self._store.col(name)[:self._len]
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
        """Bytes the shared store's arrays hold (capacity included)."""
        return self._store.nbytes

    # -- rows (materialised on request) ----------------------------------------------

    @property
    def rows(self) -> tuple[dict, ...]:
        """Every row as a fresh dict (costs a dict per row: not for per-frame use)."""
        return tuple(self._materialise(np.arange(self._len)))

    def row(self, index: int) -> dict:
        """Row ``index`` (0-based) of this view."""
        if not -self._len <= index < self._len:
            raise IndexError(index)
        return self._materialise(np.array([index % self._len]))[0]

    def rows_since(self, start: int) -> list[dict]:
        """The rows from ``start`` to the end of this view: what an incremental reader has not seen."""
        return self._materialise(np.arange(max(start, 0), self._len))

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
        return int(self._store.ints[self._len - 1, 0]) if self._len else None

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
    if name == _STR:
        empty = None if none == "none" else ""
        return [store.names[c] if c >= 0 else empty for c in store.codes[:n][index].tolist()]
    values = store.col(name)[:n][index].tolist()
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
