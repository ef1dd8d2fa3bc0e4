"""Drawing straight to pixels with PIL: text, polylines (solid or dashed) and tick positions.

What ``core.plots`` needs to write a run's PNGs without matplotlib, whose import alone
(0.6 s) took longer than drawing both figures. Text is DejaVu Sans, the font matplotlib
ships (found on disk without importing it; PIL's own default font otherwise).
"""

from __future__ import annotations

import functools
import importlib.util
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

INK = (38, 38, 38)
GRID = (226, 226, 226)
BLUE, ORANGE = (31, 119, 180), (255, 127, 14)
"""matplotlib's first two cycle colours, which the CLI's figures always used."""


@functools.cache
def _font_path() -> str | None:
    spec = importlib.util.find_spec("matplotlib")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
        if path.is_file():
            return str(path)
    return None


@functools.cache
def font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans at ``px`` pixels (PIL's default font where matplotlib's copy is missing)."""
    path = _font_path()
    try:
        return ImageFont.truetype(path, px) if path else ImageFont.load_default(px)
    except OSError:
        return ImageFont.load_default(px)


def text(draw: ImageDraw.ImageDraw, xy: tuple[float, float], s: str, px: int, anchor: str = "la",
         fill=INK) -> None:
    """One line of text; ``anchor`` as PIL's (``l/m/r`` then ``a/m/s/d``: top, middle, baseline, bottom)."""
    draw.text(xy, s, font=font(px), fill=fill, anchor=anchor)


def lines_above(draw: ImageDraw.ImageDraw, x: float, bottom: float, s: str, px: int, fill=INK) -> None:
    """Lines of text, left-aligned at ``x``, the last one's bottom at ``bottom``."""
    rows = s.split("\n")
    step = round(px * 1.25)
    for i, row in enumerate(rows):
        text(draw, (x, bottom - (len(rows) - 1 - i) * step), row, px, anchor="ld", fill=fill)


def vertical_text(image: Image.Image, center: tuple[float, float], s: str, px: int, fill=INK) -> None:
    """Text read bottom to top (a y-axis label), centred at ``center``."""
    f = font(px)
    left, top, right, bottom = f.getbbox(s)
    strip = Image.new("RGBA", (right - left + 2, bottom - top + 2), (255, 255, 255, 0))
    ImageDraw.Draw(strip).text((1 - left, 1 - top), s, font=f, fill=fill)
    strip = strip.rotate(90, expand=True)
    image.paste(strip, (round(center[0] - strip.width / 2), round(center[1] - strip.height / 2)), strip)


def polyline(draw: ImageDraw.ImageDraw, points: np.ndarray, fill, width: int, dash: tuple[float, float] | None = None
             ) -> None:
    """A line through ``points`` (n, 2); NaN rows break it; a lone point is drawn as a dot.

    ``dash`` = (on, off) lengths in pixels, continued across vertices.
    """
    finite = np.isfinite(points).all(axis=1)
    breaks = np.flatnonzero(np.diff(np.r_[0, finite.astype(np.int8), 0]))
    for start, stop in zip(breaks[::2], breaks[1::2]):
        run = points[start:stop]
        if len(run) == 1:
            x, y = run[0]
            r = width
            draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)
        elif dash is None:
            draw.line([tuple(p) for p in run], fill=fill, width=width, joint="curve")
        else:
            for a, b in _dashes(run, *dash):
                draw.line([a, b], fill=fill, width=width)


def _dashes(run: np.ndarray, on: float, off: float):
    """The drawn pieces of a dashed polyline, as ((x0, y0), (x1, y1)) pairs; the pattern runs on across vertices."""
    drawing, left = True, on
    for p, q in zip(run[:-1], run[1:]):
        length = float(np.hypot(*(q - p)))
        t = 0.0
        while length - t > 1e-9:
            end = min(length, t + left)
            if drawing:
                yield tuple(p + (q - p) * (t / length)), tuple(p + (q - p) * (end / length))
            left -= end - t
            t = end
            if left <= 1e-9:
                drawing = not drawing
                left = on if drawing else off


def integer_ticks(lo: float, hi: float, most: int = 5) -> list[int]:
    """At most ``most`` round integer ticks within [lo, hi] (steps of 1, 2, 2.5 or 5 times a power of ten)."""
    span = max(hi - lo, 1.0)
    for power in range(0, 20):
        for mult in (1, 2, 2.5, 5):
            step = mult * 10 ** power
            if step != int(step):
                continue
            first = math.ceil(lo / step) * step
            ticks = [int(first + i * step) for i in range(int((hi - first) // step) + 1)]
            if len(ticks) <= most and (ticks or step > span):
                return ticks
    return [int(lo)]
