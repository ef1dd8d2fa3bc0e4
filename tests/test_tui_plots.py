"""What the terminal app draws: tick labels at their values, whole-token captions, fixed-width
status fields, and a drawn view whose size and cost do not grow with the run."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from rich.console import Console

from app.tui import charts, heatmaps, render
from app.tui.plotting import Chart, Curve, _log_snap, chart_text, log_ticks, unit_limits, y_axis
from core.engine import Engine
from core.history import History
from tui_helpers import tiny_config


def lines_of(renderable, width: int) -> list[str]:
    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    console.print(renderable)
    return console.export_text().rstrip("\n").split("\n")


def y_labels(lines: list[str]) -> dict[int, str]:
    """Plot row (0 = first plot row) -> y tick label, from the rendered chart's lines."""
    out = {}
    for r, line in enumerate(lines[1:-1]):
        m = re.match(r"^\s*(\S+)┤", line)
        if m:
            out[r] = m.group(1)
    return out


def dot_rows(lines: list[str]) -> list[int]:
    """Plot rows holding any braille dot."""
    return [r for r, line in enumerate(lines[1:-1]) if any(0x2801 <= ord(ch) <= 0x28FF for ch in line)]


@pytest.mark.parametrize("height", [5, 6, 7, 8, 10, 14, 21])
@pytest.mark.parametrize("log", [False, True])
def test_each_tick_label_sits_on_the_row_that_draws_its_value(height, log):
    """A flat line at each labelled value is drawn on exactly the label's row, and only there."""
    steps = np.arange(0, 1001, 50)
    base = Curve("a", (255, 0, 0), steps, np.geomspace(0.013, 2.7, len(steps)) if log else
                 np.linspace(0.18, 0.91, len(steps)))
    auto = y_labels(lines_of(chart_text(Chart("t", [base], log=log, ylim=None if log else unit_limits([base])),
                                        40, height), 40))
    axis = y_axis([base], log, None if log else unit_limits([base]), height - 2)
    lim = (axis.lo, axis.hi)
    labels = y_labels(lines_of(chart_text(Chart("t", [base], log=log, ylim=lim), 40, height), 40))
    assert labels == auto and len(labels) >= 2
    rows = sorted(labels)
    assert all(b - a >= 2 for a, b in zip(rows, rows[1:])), labels  # never on neighbouring rows
    values = [float(labels[r]) for r in rows]
    assert values == sorted(values, reverse=True)
    for row, text in labels.items():
        flat = Curve("flat", (0, 0, 255), steps, np.full(len(steps), float(text)))
        lines = lines_of(chart_text(Chart("t", [flat], log=log, ylim=lim), 40, height), 40)
        assert y_labels(lines) == labels
        assert dot_rows(lines) == [row], (text, dot_rows(lines), labels)


def test_a_value_between_ticks_is_never_on_another_values_row():
    steps = np.arange(0, 1001, 50)
    for height in (5, 6, 7, 8):
        lines = lines_of(chart_text(Chart("t", [Curve("a", (1, 1, 1), steps, np.full(len(steps), 0.18))],
                                          ylim=(0.0, 1.0)), 34, height), 34)
        (row,) = dot_rows(lines)
        label = y_labels(lines).get(row)
        assert label is None or abs(float(label) - 0.18) < 1.0 / (height - 2), (height, label)  # same row span


def test_log_ticks_are_round_numbers():
    for lo, hi in [(0.0123, 2.01), (1e-5, 3.0), (0.51, 0.93), (0.02, 0.05), (3e-7, 8e2)]:
        ticks = log_ticks(*_log_snap(lo, hi), 4)
        assert 2 <= len(ticks) <= 5
        for t in ticks:
            mantissa = t / 10 ** np.floor(np.log10(t))
            assert round(mantissa, 9) in (1, 2, 3, 4, 5, 6, 7, 8, 9), t


def test_log_loss_axis_labels_are_short_and_clean():
    steps = np.arange(0, 2001, 50)
    c = Curve("train", (1, 1, 1), steps, 2.0118541718 * np.exp(-steps / 300.0))
    lines = lines_of(chart_text(Chart("loss (log)", [c], log=True), 34, 8), 34)
    for label in y_labels(lines).values():
        assert len(label) <= 5 and re.fullmatch(r"[0-9.e-]+", label), label
    assert lines[0].startswith("loss") and lines[-1].rstrip().endswith("step")


def test_legend_and_caption_tokens_are_whole_or_absent():
    tokens = [("UC-NFA 0.669", "", 0), ("±0.12 max", "dim", 1), ("outlier", "", 2), ("128x128→43x43", "dim", 3)]
    for width in range(0, 60):
        shown = heatmaps.fit_tokens(tokens, width).plain
        assert len(shown) <= width
        parts = [p for p in shown.split("  ") if p]
        assert all(p in [t[0] for t in tokens] for p in parts), (width, shown)
        if width >= len("UC-NFA 0.669"):
            assert "UC-NFA 0.669" in parts


@pytest.mark.parametrize("width", [8, 12, 17, 24, 40])
def test_heatmap_caption_never_cuts_a_number(width):
    m = np.random.default_rng(1).normal(size=(128, 128))
    lines = lines_of(heatmaps.heatmap_text(m, "L1 AGOP^0.5 W^T K W", width, 12, "UC-NFA 0.669"), width)
    caption = lines[-1].strip()
    for number in re.findall(r"[0-9][0-9.x→]*", caption):
        assert number in ("0.669", "128x128→" + number.split("→")[-1], "0.5") or "±" + number in caption
    if width >= 12:
        assert "UC-NFA 0.669" in caption
    assert all(w in "L1 AGOP^0.5 W^T K W".split() for w in lines[0].split())


def test_one_outlier_is_flagged_and_the_robust_scale_shows_the_rest():
    rng = np.random.default_rng(2)
    m = rng.normal(scale=0.01, size=(40, 40))
    m[3, 5] = 10.0
    text = heatmaps.heatmap_text(m, "U^T K U", 40, 12).plain
    assert "outlier" in text and "max" in text
    robust = heatmaps.heatmap_text(m, "U^T K U", 40, 12, robust=True).plain
    assert "p99" in robust and "clipped" in robust
    peak, p99 = heatmaps.scales(m)
    assert peak == 10.0 and p99 == pytest.approx(np.percentile(np.abs(m), 99))
    # under max scaling every other cell is within 1 % of white; under p99 they span the colours
    plain_px = heatmaps.heatmap_pixels(m, 40).astype(int).reshape(-1, 3)
    robust_px = heatmaps.heatmap_pixels(m, 40, p99).astype(int).reshape(-1, 3)
    assert np.ptp(np.delete(plain_px, 3 * 40 + 5, axis=0), axis=0).max() < 15
    assert np.ptp(robust_px, axis=0).max() > 150
    assert "outlier" not in heatmaps.heatmap_text(rng.normal(size=(40, 40)), "K", 40, 12).plain


@pytest.fixture(scope="module")
def snaps():
    engine = Engine(tiny_config())
    first = engine.snapshot()
    engine.step(30)
    return first, engine.snapshot()


def test_status_fields_keep_their_columns_and_two_lines(snaps):
    a, b = snaps
    texts = [lines_of(render.status_text(s, st, detail), 200) for s, st, detail in
             ((a, "paused", ""), (b, "playing", ""), (b, "diverged", "boom"))]
    for t in texts:
        assert len(t) == 2  # the second line is always there
    assert "sgd lr 0.05 · SLO off" in texts[0][1] and texts[2][1].startswith("boom")
    firsts = [t[0] for t in texts]
    for word in (" loss", " test"):
        assert len({f.index(word) for f in firsts}) == 1, word
    assert f" loss{render.fmt_loss(b.train_loss)}" in firsts[1]
    assert render.fmt_loss(b.train_loss).strip() == f"{b.train_loss:.4g}"


def test_layer_table_fits_80_columns_without_cutting_numbers(snaps):
    _, snap = snaps
    lines = lines_of(render.layer_table(snap, 1, 78), 78)
    assert max(len(line) for line in lines) <= 78
    row = lines[2]
    assert f"{snap.layer(1).uc_nfa:.3f}" in row and f"{snap.layer(1).c_nfa:.3f}" in row


def synthetic_history(steps: int, every: int = 1, layers: int = 2) -> History:
    rows = []
    for step in range(0, steps, every):
        loss = 1.0 / (1 + step)
        for layer in range(1, layers + 1):
            rows.append({"step": step, "layer": layer, "train_loss": loss, "test_loss": 1.1 * loss,
                         "uc_nfa": 0.5 + 0.4 * np.sin(step / 1000), "c_nfa": 0.3, "feature_quality": None})
    return History(rows)


def test_drawn_view_stays_bounded_and_reads_only_new_rows():
    history = synthetic_history(200_000, every=2)  # 100,000 measurements of 2 layers
    view = charts.new_view()
    assert view.update(history) == 200_000
    history = history.extend([{**history.row(-2), "step": 200_000}, {**history.row(-1), "step": 200_000}])
    assert view.update(history) == 2  # a frame reads only what is new
    for recent in (False, True):
        for chart in (charts.loss_chart(view, recent), charts.nfa_chart(view, 1, False, recent)):
            for curve in chart.curves:
                assert len(curve.steps) <= 2 * charts.CAPACITY + 1
                assert len(curve.steps) <= (charts.RECENT if recent else 2 * charts.CAPACITY + 1)
            lines = lines_of(chart_text(chart, 60, 12), 60)
            assert len(lines) == 12 and max(len(line) for line in lines) <= 60
    whole = charts.nfa_chart(view, 1, False)
    assert whole.xlim == (0.0, 200_000.0) and whole.curves[0].steps[-1] == 200_000
    recent = charts.nfa_chart(view, 1, False, recent=True)
    assert recent.curves[0].steps[0] == 200_000 - 2 * (charts.RECENT - 1)
    assert lines_of(chart_text(recent, 60, 12), 60)[0].startswith(f"correlation L1 last {charts.RECENT}")
