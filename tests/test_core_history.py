"""core.history: the columnar store (size per row, None for undefined, immutable views, CSV bytes)."""

from __future__ import annotations

import csv
import gc
import io
import math
import os
import threading
import tracemalloc

import numpy as np
import pytest

from core.config import RunConfig
from core.engine import Engine
from core import history as history_mod
from core.history import COLUMNS, ROW_BYTES, History
from core.series import HistoryView

ROWS = 20_000
"""500,000 steps of quickstart: a measurement every 50 steps, 2 layers."""


def _cfg(every: int = 1) -> RunConfig:
    return RunConfig.from_dict({
        "data": {"kind": "synthetic", "d": 4, "target": "x0*x1", "n_train": 32, "n_test": 16},
        "model": {"depth": 2, "width": 6, "activation": "relu", "bias": False},
        "optim": {"name": "sgd", "lr": 0.05, "batch_size": 16},
        "measure": {"every": every, "n_points": 16}, "steps": 10, "seed": 0, "device": "cpu"})


def _engine_rows(step: int, layers=(1, 2)) -> list[dict]:
    """Rows shaped like Engine._rows: every column, fresh floats, None where undefined."""
    common = {"step": step, "train_loss": 1.0 / (step + 1), "test_loss": 1.1 / (step + 1), "test_accuracy": None,
              "correlation": "pearson", "alpha": 1.0}
    return [{"layer": l, **common, **{c: (step % 97) / 97 + l for c in COLUMNS[2:] if c not in common},
             "feature_quality": None if l > 1 else 0.5, "step_norm": None if step == 0 else 1e-3 * l}
            for l in layers]


@pytest.fixture(params=["memory", "spilled"])
def spill(request, monkeypatch):
    """Runs a test twice: rows kept in memory, and a store that spills all but 3 rows past 8."""
    if request.param == "spilled":
        monkeypatch.setattr(history_mod, "SPILL_ROWS", 8)
        monkeypatch.setattr(history_mod, "KEEP_ROWS", 3)
    return request.param


def _grow(measurements: int) -> History:
    history = History()
    for i in range(measurements):
        history = history.extend(_engine_rows(50 * i))
    return history


def test_store_size_per_row_is_bounded(monkeypatch):
    """In memory, the arrays hold at most twice ROW_BYTES a row (doubling), and nothing else grows per row."""
    monkeypatch.setattr(history_mod, "SPILL_ROWS", 2 * ROWS)  # no spill here (spilled stores: test below)
    assert ROW_BYTES <= 8 * len(COLUMNS)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    history = _grow(ROWS // 2)
    gc.collect()
    traced = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert len(history) == ROWS
    assert ROW_BYTES * ROWS <= history.nbytes <= 2 * ROW_BYTES * ROWS
    assert traced <= history.nbytes + 64 * 1024  # no per-row Python object beside the arrays


MATHS = ("/torch/", "core/diagnostics.py", "core/jackknife.py", "core/ksweep.py")
"""Where a measurement's transient tensors are made: torch keeps a few small objects from them
(about 200 bytes a measurement, not per row, at the jackknife's matmul and the optimiser's
profiler hook), left out here; a row kept as a dict (about 740 bytes) is made in core/engine.py."""


def test_engine_keeps_no_other_per_row_copy():
    """A real engine's Python memory grows by the store's arrays only, measurement after measurement."""
    engine = Engine(_cfg())
    engine.step(20)  # warm: caches, first-time allocations
    gc.collect()
    tracemalloc.start()
    before, rows0 = tracemalloc.take_snapshot(), len(engine.history)
    engine.step(100)
    snap = engine.snapshot()
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    rows = len(engine.history) - rows0
    assert rows == 200 and snap.history is engine.history
    grown = {s.traceback[0].filename: s.size_diff for s in after.compare_to(before, "filename")}
    store = sum(v for f, v in grown.items() if f.endswith(("core/history.py", "numpy/core/numeric.py")))
    other = sum(v for f, v in grown.items() if not any(m in f for m in MATHS)) - store
    assert store <= engine.history.nbytes + 4096
    assert other / rows < 100, f"{other / rows:.0f} bytes a row kept beside the history's arrays: {grown}"


def test_rows_hand_out_none_where_undefined_and_csv_writes_empty_cells(spill):
    h = History([{"step": 0, "layer": 1, "uc_nfa": None, "c_nfa": math.nan, "alpha": 1.0}])
    row = h.row(0)
    assert set(row) == set(COLUMNS)
    assert row["uc_nfa"] is None and row["c_nfa"] is None and row["correlation"] is None and row["alpha"] == 1.0
    assert np.isnan(h.column("uc_nfa")[0]) and np.isnan(h.column("c_nfa")[0])
    line = h.to_csv_text().splitlines()[1].split(",")
    assert line[:4] == ["0", "1", "", ""] and line[COLUMNS.index("alpha")] == "1.0"
    with pytest.raises(ValueError, match="no column 'ucnfa'"):
        h.extend([{"step": 1, "layer": 1, "ucnfa": 0.5}])


def test_views_never_change_while_the_store_grows_and_branches(spill):
    base = _grow(3)
    frozen = [dict(r) for r in base.rows]
    grown = base.extend(r for i in range(3, 200) for r in _engine_rows(50 * i))  # the arrays are reallocated
    branch = base.extend(_engine_rows(999))  # base is shorter than its store: copies its rows
    assert list(base.rows) == frozen and len(base) == 6
    assert grown.rows[:6] == base.rows and len(grown) == 400 and grown.last_step == 50 * 199
    assert branch.rows[:6] == base.rows and branch.last_step == 999 and len(branch) == 8
    assert grown.until(100).rows == base.rows and grown.until(100) == base
    with pytest.raises(TypeError):
        hash(base)
    with pytest.raises(ValueError):
        base.column("step")[0] = 5  # read-only


def test_columns_and_series_match_the_rows(spill):
    h = _grow(30).extend([{"step": 2000, "layer": 3, "uc_nfa": 0.25}])
    steps, values = h.series("uc_nfa", 2)
    rows = [r for r in h.rows if r["layer"] == 2]
    assert steps.tolist() == [r["step"] for r in rows] and values.tolist() == [r["uc_nfa"] for r in rows]
    _, fq = h.series("feature_quality", 2)
    assert np.isnan(fq).all()
    assert h.layers() == [1, 2, 3] and h.until(1500).layers() == [1, 2]
    assert h.column("correlation").tolist() == [r["correlation"] for r in h.rows]
    assert [r["layer"] for r in h.rows_at(50)] == [1, 2] and h.rows_at(7) == []
    assert h.for_layer(3).rows == (h.row(-1),)


def _reference_csv(rows) -> str:
    """metrics.csv as the dict-per-row History wrote it (the slow, obvious reference)."""
    def cell(v):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return ""
        return repr(v) if isinstance(v, float) else str(v)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow([cell(r.get(c)) for c in COLUMNS])
    return buf.getvalue()


def test_metrics_csv_is_byte_identical_to_the_row_writer(tmp_path, spill):
    engine = Engine(_cfg(every=2).replace(**{"measure.correlation": "cosine"}))
    rows = []
    for _ in range(8):
        engine.step(2)
        rows += engine.history.rows_since(len(rows))
    engine.configure(engine.config.replace(**{"measure.correlation": "pearson", "measure.alpha": 0.5}))
    engine.step(4)
    rows += engine.history.rows_since(len(rows))
    text = engine.history.to_csv_text()
    assert text == _reference_csv(rows)
    assert {"cosine", "pearson"} <= set(engine.history.column("correlation"))
    engine.history.write_csv(tmp_path / "m.csv")
    back = History.read_csv(tmp_path / "m.csv")
    assert back == engine.history and back.to_csv_text() == text
    assert (tmp_path / "m.csv").read_text(encoding="utf-8") == text


def test_history_view_restarts_on_a_branch_that_dropped_rows_it_read(spill):
    base = _grow(5)
    view = HistoryView(("uc_nfa",))
    view.update(base.extend(_engine_rows(1000)))  # saw 12 rows
    other = base.extend(_engine_rows(2000))  # same length, different last rows
    assert view.update(other) == 12
    steps, _ = view.series("uc_nfa", 1)
    assert steps[-1] == 2000 and 1000 not in steps.tolist()


def _spilled(build):
    """``build()`` run with the store spilling all but 3 rows past 8 (and the same without)."""
    kept = build()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(history_mod, "SPILL_ROWS", 8)
        mp.setattr(history_mod, "KEEP_ROWS", 3)
        spilled = build()
        assert spilled._store.blocks and spilled._store.base > 0  # some rows really are on disk
        return kept, spilled


def test_a_spilled_history_reads_back_every_row():
    kept, spilled = _spilled(lambda: _grow(40).extend([{"step": 5000, "layer": 3, "uc_nfa": 0.25}]))
    assert spilled == kept and spilled.rows == kept.rows and spilled.to_csv_text() == kept.to_csv_text()
    n = len(kept)
    for start, stop in ((0, n), (0, 1), (5, 9), (n - 4, n), (n - 1, n), (7, 7), (3, n - 2)):  # across every boundary
        for name in ("step", "layer", "uc_nfa", "step_norm", "correlation"):
            a, b = spilled.column(name, start, stop), kept.column(name, start, stop)
            assert a.tolist() == b.tolist() or np.array_equal(a, b, equal_nan=True), (name, start, stop)
        assert spilled.rows_since(start) == kept.rows_since(start)
    assert spilled.row(0) == kept.row(0) and spilled.row(-1) == kept.row(-1) and spilled.last_step == 5000
    assert spilled.rows_at(50) == kept.rows_at(50) and spilled.layers() == [1, 2, 3]
    assert spilled.until(1000) == kept.until(1000) and spilled.for_layer(2) == kept.for_layer(2)
    for key in ("uc_nfa", "feature_quality", "train_loss"):
        for a, b in zip(spilled.series(key, 1), kept.series(key, 1)):
            np.testing.assert_array_equal(a, b)
    view_k, view_s = HistoryView(("uc_nfa",)), HistoryView(("uc_nfa",))
    for length in range(1, n + 1, 7):  # an incremental reader crossing the spills
        view_k.update(kept.until(kept.column("step")[length - 1]))
        view_s.update(spilled.until(spilled.column("step")[length - 1]))
        np.testing.assert_array_equal(view_s.series("uc_nfa", 2)[1], view_k.series("uc_nfa", 2)[1])


def test_branches_share_spilled_rows_and_never_see_each_others():
    kept, spilled = _spilled(lambda: _grow(20))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(history_mod, "SPILL_ROWS", 8)
        mp.setattr(history_mod, "KEEP_ROWS", 3)
        for cut in (1, 5, 12, 33, 40):  # below, inside and above the spilled rows
            head = spilled.until(50 * ((cut - 1) // 2)) if cut < 40 else spilled
            a = head.extend(_engine_rows(7777))
            b = head.extend(_engine_rows(8888)).extend(r for i in range(50) for r in _engine_rows(9000 + i))
            assert a.rows[:len(head)] == b.rows[:len(head)] == kept.rows[:len(head)]
            assert a.last_step == 7777 and a.rows[-2:] == tuple(History(_engine_rows(7777)).rows)
            assert b.column("step", len(head), len(head) + 2).tolist() == [8888, 8888]
            assert spilled.rows == kept.rows  # the original never changes


def test_a_long_history_stays_in_bounded_memory(tmp_path, monkeypatch):
    """200,000 rows (an hour of the terminal app at full speed is about 90,000): memory holds at most
    SPILL_ROWS of them; the rest sit in an anonymous temporary file that leaves no name behind."""
    monkeypatch.setattr(history_mod.tempfile, "tempdir", str(tmp_path))
    rows = 200_000
    block = [r for i in range(500) for r in _engine_rows(50 * i)]
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    history, peak_nbytes = History(), 0
    for i in range(rows // len(block)):
        history = history.extend({**r, "step": r["step"] + 25_000 * i} for r in block)
        peak_nbytes = max(peak_nbytes, history.nbytes)
    gc.collect()
    traced = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert len(history) == rows and os.listdir(tmp_path) == []
    assert peak_nbytes <= 2 * history_mod.SPILL_ROWS * ROW_BYTES
    assert traced <= 3 * history_mod.SPILL_ROWS * ROW_BYTES  # not 200,000 x 156 B = 31 MB
    steps = history.column("step")
    assert len(steps) == rows and (np.diff(steps[::2]) == 50).all() and steps[-1] == 50 * (rows // 2 - 1)


def test_readers_on_other_threads_see_whole_rows_while_the_store_spills(monkeypatch):
    monkeypatch.setattr(history_mod, "SPILL_ROWS", 64)
    monkeypatch.setattr(history_mod, "KEEP_ROWS", 16)
    latest = [History()]
    errors, done = [], threading.Event()

    def reader():
        while not done.is_set():
            h = latest[0]
            steps, layers = h.column("step"), h.column("layer")
            expect = np.repeat(np.arange(len(h) // 2) * 50, 2)
            if not (np.array_equal(steps, expect) and np.array_equal(layers, np.tile([1, 2], len(h) // 2))):
                errors.append(len(h))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(3000):
            latest[0] = latest[0].extend(_engine_rows(50 * i))
    finally:
        done.set()
        thread.join()
    assert errors == [] and latest[0]._store.base > 5000


def test_a_history_that_cannot_spill_keeps_its_rows_in_memory(monkeypatch):
    """No writable temporary directory (or a full disk): the rows stay in memory, none is lost."""
    def refuse():
        raise OSError(28, "No space left on device")

    kept = _grow(40)
    monkeypatch.setattr(history_mod, "SPILL_ROWS", 8)
    monkeypatch.setattr(history_mod, "KEEP_ROWS", 3)
    monkeypatch.setattr(history_mod, "_Spill", refuse)
    grown = _grow(40)
    assert grown._store.spill_failed and not grown._store.blocks and grown._store.base == 0
    assert grown == kept and grown.to_csv_text() == kept.to_csv_text()
    assert len(grown) < len(grown._store._mem[3]) <= 2 * len(grown)  # capacity doubles, not a copy per append
