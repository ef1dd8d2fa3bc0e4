"""Bounded history views (core.series) and arms (core.arms)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.arms import PALETTE, make_arms
from core.config import preset_config
from core.history import History
from core.series import HistoryView, MinMaxSeries, Recent


def test_minmax_series_stays_bounded_and_keeps_extremes():
    s = MinMaxSeries(capacity=64)
    rng = np.random.default_rng(0)
    values = rng.normal(size=100_000)
    values[77_777] = 50.0  # one spike
    values[12_345] = -40.0
    for i, v in enumerate(values):
        s.append(i, v)
    steps, ys = s.points()
    assert len(s) <= 64 and len(steps) <= 2 * 64 + 1
    assert ys.max() == 50.0 and steps[ys.argmax()] == 77_777
    assert ys.min() == -40.0 and steps[ys.argmin()] == 12_345
    assert steps[-1] == 99_999 and ys[-1] == values[-1]
    assert np.all(np.diff(steps) > 0)
    np.testing.assert_array_equal(ys, values[steps])  # every kept point is a real point


def test_minmax_series_short_runs_are_exact():
    s = MinMaxSeries(capacity=16)
    for step in range(0, 100, 10):
        s.append(step, step / 10)
    steps, ys = s.points()
    np.testing.assert_array_equal(steps, np.arange(0, 100, 10))
    np.testing.assert_array_equal(ys, np.arange(10.0))


def test_minmax_series_nan_is_a_gap_not_an_extreme():
    s = MinMaxSeries(capacity=4)
    for i, v in enumerate([math.nan, 1.0, math.nan, 3.0] * 8):
        s.append(i, v)
    _, ys = s.points()
    finite = ys[np.isfinite(ys)]
    assert set(finite) <= {1.0, 3.0} and len(finite) > 0


def test_recent_keeps_the_last_points():
    r = Recent(maxlen=5)
    for i in range(12):
        r.append(i * 2, i)
    steps, ys = r.points()
    np.testing.assert_array_equal(steps, [14, 16, 18, 20, 22])
    np.testing.assert_array_equal(ys, [7, 8, 9, 10, 11])


def _rows(steps, layers=(1, 2)):
    return [{"step": s, "layer": l, "uc_nfa": s / 1000 + l, "c_nfa": None if s == 0 else 0.5}
            for s in steps for l in layers]


def test_history_view_reads_only_new_rows_and_matches_history():
    h = History(_rows(range(0, 500, 10)))
    view = HistoryView(("uc_nfa", "c_nfa"), capacity=1000)
    assert view.update(h) == 100
    assert view.update(h) == 0
    h = h.extend(_rows(range(500, 600, 10)))
    assert view.update(h) == 20
    for layer in (1, 2):
        steps, ys = view.series("uc_nfa", layer)
        want_steps, want = h.series("uc_nfa", layer)
        np.testing.assert_array_equal(steps, want_steps)
        np.testing.assert_array_equal(ys, want)
    _, c = view.series("c_nfa", 1)
    assert math.isnan(c[0]) and c[1] == 0.5
    assert view.layers == [1, 2] and view.last_step == 590


def test_history_view_starts_over_on_a_new_history():
    view = HistoryView(("uc_nfa",))
    view.update(History(_rows(range(0, 100, 10))))
    fresh = History(_rows([0, 10], layers=(1,)))
    view.update(fresh)
    steps, _ = view.series("uc_nfa", 1)
    np.testing.assert_array_equal(steps, [0, 10])
    assert view.layers == [1]


def test_history_view_follows_a_copied_store():
    h = History(_rows(range(0, 100, 10)))
    older = History(_store=h._store, _len=len(h) - 2)  # a view shorter than its store
    view = HistoryView(("uc_nfa",))
    view.update(older)
    grown = older.extend(_rows([1000]))  # extend copies the store: same row objects
    assert view.update(grown) == 2


def test_history_view_is_bounded_after_a_million_steps():
    view = HistoryView(("uc_nfa",), capacity=256, recent=300)
    h = History()
    for start in range(0, 1_000_000, 100_000):
        h = h.extend(_rows(range(start, start + 100_000, 50), layers=(1,)))
        view.update(h)
    steps, _ = view.series("uc_nfa", 1)
    assert len(steps) <= 2 * 256 + 1 and steps[-1] == 999_950
    recent_steps, _ = view.series("uc_nfa", 1, recent=True)
    assert len(recent_steps) == 300 and recent_steps[0] == 999_950 - 299 * 50


def test_make_arms_differ_only_in_optim():
    cfg = preset_config("quickstart")
    arms = make_arms(cfg)
    assert [a.name for a in arms] == ["baseline", "control", "slo"]
    base, control, slo = (a.config for a in arms)
    assert not base.optim.slo.enabled
    assert control.optim.slo.enabled and control.optim.slo.boost == 1.0
    assert slo.optim.slo.enabled and slo.optim.slo.boost == cfg.optim.slo.boost
    for a in arms:
        assert (a.config.data, a.config.model, a.config.seed, a.config.measure) == \
               (cfg.data, cfg.model, cfg.seed, cfg.measure)
    assert [a.color for a in arms] == [p[0] for p in PALETTE[:3]]
    assert len({a.label for a in arms}) == 3


def test_make_arms_without_boost_has_no_separate_control():
    cfg = preset_config("quickstart").replace(**{"optim.slo.boost": 1.0})
    assert [a.name for a in make_arms(cfg)] == ["baseline", "slo"]


def test_minmax_points_between_appends_equal_points_computed_once():
    """points() keeps the closed buckets' points between calls; it must equal a one-shot read."""
    rng = np.random.default_rng(5)
    live = MinMaxSeries(capacity=16)
    fed = []
    for step in range(0, 3000, 3):
        value = float("nan") if rng.random() < 0.05 else float(rng.normal())
        live.append(step, value)
        fed.append((step, value))
        if rng.random() < 0.3:  # read now and then, across merges
            once = MinMaxSeries(capacity=16)
            for s, v in fed:
                once.append(s, v)
            a, b = live.points(), once.points()
            np.testing.assert_array_equal(a[0], b[0])
            np.testing.assert_array_equal(a[1], b[1])
