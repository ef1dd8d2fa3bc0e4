"""Heatmap pictures and the status line: what a reader sees equals the numbers, and nothing jumps."""

from __future__ import annotations

import base64
import re

import numpy as np
from matplotlib import colormaps

from app.web import panels
from app.web.views import figure, fmt_loss, view_of
from core.plots import DIVERGING, heatmap_index, heatmap_palette, heatmap_rgb


def decoded(html: str) -> np.ndarray:
    """The picture a page draws from a figure's canvas: its palette indices through the palette."""
    tag = re.search(r'<canvas class="nfa-img"[^>]*>', html).group(0)
    width, height = (int(re.search(rf' {k}="(\d+)"', tag).group(1)) for k in ("width", "height"))
    idx = np.frombuffer(base64.b64decode(re.search(r'data-idx="([^"]+)"', tag).group(1)), dtype=np.uint8)
    return heatmap_palette()[idx.reshape(height, width)]


def test_palette_indices_are_the_colour_maps_own_bins():
    """heatmap_rgb (palette[index]) equals matplotlib's colour map on the same scaled values, edges included."""
    rng = np.random.default_rng(3)
    m = rng.normal(size=(64, 64))
    m[0, :4] = [np.nan, 0.0, 1e-300, -1e-300]
    m[1, 0], m[1, 1] = np.abs(m).max(), -np.abs(np.nan_to_num(m)).max()  # exactly +max and -max
    unit = (np.nan_to_num(m / np.nanmax(np.abs(m))) + 1) / 2
    np.testing.assert_array_equal(heatmap_rgb(m), colormaps[DIVERGING](unit, bytes=True)[..., :3])
    edges = np.linspace(-1, 1, 4097).reshape(1, -1)  # every bin boundary of 256 bins, hit exactly
    unit = (edges + 1) / 2
    np.testing.assert_array_equal(heatmap_rgb(edges, max_cells=edges.size), colormaps[DIVERGING](unit, bytes=True)[..., :3])
    assert heatmap_index(np.array([[-2.0, 0.0, 2.0]])).tolist() == [[0, 128, 255]]
    np.testing.assert_array_equal(heatmap_palette(), colormaps[DIVERGING](np.arange(256), bytes=True)[:, :3])


def one_outlier(n: int = 128) -> np.ndarray:
    rng = np.random.default_rng(0)
    m = rng.normal(0, 0.01, (n, n))
    m[0, 0] = 5.0  # one strong pixel in the corner, the case that once hid under a rounded tile corner
    return m


def test_max_scale_shows_the_matrix_and_says_one_outlier_sets_it():
    m = one_outlier()
    html = figure(m, "UᵀKU")
    np.testing.assert_array_equal(decoded(html), heatmap_rgb(m))
    assert decoded(html).shape == (128, 128, 3)
    p99 = np.percentile(np.abs(m), 99)
    assert f"outlier: max = {5.0 / p99:.0f}× p99" in html and "±5" in html


def test_robust_scale_clips_at_the_99th_percentile_and_says_so():
    m = one_outlier()
    p99 = float(np.percentile(np.abs(m), 99))
    html = figure(m, "UᵀKU", scale="robust")
    np.testing.assert_array_equal(decoded(html), heatmap_rgb(np.clip(m, -p99, p99)))
    assert f"±{p99:.3g} (99%)" in html and "(clipped)" in html
    small = decoded(html)[1:, 1:].astype(int)
    assert np.abs(small - 247).max() > 60  # the rest of the matrix is visible, not washed out to white


def test_no_outlier_no_flag():
    m = np.random.default_rng(1).normal(size=(20, 20))
    assert "outlier" not in figure(m, "NFM") and "outlier" not in figure(m, "NFM", scale="robust")


def test_view_of_falls_back_on_unknown_choices():
    assert view_of("2", 1, "nonsense", "huge") == view_of(2, True)
    assert view_of(None, 0, "recent", "robust").window == "recent"


class _Snap:
    def __init__(self, step, train, test, diverged=False):
        self.step, self.train_loss, self.test_loss, self.test_accuracy = step, train, test, 0.5
        self.diverged, self.message, self.optimizer = diverged, "", "sgd lr 0.05"
        self.stopped, self.status = diverged, "diverged" if diverged else "running"


def test_status_fields_have_fixed_widths_and_the_current_run_length():
    a = panels.status_line([_Snap(5, 1.23456, 0.5)], False, 200000)
    b = panels.status_line([_Snap(123456, 0.000123, 0.0212)], False, 200000)
    widths = [re.findall(r"min-width:(\d+)ch", x) for x in (a, b)]
    assert widths[0] == widths[1]
    assert fmt_loss(1.23456) == "1.2346" and fmt_loss(0.000123) == "1.23e-04"
    assert "of 200000" in a and "paused" in a
    done = panels.status_line([_Snap(2000, 0.1, 0.1)], False, 2000)
    raised = panels.status_line([_Snap(2000, 0.1, 0.1)], False, 5000)  # the run length was raised: not finished
    assert "finished" in done and "finished" not in raised and "paused" in raised
