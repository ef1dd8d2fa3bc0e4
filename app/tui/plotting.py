"""Line charts for the terminal, drawn in braille cells (2x4 dots per character).

Pure numpy and rich, no global figure: ``chart_text(chart, width, height)`` costs the
number of points plus the number of cells, and the points come from a bounded view
(``core.series``), so a frame costs the same after a million steps as after a thousand.

Every tick label sits on the row (y) or column (x) that holds the value it names: a tick
value is mapped to a dot, and its label is printed beside the character holding that dot.
Ticks are at least two rows apart, so no two labels sit on neighbouring rows. A log axis
has ticks at 1, 2, 5 x 10^k (or powers of ten over wide ranges).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from rich.style import Style
from rich.text import Text

BRAILLE = 0x2800
DOT_BITS = np.array([[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]], dtype=np.uint8)
"""Bit of the dot at (row within the cell, column within the cell)."""

DASHES = {
    "solid": None,
    "dash": (1, 1, 1, 1, 0, 0),
    "dot": (1, 0, 0),
    "dashdot": (1, 1, 1, 1, 0, 1, 0, 0),
    "longdash": (1, 1, 1, 1, 1, 1, 1, 0, 0),
}
"""Per dot column: drawn (1) or skipped (0), repeating; the terminal's line styles."""


@dataclass(frozen=True)
class Curve:
    """One line: label, colour (r, g, b), the points (NaN points leave gaps) and a dash style."""

    label: str
    colour: tuple[int, int, int]
    steps: np.ndarray
    values: np.ndarray
    dash: str = "solid"


@dataclass(frozen=True)
class Chart:
    """A chart: title (names the y axis), curves, log or linear y, optional fixed y limits.

    ``xlim`` fixes the step axis (e.g. the whole run starts at step 0).
    """

    title: str
    curves: list[Curve]
    log: bool = False
    ylim: tuple[float, float] | None = None
    xlim: tuple[float, float] | None = None
    xlabel: str = "step"


# -- ticks -------------------------------------------------------------------------------

def nice_gap(span: float, count: int) -> float:
    """The smallest of 1, 2, 5 x 10^k that splits ``span`` into at most ``count`` gaps."""
    raw = span / max(count, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw * (1 - 1e-9))


def linear_ticks(lo: float, hi: float, count: int) -> list[float]:
    """Round values in [lo, hi], at most ``count`` + 1 of them, evenly spaced."""
    if not hi > lo:
        return [lo]
    gap = nice_gap(hi - lo, max(count, 1))
    first = math.ceil(lo / gap - 1e-9)
    last = math.floor(hi / gap + 1e-9)
    return [round(i * gap, 12) for i in range(first, last + 1)]


def log_ticks(lo: float, hi: float, count: int) -> list[float]:
    """Values in [lo, hi] (lo > 0): 1, 2, 5 x 10^k when at most ``count`` + 1 fit, else powers of ten."""
    a, b = math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1
    sets = []
    for mantissas in ((1, 2, 5), (1,), (1, 2, 3, 4, 5, 6, 7, 8, 9)):
        ticks = [m * 10.0 ** d for d in range(a, b + 1) for m in mantissas]
        sets.append([t for t in ticks if lo * (1 - 1e-9) <= t <= hi * (1 + 1e-9)])
    fitting = [t for t in sets if 2 <= len(t) <= count + 1]
    if fitting:
        return fitting[0]
    ticks = min((t for t in sets if len(t) >= 2), key=len, default=sets[0])
    return ticks[:: math.ceil(len(ticks) / (count + 1))] if ticks else ticks


def value_label(v: float, gap: float | None = None) -> str:
    """A tick's text: as many decimals as its gap needs (``0.5``, ``0.25``), or ``1e-4``."""
    if gap is not None and abs(v) < 1e4:
        decimals = max(0, -math.floor(math.log10(gap) + 1e-9))
        return f"{v:.{decimals}f}"
    if v == 0 or 1e-3 <= abs(v) < 1e4:
        return f"{v:g}"
    mantissa, exponent = f"{v:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def step_label(step: float) -> str:
    """``950``, ``1.5k``, ``20k``, ``1.2M``."""
    step = int(round(step))
    if abs(step) < 1000:
        return str(step)
    if abs(step) < 1_000_000:
        return f"{step / 1000:g}k"
    return f"{step / 1_000_000:g}M"


def step_ticks(first: float, last: float, count: int) -> list[int]:
    """Round step numbers in [first, last], at most ``count`` of them."""
    if last <= first or count < 2:
        return [int(first)]
    return [int(t) for t in linear_ticks(first, last, count - 1)]


def unit_limits(curves: list[Curve]) -> tuple[float, float]:
    """[0, 1] widened to take in any negative correlation (to a multiple of 0.1)."""
    lows = [float(np.nanmin(c.values)) for c in curves if np.isfinite(c.values).any()]
    low = min([0.0] + lows)
    return (math.floor(low * 10 + 1e-9) / 10, 1.0)


# -- dots --------------------------------------------------------------------------------

def _runs(x: np.ndarray, y: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Contiguous finite stretches of a curve (a NaN or inf breaks the line)."""
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.all():
        return [(x, y)] if len(x) else []
    edges = np.flatnonzero(np.diff(np.concatenate(([0], ok.astype(np.int8), [0]))))
    return [(x[a:b], y[a:b]) for a, b in zip(edges[::2], edges[1::2])]


def line_dots(px: np.ndarray, py: np.ndarray, cols: int, rows: int) -> np.ndarray:
    """(rows, cols) bool dots of the polyline through (px, py) in dot coordinates (y up).

    Each dot column is filled between the lowest and highest point the line reaches in it,
    so a spike between two columns stays visible and steep lines stay connected.
    """
    mask = np.zeros((rows, cols), dtype=bool)
    if len(px) == 0:
        return mask
    c0 = int(max(0, math.floor(px.min() + 0.5)))
    c1 = int(min(cols - 1, math.floor(px.max() + 0.5)))
    if c1 < c0:
        return mask
    centres = np.arange(c0, c1 + 1, dtype=np.float64)
    left = np.interp(np.maximum(centres - 0.5, px[0]), px, py)
    right = np.interp(np.minimum(centres + 0.5, px[-1]), px, py)
    lo, hi = np.minimum(left, right), np.maximum(left, right)
    inside = np.clip(np.floor(px + 0.5).astype(np.int64), c0, c1) - c0
    np.minimum.at(lo, inside, py)
    np.maximum.at(hi, inside, py)
    lo_i = np.clip(np.floor(lo + 0.5), 0, rows - 1).astype(np.int64)
    hi_i = np.clip(np.floor(hi + 0.5), 0, rows - 1).astype(np.int64)
    ys = np.arange(rows)[:, None]
    mask[:, c0:c1 + 1] = (ys >= lo_i[None, :]) & (ys <= hi_i[None, :])
    return mask[::-1]  # row 0 at the top


def dash_mask(dash: str, cols: int) -> np.ndarray | None:
    """Which dot columns a dashed line draws (None: all)."""
    pattern = DASHES.get(dash)
    if pattern is None:
        return None
    return np.resize(np.array(pattern, dtype=bool), cols)


def cell_bits(dots: np.ndarray) -> np.ndarray:
    """(rows/4, cols/2) braille bit patterns of a (rows, cols) dot mask."""
    r, c = dots.shape
    cells = dots.reshape(r // 4, 4, c // 2, 2)
    return (cells * DOT_BITS[None, :, None, :]).sum(axis=(1, 3)).astype(np.uint8)


# -- the chart ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Axis:
    """One axis: its data limits, transform (log10 or not) and ticks."""

    lo: float
    hi: float
    log: bool
    ticks: list[float]
    labels: list[str]

    def dot(self, values: np.ndarray, dots: int) -> np.ndarray:
        """Values to dot coordinates 0 .. dots-1."""
        t = np.log10(values) if self.log else values
        lo, hi = (math.log10(self.lo), math.log10(self.hi)) if self.log else (self.lo, self.hi)
        return (t - lo) / (hi - lo) * (dots - 1)


def y_axis(curves: list[Curve], log: bool, ylim: tuple[float, float] | None, rows: int) -> Axis | None:
    """The y axis over the curves' finite values (positive ones on a log axis), ticks two rows apart."""
    vals = np.concatenate([c.values[np.isfinite(c.values)] for c in curves] or [np.zeros(0)])
    if log:
        vals = vals[vals > 0]
    if ylim is not None:
        lo, hi = ylim
    elif vals.size:
        lo, hi = float(vals.min()), float(vals.max())
    else:
        return None
    count = max(1, (rows - 1) // 2)
    if log:
        if not vals.size:
            return None
        lo, hi = (lo, hi) if hi > lo else (lo / 2, hi * 2)
        lo, hi = _log_snap(lo, hi)
        ticks = log_ticks(lo, hi, count)
        return Axis(lo, hi, True, ticks, [value_label(t) for t in ticks])
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    gap = nice_gap(hi - lo, count)
    if ylim is None:
        lo, hi = math.floor(lo / gap + 1e-9) * gap, math.ceil(hi / gap - 1e-9) * gap
    ticks = linear_ticks(lo, hi, count)
    gap = ticks[1] - ticks[0] if len(ticks) > 1 else gap
    return Axis(lo, hi, False, ticks, [value_label(t, gap) for t in ticks])


def _log_snap(lo: float, hi: float) -> tuple[float, float]:
    """Widens [lo, hi] outwards to 1, 2, 5 x 10^k so the ends are round numbers."""
    def down(v):
        p = 10.0 ** math.floor(math.log10(v))
        return max(m * p for m in (1, 2, 5) if m * p <= v * (1 + 1e-9))

    def up(v):
        p = 10.0 ** math.floor(math.log10(v))
        return min(m * p for m in (1, 2, 5, 10) if m * p >= v * (1 - 1e-9))

    return down(lo), up(hi)


def legend(title: str, curves: list[Curve], width: int) -> Text:
    """The chart's first line: title, then a coloured swatch and label per curve.

    When not every entry fits, the title shrinks to its first word; entries are whole or absent.
    """
    entries = [(f" {'━' if c.dash == 'solid' else '╍'}{c.label}", "rgb({},{},{})".format(*c.colour)) for c in curves]
    room = sum(len(e) for e, _ in entries)
    if len(title) + room > width:
        title = title.split(" ")[0]
    text = Text(title, style="bold", no_wrap=True, overflow="crop")
    for entry, style in entries:
        if text.cell_len + len(entry) > width:
            break
        text.append(entry, style=style)
    return text


def chart_text(chart: Chart, width: int, height: int) -> Text:
    """Legend on one line, the plot with its y ticks, then the step axis: ``width`` x ``height`` cells."""
    head = legend(chart.title, chart.curves, width)
    rows = height - 2
    axis = y_axis(chart.curves, chart.log, chart.ylim, rows) if rows >= 2 else None
    xs = [c.steps[np.isfinite(c.values)] for c in chart.curves]
    xs = [x for x in xs if len(x)]
    if axis is None or width < 16 or not xs or sum(len(x) for x in xs) < 2:
        return Text.assemble(head, "\n", ("waiting for two measurements…", "dim"))
    x0, x1 = chart.xlim or (float(min(x.min() for x in xs)), float(max(x.max() for x in xs)))
    x1 = max(x1, x0 + 1)
    gutter = max(len(s) for s in axis.labels) + 1
    cols = width - gutter
    plot = _plot_cells(chart.curves, axis, x0, x1, cols, rows)
    lines = [head]
    tick_rows = _tick_rows(axis, rows)
    for r, row in enumerate(plot):
        label = tick_rows.get(r)
        line = Text((label or "").rjust(gutter - 1) + ("┤" if label else "│"), style="dim")
        lines.append(line.append_text(row))
    lines.append(_x_axis(x0, x1, cols, gutter, chart.xlabel))
    out = Text(no_wrap=True, overflow="crop")
    for i, line in enumerate(lines):
        out.append_text(line if i == 0 else Text("\n").append_text(line))
    return out


def _tick_rows(axis: Axis, rows: int) -> dict[int, str]:
    """Row (0 at the top) of each tick label: the row whose cell holds the tick value's dot."""
    dots = axis.dot(np.asarray(axis.ticks, dtype=np.float64), rows * 4)
    out: dict[int, str] = {}
    for d, label in zip(dots, axis.labels):
        row = rows - 1 - int(math.floor(d + 0.5)) // 4
        if 0 <= row < rows and not any(abs(row - r) < 2 for r in out):
            out[row] = label
    return out


def _plot_cells(curves: list[Curve], axis: Axis, x0: float, x1: float, cols: int, rows: int) -> list[Text]:
    """One Text per plot row: every curve's dots merged, each cell in its top curve's colour."""
    bits = np.zeros((rows, cols), dtype=np.uint8)
    owner = np.full((rows, cols), -1, dtype=np.int64)
    for k, c in enumerate(curves):
        values = c.values
        if axis.log:
            values = np.where(values > 0, values, np.nan)
        dots = np.zeros((rows * 4, cols * 2), dtype=bool)
        for x, y in _runs(c.steps.astype(np.float64), values.astype(np.float64)):
            px = (x - x0) / (x1 - x0) * (cols * 2 - 1)
            dots |= line_dots(px, axis.dot(y, rows * 4), cols * 2, rows * 4)
        dash = dash_mask(c.dash, cols * 2)
        if dash is not None:
            dots &= dash[None, :]
        b = cell_bits(dots)
        bits |= b
        owner[b > 0] = k
    styles = [Style(color="rgb({},{},{})".format(*c.colour)) for c in curves]
    lines = []
    for r in range(rows):
        text = Text(no_wrap=True, overflow="crop")
        chars = "".join(chr(BRAILLE + int(v)) if v else " " for v in bits[r])
        start = 0
        for c in range(1, cols + 1):
            if c == cols or owner[r, c] != owner[r, start]:
                k = owner[r, start]
                text.append(chars[start:c], styles[k] if k >= 0 else None)
                start = c
        lines.append(text)
    return lines


def _x_axis(x0: float, x1: float, cols: int, gutter: int, name: str) -> Text:
    """Step labels centred on the columns of their steps, then the axis name at the right."""
    count = max(2, cols // 8)
    ticks = [t for t in step_ticks(x0, x1, count) if x0 <= t <= x1]
    line = [" "] * (gutter + cols)
    tail = f" {name}"
    limit = gutter + cols - len(tail)
    used_to = -1
    for t in ticks:
        col = gutter + int(math.floor((t - x0) / (x1 - x0) * (cols * 2 - 1) + 0.5)) // 2
        label = step_label(t)
        start = max(col - (len(label) - 1) // 2, gutter - 1)
        if start <= used_to + 1 or start + len(label) > limit:
            continue
        line[start:start + len(label)] = label
        used_to = start + len(label)
    line[limit:] = tail
    return Text("".join(line), style="dim", no_wrap=True, overflow="crop")
