"""Pure parts of the terminal app: renderers, views, frame driver, config form parsing."""

from __future__ import annotations

import numpy as np
import pytest
from rich.console import Console

from app.tui import charts, driver, heatmaps, render, views
from app.tui.config_screen import candidate, field_id, value_text
from app.tui.messages import FrameReady
from app.tui.plotting import chart_text, step_ticks
from core.config import ConfigError, flat_items
from core.engine import Engine
from tui_helpers import tiny_config


@pytest.fixture(scope="module")
def snap():
    engine = Engine(tiny_config())
    engine.step(30)
    return engine.snapshot()


def plain(renderable, width: int = 100) -> str:
    console = Console(width=width, record=True, color_system=None, file=open("/dev/null", "w"))
    console.print(renderable)
    return console.export_text()


def test_sparkline_fixed_scale_and_width():
    assert render.sparkline([0.0, 0.5, 1.0, float("nan")], 6) == "▁▅█   "
    assert render.sparkline(range(10), 3) == "███"  # the last values, clipped to [0, 1]
    assert render.sparkline([], 2) == "  "


def test_fit_matrix_keeps_small_and_averages_large():
    m = np.arange(400.0).reshape(20, 20)
    assert heatmaps.fit_matrix(m, 30) is not None and heatmaps.fit_matrix(m, 30).shape == (20, 20)
    small = heatmaps.fit_matrix(m, 18)
    assert small.shape == (18, 18)
    assert small.mean() == pytest.approx(m.mean())
    assert heatmaps.size_label(m, 18) == "20x20→18x18"
    assert heatmaps.size_label(np.zeros((128, 20)), 40) == "128x20→40x6"


def test_heatmap_pixels_upsample_by_whole_factors():
    rgb = heatmaps.heatmap_pixels(np.eye(4), 10)
    assert rgb.shape == (8, 8, 3) and rgb.dtype == np.uint8


def test_heatmap_text_fits_its_box():
    text = heatmaps.heatmap_text(np.random.default_rng(0).normal(size=(128, 128)), "K", 30, 20, "note")
    lines = plain(text, 30).rstrip("\n").split("\n")
    assert len(lines) <= 20 and max(len(line) for line in lines) <= 30
    assert "128x128→30x30" in lines[-1] and "note" in lines[-1]


def test_status_and_table_name_every_quantity(snap):
    status = plain(render.status_text(snap, "paused"))
    assert "step        30" in status and "SLO off" in status and "paused" in status
    table = plain(render.layer_table(snap, 2, 100))
    for word in ("layer", "shape", "UC-NFA", "C-NFA", "move", "quality", "32x20", "32x32"):
        assert word in table
    assert "▶2" in table


def test_optimizer_label_spells_slo():
    cfg = tiny_config(**{"optim.slo.enabled": True, "optim.slo.boost": 4})
    engine = Engine(cfg)
    assert render.optimizer_label(engine.snapshot()).startswith("SLO on (layer 1, boost 4)")


def test_views_cycle_and_panels(snap):
    assert views.next_view(snap, "nfm-agop") == "k-utku"
    assert views.next_view(snap, "ground-truth") == "nfm-agop"
    left, right = views.panels(snap, 2, "nfm-agop", centered=True)
    assert "centered" in left.title and right.matrix.shape == (32, 32)
    left, right = views.panels(snap, 1, "k-utku", False)
    assert left.matrix.shape == (32, 32) and right.matrix.shape == (20, 20)
    left, right = views.panels(snap, 2, "ground-truth", False)
    assert right.matrix.shape == (20, 20) and "G*" in right.title


def test_no_ground_truth_view_without_a_target(snap):
    import dataclasses

    real = dataclasses.replace(snap, g_star=None)
    assert views.available_views(real) == ("nfm-agop", "k-utku")
    assert views.next_view(real, "k-utku") == "nfm-agop"


def test_charts_render_with_legend(snap):
    view = charts.new_view()
    view.update(snap.history)
    for chart in (charts.loss_chart(view), charts.nfa_chart(view, 1, True)):
        text = plain(chart_text(chart, 40, 10), 40)
        assert chart.curves[0].label in text and "┤" in text and text.rstrip().endswith("step")
    assert step_ticks(0, 2000, 5) == [0, 500, 1000, 1500, 2000]


def test_key_bar_wraps_between_entries():
    entries = [("space", "play/pause", ""), ("n", "step", ""), ("q", "quit", "")]
    assert plain(render.key_bar(entries, 80)).strip() == "space play/pause  n step  q quit"
    assert plain(render.key_bar(entries, 20)).strip().split("\n") == ["space play/pause", "n step  q quit"]


def test_frame_steps():
    assert driver.PLAY_LIMIT == 10_000_000
    assert driver.frame_steps(0, 50, None) == 50
    assert driver.frame_steps(120, 50, 130) == 10
    assert driver.frame_steps(130, 50, 130) == 0


def test_advance_stops_on_request_and_at_target():
    engine = Engine(tiny_config())
    assert driver.advance([engine], None, lambda: True) is None
    frame = driver.advance([engine], 15, lambda: False)
    assert frame.snaps[0].step == 10 and not frame.done
    frame = driver.advance([engine], 15, lambda: False)
    assert frame.snaps[0].step == 15 and frame.done


def test_newer_frames_replace_queued_ones_unless_final():
    a, b = FrameReady((), 0), FrameReady((), 0)
    final = FrameReady((), 0, end="finished")
    assert a.can_replace(b)
    assert not final.can_replace(b)


def test_config_form_parses_like_the_cli():
    base = tiny_config()
    texts = {k: value_text(v) for k, v in flat_items(base).items()}
    assert candidate(base, texts) == base
    texts["optim.lr"], texts["optim.slo.enabled"] = "0.2", "true"
    new = candidate(base, texts)
    assert new.optim.lr == 0.2 and new.optim.slo.enabled is True
    with pytest.raises(ConfigError, match="optim.lr"):
        candidate(base, {**texts, "optim.lr": "fast"})
    with pytest.raises(ConfigError, match="model.width"):
        candidate(base, {**texts, "model.width": "0"})
    assert field_id("optim.slo.target_layer") == "cfg-optim-slo-target-layer"
