"""The measured history of a run: one row per (step, layer), as in ``metrics.csv``."""

from __future__ import annotations

import csv
import io
import math
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

_INT = {"step", "layer"}
_STR = {"correlation"}


class History:
    """An append-only list of rows; each row maps COLUMNS to a value (None where undefined).

    A History is a view of the first ``len`` rows of a shared store, so ``extend`` costs only
    the new rows and older views never change.
    """

    __slots__ = ("_store", "_len")

    def __init__(self, rows: Iterable[dict] = (), _store: list | None = None, _len: int | None = None):
        self._store = _store if _store is not None else list(rows)
        self._len = len(self._store) if _len is None else _len

    @property
    def rows(self) -> tuple[dict, ...]:
        return tuple(self._store[: self._len])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, History) and self.rows == other.rows

    def __repr__(self) -> str:
        return f"History({self._len} rows)"

    def __len__(self) -> int:
        return self._len

    def extend(self, rows: Iterable[dict]) -> "History":
        """A new view with ``rows`` appended (this view is unchanged)."""
        store = self._store if len(self._store) == self._len else self._store[: self._len]
        store.extend(rows)
        return History(_store=store, _len=len(store))

    def until(self, step: int) -> "History":
        """Rows measured at or before ``step``."""
        return History([r for r in self.rows if r["step"] <= step])

    def row(self, index: int) -> dict:
        """Row ``index`` (0-based) of this view."""
        if not -self._len <= index < self._len:
            raise IndexError(index)
        return self._store[index % self._len]

    def rows_since(self, start: int) -> list[dict]:
        """The rows from ``start`` to the end of this view: what an incremental reader has not seen."""
        return self._store[max(start, 0): self._len]

    @property
    def last_step(self) -> int | None:
        return self._store[self._len - 1]["step"] if self._len else None

    def layers(self) -> list[int]:
        return sorted({r["layer"] for r in self.rows})

    def series(self, key: str, layer: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of one column for one layer; undefined values are NaN."""
        rows = [r for r in self.rows if r["layer"] == layer]
        steps = np.array([r["step"] for r in rows], dtype=np.int64)
        values = np.array([_nan(r.get(key)) for r in rows], dtype=np.float64)
        return steps, values

    def to_csv_text(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(COLUMNS)
        for r in self.rows:
            writer.writerow([_cell(r.get(c)) for c in COLUMNS])
        return buf.getvalue()

    def write_csv(self, path: Path) -> None:
        atomic_write_text(path, self.to_csv_text())

    @classmethod
    def read_csv(cls, path: Path) -> "History":
        with open(path, newline="", encoding="utf-8") as f:
            return cls([_parse_row(r) for r in csv.DictReader(f)])


def _nan(v) -> float:
    return float("nan") if v is None else float(v)


def _cell(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return repr(v) if isinstance(v, float) else str(v)


def _parse_row(raw: dict) -> dict:
    row = {}
    for key, text in raw.items():
        if key in _INT:
            row[key] = int(text)
        elif key in _STR:
            row[key] = text
        else:
            row[key] = float(text) if text not in ("", None) else None
    return row
