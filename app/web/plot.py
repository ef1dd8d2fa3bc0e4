"""Cheap line charts straight to pixels (PIL), light enough to redraw on every tick.

A matplotlib figure costs tens of milliseconds; these charts cost a few. They are drawn
at twice the size and shrunk, which smooths the lines. Linear or log y axis, NaN gaps,
dashed series, a legend, and a highlighted (thicker) series.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

SUPERSAMPLE = 2
INK = (60, 64, 72)
GRID = (228, 231, 236)
FRAME = (190, 195, 204)


@dataclass(frozen=True)
class Series:
    """One line: x and y (same length; NaN breaks the line), colour, width in px, dash, legend label."""

    x: np.ndarray
    y: np.ndarray
    color: tuple[int, int, int]
    width: float = 1.5
    dash: bool = False
    label: str = ""


@functools.cache
def font(size: int) -> ImageFont.ImageFont:
    """DejaVu Sans (shipped with matplotlib: Greek and math glyphs) at ``size`` px; cached, fonts are immutable."""
    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    try:
        return ImageFont.truetype(str(path), size)
    except OSError:
        return ImageFont.load_default(size=size)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(count - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    value = first
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks


def log_ticks(lo: float, hi: float) -> list[float]:
    """Powers of ten (and 2x, 5x when the range spans under two decades) inside [lo, hi] (log10 units)."""
    decades = range(math.floor(lo), math.ceil(hi) + 1)
    inside: list[float] = []
    for mults in ((1,), (1, 2, 5), (1, 1.5, 2, 3, 5, 7)):
        ticks = [e + math.log10(m) for e in decades for m in mults]
        inside = [t for t in ticks if lo - 1e-9 <= t <= hi + 1e-9]
        if len(inside) >= 3:
            break
    return inside or [lo]


def _fmt_tick(value: float, log: bool) -> str:
    if log:
        v = 10 ** value
        return f"{v:.0e}".replace("e-0", "e-").replace("e+0", "e") if (v < 1e-2 or v >= 1e3) else f"{v:g}"
    if value == 0:
        return "0"
    if abs(value) >= 1e4 or abs(value) < 1e-3:
        return f"{value:.0e}"
    return f"{value:.3g}"


@dataclass(frozen=True)
class _Frame:
    left: float
    top: float
    right: float
    bottom: float
    x0: float
    x1: float
    y0: float
    y1: float

    def px(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sx = (self.right - self.left) / ((self.x1 - self.x0) or 1.0)
        sy = (self.bottom - self.top) / ((self.y1 - self.y0) or 1.0)
        return self.left + (x - self.x0) * sx, self.bottom - (y - self.y0) * sy


def _data_range(series: list[Series], log: bool, y_range, x_range=None,
                y_floor: float | None = None) -> tuple[float, float, float, float]:
    xs = [s.x for s in series if len(s.x)]
    ys = [_ty(s.y, log) for s in series if len(s.y)]
    xall = np.concatenate(xs) if xs else np.array([0.0])
    yall = np.concatenate(ys) if ys else np.array([])
    yall = yall[np.isfinite(yall)]
    x0, x1 = float(np.min(xall)), float(np.max(xall))
    if x_range is not None:
        x0, x1 = min(x0, x_range[0]), max(x1, x_range[1])
    if x1 <= x0:
        x1 = x0 + 1
    if y_range is not None:
        y0, y1 = y_range
    elif yall.size:
        y0, y1 = float(yall.min()), float(yall.max())
        pad = (y1 - y0) * 0.06 or (abs(y0) * 0.1 or 0.5)
        y0, y1 = y0 - pad, y1 + pad
        if y_floor is not None:
            y0 = max(y0, y_floor)
            y1 = max(y1, y0 + 1e-3)
    else:
        y0, y1 = 0.0, 1.0
    return x0, x1, y0, y1


def _ty(y: np.ndarray, log: bool) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    if not log:
        return y
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(y > 0, np.log10(np.where(y > 0, y, 1.0)), np.nan)


def line_chart(series: list[Series], title: str = "", size: tuple[int, int] = (440, 230),
               log_y: bool = False, y_range: tuple[float, float] | None = None,
               x_label: str = "", note: str = "", x_range: tuple[float, float] | None = None,
               y_floor: float | None = None) -> Image.Image:
    """An RGB image of the series.

    ``x_range`` is the least x extent shown (the data may extend it); ``y_floor`` the lowest
    y when the range is automatic; ``note`` is drawn greyed in the middle when there is no data.
    """
    s = SUPERSAMPLE
    w, h = size[0] * s, size[1] * s
    img = Image.new("RGB", (w, h), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    x0, x1, y0, y1 = _data_range(series, log_y, y_range, x_range, y_floor)
    yticks = log_ticks(y0, y1) if log_y else nice_ticks(y0, y1, 5)
    labels = [_fmt_tick(t, log_y) for t in yticks]
    left = max(draw.textlength(t, font=font(10 * s)) for t in labels) + 10 * s
    frame = _Frame(left, 24 * s, w - 10 * s, h - 24 * s, x0, x1, y0, y1)
    _draw_axes(draw, frame, yticks, labels, nice_ticks(x0, x1, 6), log_y, x_label)
    for ser in series:
        _draw_series(draw, frame, ser, log_y)
    _draw_header(draw, frame, title, [ser for ser in series if ser.label], w)
    if note and not any(np.isfinite(_ty(ser.y, log_y)).any() for ser in series):
        tw = draw.textlength(note, font=font(11 * s))
        draw.text(((frame.left + frame.right - tw) / 2, (frame.top + frame.bottom) / 2 - 6 * s), note,
                  fill=(150, 150, 150), font=font(11 * s))
    return img.reduce(SUPERSAMPLE)


def _draw_axes(draw, f: _Frame, yticks, ylabels, xticks, log_y: bool, x_label: str) -> None:
    s = SUPERSAMPLE
    small = font(10 * s)
    for t, label in zip(yticks, ylabels):
        _, py = f.px(np.array([f.x0]), np.array([t]))
        draw.line([(f.left, py[0]), (f.right, py[0])], fill=GRID, width=s)
        tw = draw.textlength(label, font=small)
        draw.text((f.left - tw - 5 * s, py[0] - 6 * s), label, fill=INK, font=small)
    for t in xticks:
        px, _ = f.px(np.array([t]), np.array([f.y0]))
        draw.line([(px[0], f.top), (px[0], f.bottom)], fill=GRID, width=s)
        label = f"{t:g}" if abs(t) < 1e6 else f"{t:.1e}"
        tw = draw.textlength(label, font=small)
        left = min(px[0] - tw / 2, draw.im.size[0] - tw - 2 * s)
        draw.text((left, f.bottom + 4 * s), label, fill=INK, font=small)
    draw.rectangle([f.left, f.top, f.right, f.bottom], outline=FRAME, width=s)
    if x_label:
        tw = draw.textlength(x_label, font=small)
        draw.text((f.right - tw, f.bottom + 4 * s), x_label, fill=(140, 140, 140), font=small)


def _draw_header(draw, f: _Frame, title: str, labelled: list[Series], w: int) -> None:
    s = SUPERSAMPLE
    draw.text((f.left, 5 * s), title, fill=INK, font=font(12 * s))
    x = w - 10 * s
    for ser in reversed(labelled):
        tw = draw.textlength(ser.label, font=font(10 * s))
        x -= tw
        draw.text((x, 7 * s), ser.label, fill=INK, font=font(10 * s))
        x -= 20 * s
        y = 13 * s
        _dashed(draw, [(x, y), (x + 16 * s, y)], ser.color, max(1, round(ser.width * s)), ser.dash)
        x -= 10 * s
        if x < f.left + draw.textlength(title, font=font(12 * s)) + 10 * s:
            break


def _draw_series(draw, f: _Frame, ser: Series, log_y: bool) -> None:
    x = np.asarray(ser.x, dtype=np.float64)
    y = _ty(ser.y, log_y)
    ok = np.isfinite(x) & np.isfinite(y)
    if not ok.any():
        return
    px, py = f.px(x, np.clip(y, f.y0 - (f.y1 - f.y0), f.y1 + (f.y1 - f.y0)))
    width = max(1, round(ser.width * SUPERSAMPLE))
    for run in _runs(ok):
        pts = list(zip(px[run].tolist(), py[run].tolist()))
        if len(pts) == 1:
            r = width
            draw.ellipse([pts[0][0] - r, pts[0][1] - r, pts[0][0] + r, pts[0][1] + r], fill=ser.color)
        else:
            _dashed(draw, pts, ser.color, width, ser.dash)


def _runs(ok: np.ndarray) -> list[slice]:
    """Slices of consecutive True entries."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], ok.astype(np.int8), [0]])))
    return [slice(a, b) for a, b in zip(edges[::2], edges[1::2])]


def _dashed(draw, pts: list[tuple[float, float]], color, width: int, dash: bool) -> None:
    if not dash:
        draw.line(pts, fill=color, width=width, joint="curve")
        return
    on, off = 7 * SUPERSAMPLE, 5 * SUPERSAMPLE
    phase = 0.0
    for (ax, ay), (bx, by) in zip(pts, pts[1:]):
        length = math.hypot(bx - ax, by - ay)
        pos = 0.0
        while pos < length:
            in_cycle = (phase + pos) % (on + off)
            span = (on - in_cycle) if in_cycle < on else (on + off - in_cycle)
            end = min(length, pos + span)
            if in_cycle < on and length > 0:
                t0, t1 = pos / length, end / length
                draw.line([(ax + (bx - ax) * t0, ay + (by - ay) * t0),
                           (ax + (bx - ax) * t1, ay + (by - ay) * t1)], fill=color, width=width)
            pos = end + 1e-9
        phase = (phase + length) % (on + off)
