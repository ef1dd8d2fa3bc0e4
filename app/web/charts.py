"""The curve panels as plotly figures, built from bounded views of the runs' histories.

Each chart is a ``Chart`` (named lines over the step axis) made from a ``HistoryView``
(``core.series``): min/max buckets of the whole run, or the last raw measurements for the
recent window, updated from new rows only, so building a chart costs the same after a
million steps as after a thousand. ``plot_data`` turns a chart into the JSON that Gradio's
``gr.Plot`` hands to plotly.js (no ``plotly.graph_objects`` on the hot path: a figure dict
and ``json.dumps`` are ~20x cheaper than validated figure objects). ``app.web.exports``
draws the same charts with matplotlib for the exported PNG.

Legend groups (``Line.group``) are what a legend click hides: a layer (its UC and C
curves together) or a comparison arm. ``CHART_JS`` (run once by the page) keeps the
zoomed step range and the hidden groups of every chart across updates.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from gradio.components.plot import PlotData

from app.web.views import WINDOWS
from core.engine import Snapshot
from core.series import HistoryView

UNIT = (-0.05, 1.03)
LAYER_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
TRAIN, TEST, QUALITY = "#2d2d34", "#e67800", "#141414"
SHARE_COLORS = ("#7f7f7f", "#ff7f0e", "#1f77b4")
CHART_HEIGHT = 220


@dataclass(frozen=True)
class Line:
    """One series: steps, values (NaN breaks the line), label, colour, dash, width and legend group."""

    x: np.ndarray
    y: np.ndarray
    name: str
    color: str
    dash: str = "solid"
    width: float = 1.6
    group: str = ""
    legend: bool = True
    """Whether the line has its own legend entry (a group shows one entry for all its lines)."""


@dataclass(frozen=True)
class Chart:
    """A chart: which one (``key``, stable across updates), its title, y axis, lines and scale."""

    key: str
    title: str
    y_title: str
    lines: tuple[Line, ...]
    log_y: bool = False
    y_range: tuple[float, float] | None = None
    y_format: str = ".3f"
    window: str = WINDOWS[0]


def layer_color(layer: int) -> str:
    return LAYER_COLORS[(layer - 1) % len(LAYER_COLORS)]


def _series(view: HistoryView, key: str, layer: int, window: str) -> tuple[np.ndarray, np.ndarray]:
    return view.series(key, layer, recent=window == WINDOWS[1])


# -- single run ------------------------------------------------------------------------

def _layer_lines(view: HistoryView, key: str, selected: int, window: str, dash: str = "solid",
                 suffix: str = "", legend: bool = True) -> list[Line]:
    out = []
    for layer in view.layers:
        x, y = _series(view, key, layer, window)
        sel = layer == selected
        out.append(Line(x, y, f"layer {layer}{suffix}", layer_color(layer), dash, 2.6 if sel else 1.2,
                        f"layer {layer}", legend))
    return out


def nfa_chart(view: HistoryView, layer: int, has_quality: bool, window: str) -> Chart:
    lines = (_layer_lines(view, "uc_nfa", layer, window, suffix=" UC") +
             _layer_lines(view, "c_nfa", layer, window, "dash", " C", legend=False))
    if has_quality:
        x, y = _series(view, "feature_quality", 1, window)
        lines.append(Line(x, y, "G* quality", QUALITY, "dot", 1.4, "G* quality"))
    return Chart("nfa", "UC-NFA (solid) and C-NFA (dashed) per layer", "correlation", tuple(lines),
                 y_range=UNIT, window=window)


def loss_chart(view: HistoryView, window: str) -> Chart:
    x, train = _series(view, "train_loss", 1, window)
    _, test = _series(view, "test_loss", 1, window)
    lines = (Line(x, train, "train", TRAIN, "solid", 1.8, "train"), Line(x, test, "test", TEST, "dash", 1.8, "test"))
    return Chart("loss", "loss", "loss (log scale)", lines, log_y=True, y_format=".4g", window=window)


def movement_chart(view: HistoryView, layer: int, window: str) -> Chart:
    return Chart("movement", "relative movement ‖dW‖/‖W‖ per layer", "‖dW‖ / ‖W‖",
                 tuple(_layer_lines(view, "rel_movement", layer, window)), y_format=".4f", window=window)


def shares_chart(view: HistoryView, layer: int, window: str) -> Chart:
    names = (("init_share", "init W0ᵀW0"), ("cross_share", "cross"), ("centered_share", "centered dWᵀdW"))
    lines = []
    for (key, label), color in zip(names, SHARE_COLORS):
        x, y = _series(view, key, layer, window)
        lines.append(Line(x, y, label, color, "solid", 2.0, label))
    return Chart("shares", f"layer {layer}: NFM term shares", "share of NFM", tuple(lines), y_range=UNIT,
                 window=window)


def single_charts(view: HistoryView, snap: Snapshot, layer: int, window: str = WINDOWS[0]) -> list[Chart]:
    """NFA per layer, loss, movement per layer, the selected layer's term shares."""
    return [nfa_chart(view, layer, snap.g_star is not None, window), loss_chart(view, window),
            movement_chart(view, layer, window), shares_chart(view, layer, window)]


# -- comparison ------------------------------------------------------------------------

def _arm_lines(arms: Sequence, views: Sequence[HistoryView], key: str, layer: int, window: str) -> tuple[Line, ...]:
    """One line per arm in the arm's own colour and dash (``core.arms.PALETTE``), grouped by arm."""
    out = []
    for arm, view in zip(arms, views):
        x, y = _series(view, key, layer, window)
        out.append(Line(x, y, arm.label, arm.color, arm.dash, 2.0, arm.name))
    return tuple(out)


def compare_charts(arms: Sequence, views: Sequence[HistoryView], snap: Snapshot, layer: int,
                   window: str = WINDOWS[0]) -> list[Chart]:
    """Every arm overlaid: the layer's UC-NFA, test loss, feature quality (or C-NFA), movement."""
    charts = [Chart("nfa", f"layer {layer}: UC-NFA per arm", "correlation",
                    _arm_lines(arms, views, "uc_nfa", layer, window), y_range=UNIT, window=window),
              Chart("loss", "test loss per arm", "test loss (log scale)", _arm_lines(arms, views, "test_loss", 1, window),
                    log_y=True, y_format=".4g", window=window)]
    if snap.g_star is not None:
        charts.append(Chart("quality", "feature quality ρ(NFM₁, G*) per arm", "correlation",
                            _arm_lines(arms, views, "feature_quality", 1, window), y_range=UNIT, window=window))
    else:
        charts.append(Chart("quality", f"layer {layer}: C-NFA per arm", "correlation",
                            _arm_lines(arms, views, "c_nfa", layer, window), y_range=UNIT, window=window))
    charts.append(Chart("movement", f"layer {layer}: relative movement ‖dW‖/‖W‖ per arm", "‖dW‖ / ‖W‖",
                        _arm_lines(arms, views, "rel_movement", layer, window), y_format=".4f", window=window))
    return charts


# -- plotly ------------------------------------------------------------------------------

def _numbers(values: np.ndarray, digits: int = 6) -> list:
    """JSON-safe values: rounded to ``digits`` significant digits, NaN and inf as null (a gap)."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    safe = np.where(finite & (values != 0), np.abs(values), 1.0)
    scale = 10.0 ** (digits - 1 - np.floor(np.log10(safe)))
    out = np.where(finite, np.round(values * scale) / scale, 0.0).tolist()
    for i in np.flatnonzero(~finite).tolist():
        out[i] = None
    return out


def _trace(line: Line, log_y: bool, y_format: str) -> dict:
    y = line.y
    if log_y:
        y = np.where(y > 0, y, np.nan)
    return {"type": "scatter", "mode": "lines", "name": line.name, "x": line.x.astype(np.int64).tolist(),
            "y": _numbers(np.asarray(y, dtype=np.float64)), "legendgroup": line.group or line.name,
            "showlegend": line.legend, "line": {"color": line.color, "dash": line.dash, "width": line.width},
            "hovertemplate": f"%{{y:{y_format}}}", "connectgaps": False}


def log_ticks(lo: float, hi: float, most: int = 6) -> list[float]:
    """Clean tick values for a log axis over [lo, hi]: powers of ten, or 1-2-5 (1-2-3-5) steps in a
    short range, or evenly spaced round values when the range is under one such step."""
    if not (0 < lo <= hi and math.isfinite(hi)):
        return []
    k0, k1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    decades = [10.0 ** k for k in range(k0, k1 + 1)]
    inside = [v for v in decades if lo <= v <= hi]
    if len(inside) > most:
        every = -(-len(inside) // most)
        return inside[::every]
    for mantissas in ((1,), (1, 3), (1, 2, 5), (1, 2, 3, 5), (1, 1.5, 2, 3, 4, 5, 7)):
        ticks = [float(f"{m * d:.12g}") for d in decades for m in mantissas if lo <= m * d <= hi]
        if len(ticks) >= 3:
            return ticks if len(ticks) <= most + 2 else ticks[::2]
    return nice_ticks(lo, hi)


def nice_ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    """Round values (steps of 1, 2, 2.5 or 5 times a power of ten) inside [lo, hi]."""
    if hi <= lo:
        return [float(f"{lo:.3g}")]
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [float(f"{first + i * step:.12g}") for i in range(count + 1) if first + i * step <= hi * (1 + 1e-12)]


def _positive_range(chart: Chart) -> tuple[float, float]:
    values = [line.y[np.isfinite(line.y) & (line.y > 0)] for line in chart.lines]
    values = [v for v in values if v.size]
    if not values:
        return 0.0, 0.0
    return float(min(v.min() for v in values)), float(max(v.max() for v in values))


MIN_STEP_SPAN = 10
"""The step axis spans at least this many steps, so that its ticks are whole steps."""


def figure(chart: Chart) -> dict:
    """The plotly figure (data, layout, config) of a chart, as plain JSON-ready dicts."""
    yaxis: dict = {"title": {"text": chart.y_title, "standoff": 4}, "fixedrange": True, "zeroline": False,
                   "tickfont": {"size": 12}, "automargin": True}
    if chart.log_y:
        ticks = log_ticks(*_positive_range(chart))
        yaxis.update(type="log", tickvals=ticks, ticktext=[f"{t:g}" for t in ticks])
    elif chart.y_range is not None:
        yaxis["range"] = list(chart.y_range)
    xaxis = {"title": {"text": "step", "standoff": 2}, "tickfont": {"size": 12}, "hoverformat": ",d",
             "tickformat": "~s", "rangemode": "tozero", "zeroline": False}
    last = max((float(np.nanmax(line.x)) for line in chart.lines if len(line.x)), default=0.0)
    if last < MIN_STEP_SPAN:  # plotly would tick a 0..1 span at 200m, 400m, ...: steps are whole numbers
        xaxis["range"] = [0, MIN_STEP_SPAN]
    layout = {
        "title": {"text": chart.title, "font": {"size": 13}, "x": 0.01, "xanchor": "left", "y": 0.98},
        "height": CHART_HEIGHT, "margin": {"l": 56, "r": 8, "t": 48, "b": 38},
        "xaxis": xaxis,
        "yaxis": yaxis, "hovermode": "x unified", "dragmode": "zoom",
        "legend": {"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0.0, "font": {"size": 11},
                   "itemclick": "toggle", "itemdoubleclick": "toggleothers"},
        "font": {"size": 12}, "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "#ffffff",
        "uirevision": chart.key, "meta": {"chart": chart.key, "window": chart.window},
    }
    return {"data": [_trace(line, chart.log_y, chart.y_format) for line in chart.lines], "layout": layout,
            "config": {"displaylogo": False, "showTips": False, "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d"]}}


def plot_data(chart: Chart) -> PlotData:
    """What ``gr.Plot`` sends to the browser for a chart."""
    return PlotData(type="plotly", plot=json.dumps(figure(chart), separators=(",", ":"), allow_nan=False))
