"""The curve charts' data for a synthetic history: names, bounded points, values equal to the history."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from app.web import charts
from app.web.sessions import CURVE_BUCKETS, RECENT_POINTS, curve_view
from core.history import History

LAYERS = (1, 2, 3)


def synthetic_history(measurements: int, every: int = 10, spike_at: int | None = None) -> History:
    """Rows at steps 0, every, 2*every, ... for three layers; smooth values, one spike in layer 2's UC-NFA."""
    rows = []
    for i in range(measurements):
        step = i * every
        for layer in LAYERS:
            uc = 0.5 + 0.4 * math.sin(i / 37 + layer)
            if spike_at is not None and i == spike_at and layer == 2:
                uc = -0.9
            rows.append({"step": step, "layer": layer, "uc_nfa": uc, "c_nfa": 0.9 - 0.1 * layer / (1 + i),
                         "rel_movement": 0.01 * layer * math.log1p(i), "train_loss": 1 / (1 + i),
                         "test_loss": 1.2 / (1 + i), "feature_quality": 0.3 if layer == 1 else None,
                         "init_share": 1 / (1 + i), "cross_share": 0.1, "centered_share": 1 - 1 / (1 + i)})
    return History(rows)


class Snap:
    g_star = np.eye(2)


def figure_of(chart: charts.Chart) -> dict:
    return json.loads(charts.plot_data(chart).plot)


def values_at(history: History, key: str, layer: int) -> dict[int, float]:
    steps, values = history.series(key, layer)
    return dict(zip(steps.tolist(), values.tolist()))


def test_small_history_is_drawn_point_for_point_under_each_layers_name():
    history = synthetic_history(50)
    view = curve_view()
    view.update(history)
    nfa, loss, movement, shares = charts.single_charts(view, Snap(), layer=2)
    fig = figure_of(nfa)
    names = [t["name"] for t in fig["data"]]
    assert names == ["layer 1 UC", "layer 2 UC", "layer 3 UC", "layer 1 C", "layer 2 C", "layer 3 C", "G* quality"]
    for trace in fig["data"][:6]:
        layer, kind = int(trace["name"].split()[1]), trace["name"].split()[2]
        steps, values = history.series("uc_nfa" if kind == "UC" else "c_nfa", layer)
        assert trace["x"] == steps.tolist()
        np.testing.assert_allclose(trace["y"], values, rtol=1e-5)
        assert trace["legendgroup"] == f"layer {layer}"  # a legend click hides a layer's UC and C together
        assert trace["line"]["dash"] == ("solid" if kind == "UC" else "dash")
    assert fig["layout"]["xaxis"]["title"]["text"] == "step"
    assert fig["layout"]["yaxis"]["title"]["text"] == "correlation"
    assert fig["layout"]["hovermode"] == "x unified" and fig["layout"]["uirevision"] == "nfa"
    lfig = figure_of(loss)
    assert [t["name"] for t in lfig["data"]] == ["train", "test"]
    ly = lfig["layout"]["yaxis"]
    assert ly["type"] == "log" and ly["tickvals"] == charts.log_ticks(1 / 50, 1.2)
    assert ly["ticktext"] == [f"{v:g}" for v in ly["tickvals"]]
    assert figure_of(shares)["layout"]["title"]["text"].startswith("layer 2")


@pytest.mark.parametrize("measurements", [5_000, 20_000])
def test_long_history_is_bounded_keeps_spikes_and_equals_the_history_at_kept_steps(measurements):
    spike = measurements // 3
    history = synthetic_history(measurements, spike_at=spike)
    view = curve_view()
    view.update(history)
    fig = figure_of(charts.single_charts(view, Snap(), layer=1)[0])
    bound = 2 * CURVE_BUCKETS + 1
    for trace in fig["data"]:
        assert 0 < len(trace["x"]) <= bound, trace["name"]
        assert trace["x"] == sorted(trace["x"]) and trace["x"][-1] == (measurements - 1) * 10
    exact = {name: values_at(history, key, layer) for name, key, layer in
             [(f"layer {layer} {k}", c, layer) for layer in LAYERS for k, c in (("UC", "uc_nfa"), ("C", "c_nfa"))]}
    for trace in fig["data"][:6]:
        truth = exact[trace["name"]]
        for step, value in zip(trace["x"], trace["y"]):
            assert value == pytest.approx(truth[step], rel=1e-5)
    layer2 = next(t for t in fig["data"] if t["name"] == "layer 2 UC")
    assert min(layer2["y"]) == pytest.approx(-0.9)  # the one-measurement spike survives decimation
    assert (spike * 10) in layer2["x"]


def test_recent_window_is_the_last_raw_measurements():
    history = synthetic_history(3_000)
    view = curve_view()
    view.update(history)
    loss = charts.single_charts(view, Snap(), layer=1, window="recent")[1]
    fig = figure_of(loss)
    steps, values = history.series("train_loss", 1)
    train = fig["data"][0]
    assert train["x"] == steps[-RECENT_POINTS:].tolist()
    np.testing.assert_allclose(train["y"], values[-RECENT_POINTS:], rtol=1e-5)
    assert fig["layout"]["meta"]["window"] == "recent"


def test_updates_read_only_the_new_rows():
    history = synthetic_history(2_000)
    view = curve_view()
    assert view.update(history) == len(history)
    more = history.extend([{**r, "step": r["step"] + 20_000} for r in history.rows[-3:]])
    assert view.update(more) == 3
    fig = figure_of(charts.single_charts(view, Snap(), layer=1)[1])
    assert fig["data"][0]["x"][-1] == history.rows[-1]["step"] + 20_000


def test_gaps_and_non_positive_losses_become_nulls_not_invalid_json():
    rows = [{"step": s, "layer": 1, "uc_nfa": None if s == 10 else 0.5, "train_loss": 0.0 if s == 20 else 0.1,
             "test_loss": float("inf") if s == 30 else 0.2} for s in range(0, 50, 10)]
    view = curve_view()
    view.update(History(rows))
    nfa, loss = charts.single_charts(view, type("S", (), {"g_star": None})(), 1)[:2]
    text = charts.plot_data(loss).plot
    assert "NaN" not in text and "Infinity" not in text
    fig = json.loads(text)
    assert fig["data"][0]["y"][2] is None and fig["data"][1]["y"][3] is None
    assert figure_of(nfa)["data"][0]["y"][1] is None


@pytest.mark.parametrize("lo, hi, want", [
    (1e-4, 2.0, [1e-4, 1e-3, 1e-2, 0.1, 1.0]),
    (0.02, 1.2, [0.03, 0.1, 0.3, 1.0]),
    (0.25, 2.2, [0.5, 1.0, 2.0]),
    (1.59, 1.69, [1.6, 1.625, 1.65, 1.675]),
    (1e-9, 1e3, [1e-9, 1e-6, 1e-3, 1.0, 1e3]),
])
def test_log_ticks_are_clean_values_inside_the_range(lo, hi, want):
    ticks = charts.log_ticks(lo, hi)
    assert ticks == pytest.approx(want)
    assert all(lo <= t <= hi for t in ticks)


@pytest.mark.parametrize("measurements,every,fixed", [(1, 10, True), (2, 4, True), (3, 10, False)])
def test_step_axis_ticks_whole_steps_before_the_run_spans_ten(measurements, every, fixed):
    view = curve_view()
    view.update(synthetic_history(measurements, every=every))
    for chart in charts.single_charts(view, Snap(), layer=1):
        xaxis = figure_of(chart)["layout"]["xaxis"]
        assert xaxis["title"]["text"] == "step"
        # step 0 alone (or up to 4) would be ticked at 200m, 400m, ...; a span of 10 ticks at 0, 2, 4, ...
        assert xaxis.get("range") == ([0, charts.MIN_STEP_SPAN] if fixed else None)
