"""What a run's history costs in memory: bytes per row, and MB per hour at a play rate.

Used by ``bench_tui.py`` and ``bench_web.py``. Rows are made the way the engine makes them
(``Engine._rows``: a fresh dict of fresh float objects per (step, layer)), from a real
measurement's rows, on the run's measurement grid. Two layouts are measured in one
process: the list of row dicts the History kept before it became columnar (the "before"
figure), and ``core.history.History`` (columnar numpy arrays), each by

- RSS: growth of the resident set while it is built (pages actually touched), without
  tracemalloc running (its bookkeeping per allocation would inflate the dicts' figure);
- tracemalloc: bytes still allocated once the layout is built again (numpy reports its
  arrays to tracemalloc, capacity included).

``History.nbytes`` (the arrays' bytes, capacity included) is printed beside them.
"""

from __future__ import annotations

import gc
import os
import tracemalloc
from typing import Callable, Iterator

from core.history import ROW_BYTES, History

LONG_STEPS = 1_000_000


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measurements(template: list[dict], steps: int, every: int) -> Iterator[list[dict]]:
    """One list of rows per measurement up to ``steps``: fresh dicts and fresh floats, like the engine's."""
    for i, step in enumerate(range(0, steps + 1, every)):
        wobble = 1.0 + 1e-3 * ((i * 7919) % 1000) / 1000
        yield [{k: _fresh(v, wobble) for k, v in r.items()} | {"step": step} for r in template]


def _fresh(v, wobble: float):
    return v * wobble if isinstance(v, float) else v


def as_dicts(template: list[dict], steps: int, every: int) -> list[dict]:
    """The layout before: a list of row dicts."""
    out: list[dict] = []
    for rows in measurements(template, steps, every):
        out.extend(rows)
    return out


def as_history(template: list[dict], steps: int, every: int) -> History:
    """The layout now: History.extend once per measurement, as the engine calls it."""
    history = History()
    for rows in measurements(template, steps, every):
        history = history.extend(rows)
    return history


def _traced(build: Callable[[], object]) -> int:
    """Bytes tracemalloc still counts once ``build`` has run (what it returned kept alive meanwhile)."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    out = build()
    gc.collect()
    traced = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    del out
    return traced


def _rss(build: Callable[[], object]) -> tuple[object, int]:
    """(what ``build`` returned, RSS growth while it ran), without tracemalloc (its bookkeeping costs RSS)."""
    gc.collect()
    rss0 = rss_bytes()
    out = build()
    gc.collect()
    return out, rss_bytes() - rss0


def row_costs(template: list[dict], every: int, steps: int = LONG_STEPS) -> dict[str, dict[str, float]]:
    """Bytes per row of both layouts for a run of ``steps`` steps.

    RSS first (the History, then the dicts, both kept alive so neither reuses the other's
    freed memory), then tracemalloc, each layout built again.
    """
    history, h_rss = _rss(lambda: as_history(template, steps, every))
    dicts, d_rss = _rss(lambda: as_dicts(template, steps, every))
    n, nbytes = len(history), history.nbytes
    assert len(dicts) == n
    del history, dicts
    h_traced = _traced(lambda: as_history(template, steps, every))
    d_traced = _traced(lambda: as_dicts(template, steps, every))
    return {"dicts": {"traced": d_traced / n, "rss": d_rss / n},
            "history": {"traced": h_traced / n, "rss": h_rss / n, "nbytes": nbytes / n, "rows": n}}


def mb_per_hour(bytes_per_row: float, rows_per_s: float) -> float:
    return bytes_per_row * rows_per_s * 3600 / 1e6


def print_row_costs(costs: dict[str, dict[str, float]], steps: int = LONG_STEPS) -> None:
    h, d = costs["history"], costs["dicts"]
    print(f"history memory, {h['rows']:,} rows ({steps:,} steps):")
    print(f"  before (list of row dicts): {d['traced']:6.0f} B/row traced, {d['rss']:6.0f} B/row RSS")
    print(f"  now (columnar History):     {h['traced']:6.0f} B/row traced, {h['rss']:6.0f} B/row RSS, "
          f"nbytes {h['nbytes']:.0f} B/row (capacity included; {ROW_BYTES} B/row of data)")


def print_per_hour(label: str, costs: dict[str, dict[str, float]], rows_per_s: float) -> None:
    h, d = costs["history"], costs["dicts"]
    print(f"{label}: {rows_per_s:.1f} rows/s measured -> history grows {mb_per_hour(h['rss'], rows_per_s):.1f} MB/h "
          f"RSS ({mb_per_hour(h['traced'], rows_per_s):.1f} MB/h traced, {mb_per_hour(ROW_BYTES, rows_per_s):.1f} "
          f"MB/h of data); before: {mb_per_hour(d['traced'], rows_per_s):.1f} MB/h traced")
