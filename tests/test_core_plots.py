"""nfa.png as drawn: each series where its values are, in its own colour and legend entry; gaps stay gaps."""

from __future__ import annotations

import numpy as np
import pytest

from core import plots, raster
from core.history import History

STEPS = np.arange(0, 201, 20)


def _history() -> History:
    rows = []
    for step in STEPS:
        for layer, uc, c in ((1, 0.2 + 0.6 * step / 200, 0.9), (2, 0.5, 0.1 + 0.3 * step / 200)):
            rows.append({"step": int(step), "layer": layer, "uc_nfa": uc, "c_nfa": None if step == 0 else c,
                         "alpha": 1.0})
    return History(rows)


def _near(image: np.ndarray, xy: np.ndarray, colour, radius: int = 2, tol: int = 60) -> bool:
    """Some pixel within ``radius`` of ``xy`` is within ``tol`` (per channel) of ``colour``."""
    x, y = (int(round(v)) for v in xy)
    patch = image[y - radius:y + radius + 1, x - radius:x + radius + 1].astype(int)
    return bool((np.abs(patch - np.array(colour)).max(axis=2) <= tol).any())


@pytest.fixture(scope="module")
def drawn():
    history = _history()
    image = np.asarray(plots.nfa_figure(history, "title"))
    (width, height), axes = plots.nfa_axes(history, "title")
    assert image.shape == (height, width, 3)
    return history, image, axes


def test_each_series_is_drawn_at_its_values_in_its_colour(drawn):
    history, image, axes = drawn
    for ax, layer in zip(axes, history.layers()):
        for key, label, colour, _ in plots.SERIES:
            steps, values = history.series(key, layer)
            points = ax.to_px(steps, values)
            solid = [p for p, v in zip(points, values) if np.isfinite(v)]
            if key == "c_nfa":  # dashed: most points sit on a dash
                assert np.mean([_near(image, p, colour) for p in solid]) > 0.6, (layer, label)
            else:
                assert all(_near(image, p, colour) for p in solid), (layer, label)


def test_series_do_not_appear_where_they_are_not(drawn):
    history, image, axes = drawn
    ax = axes[1]  # layer 2: UC-NFA flat at 0.5, C-NFA from 0.1 to 0.4; nothing near 0.9
    for step in STEPS[2:-2]:
        p = ax.to_px([step], [0.9])[0]
        for _, label, colour, _ in plots.SERIES:
            assert not _near(image, p, colour, tol=40), (step, label)


def test_an_undefined_value_leaves_a_gap(drawn):
    history, image, axes = drawn
    ax = axes[0]  # layer 1's C-NFA is undefined at step 0 and 0.9 from step 20 on
    assert not _near(image, ax.to_px([0], [0.9])[0], raster.ORANGE, tol=40)
    assert _near(image, ax.to_px([60], [0.9])[0], raster.ORANGE, radius=5)


def test_legend_shows_both_series_in_the_first_panel_only(drawn):
    history, image, axes = drawn
    ax = axes[0]
    corner = image[int(ax.bottom) - 50:int(ax.bottom), int(ax.right) - 110:int(ax.right)].astype(int)
    for _, _, colour, _ in plots.SERIES:
        assert (np.abs(corner - np.array(colour)).max(axis=2) <= 30).sum() > 20, colour
    ax = axes[1]
    corner = image[int(ax.bottom) - 50:int(ax.bottom) - 5, int(ax.right) - 110:int(ax.right) - 5].astype(int)
    assert (np.abs(corner - np.array(raster.BLUE)).max(axis=2) <= 30).sum() == 0


def test_ticks_are_round_and_inside_the_range():
    assert raster.integer_ticks(-10, 210, most=4) == [0, 100, 200]
    assert raster.integer_ticks(0, 7, most=4) == [0, 2, 4, 6]
    assert raster.integer_ticks(-1, 1, most=4) == [-1, 0, 1]
    assert raster.integer_ticks(5, 5.4) == [5]
    assert len(raster.integer_ticks(0, 10**6, most=4)) <= 4


def test_a_long_dashed_line_ends():
    """A dash pattern run over thousands of short segments (float error once stalled it forever)."""
    pts = np.stack([np.linspace(0, 5000, 20001), np.linspace(0, 3, 20001)], axis=1)
    pieces = np.array(list(raster._dashes(pts, 17.0, 7.4)))
    drawn = np.hypot(*(pieces[:, 1] - pieces[:, 0]).T).sum()
    total = np.hypot(*(pts[-1] - pts[0]))
    assert drawn == pytest.approx(total * 17.0 / 24.4, rel=0.01)


def test_a_negative_correlation_widens_the_axis_and_stays_inside_it():
    rows = [{"step": s, "layer": 1, "uc_nfa": -0.6 + s / 100, "c_nfa": 0.5, "alpha": 1.0} for s in range(0, 101, 10)]
    history = History(rows)
    image = np.asarray(plots.nfa_figure(history))
    _, (ax,) = plots.nfa_axes(history)
    assert ax.y_range[0] <= -0.65 and ax.y_range[1] == plots.Y_RANGE[1]
    points = ax.to_px(*history.series("uc_nfa", 1))
    assert (points[:, 1] <= ax.bottom).all() and (points[:, 1] >= ax.top).all()
    assert all(_near(image, p, raster.BLUE) for p in points)
    _, (plain, _) = plots.nfa_axes(_history())  # values in [0, 1]: the usual -0.05 to 1.02
    assert plain.y_range == plots.Y_RANGE
