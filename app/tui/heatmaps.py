"""Heatmaps in half-block cells: matrices in, rich Text out (pure, no Textual).

A matrix is area-averaged down to the room it has and coloured on a scale symmetric
about 0. The scale is the largest magnitude shown (``max``) or, with the robust scale
on, the 99th percentile of the magnitudes (``p99``: larger values saturate). When the
largest value is more than ``OUTLIER`` times the 99th percentile, the caption says
``outlier`` so a near-empty picture is not mistaken for an empty matrix.

Captions are made of whole tokens (correlation, scale, size): a token that does not fit
is dropped, never cut, so no number is ever shown truncated.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from rich.color import Color
from rich.style import Style
from rich.table import Table
from rich.text import Text

from app.tui.views import Panel
from core.plots import heatmap_rgb

UPPER_HALF = "▀"
OUTLIER = 3.0
"""max / p99 above this: the scale is set by a few entries (the caption says so)."""


def fit_pixels(width: int, height: int) -> int:
    """Largest square side (in half-block pixels) that fits ``width`` cells by ``height`` rows."""
    return max(0, min(width, 2 * height))


def area_weights(n: int, side: int) -> np.ndarray:
    """(side, n) weights averaging n cells into side bins by overlap (rows sum to 1)."""
    edges = np.linspace(0.0, n, side + 1)
    lo, hi = edges[:-1, None], edges[1:, None]
    cells = np.arange(n)[None, :]
    overlap = np.clip(np.minimum(hi, cells + 1) - np.maximum(lo, cells), 0.0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def fitted_shape(shape: tuple[int, int], side: int) -> tuple[int, int]:
    """The shape a matrix is drawn at: scaled down, aspect kept, so no side exceeds ``side``."""
    rows, cols = shape
    scale = min(1.0, side / max(rows, cols, 1))
    return (rows, cols) if scale == 1.0 else (max(1, round(rows * scale)), max(1, round(cols * scale)))


def fit_matrix(matrix: np.ndarray, side: int) -> np.ndarray:
    """``matrix`` shrunk by area averaging so neither side exceeds ``side`` (unchanged if it fits)."""
    m = np.asarray(matrix, dtype=np.float64)
    out_r, out_c = fitted_shape(m.shape, side)
    if (out_r, out_c) == m.shape:
        return m
    return area_weights(m.shape[0], out_r) @ m @ area_weights(m.shape[1], out_c).T


@lru_cache(maxsize=8192)
def _cell_style(top: tuple[int, int, int], bottom: tuple[int, int, int] | None) -> Style:
    bg = None if bottom is None else Color.from_rgb(*bottom)
    return Style(color=Color.from_rgb(*top), bgcolor=bg)


def heatmap_pixels(matrix: np.ndarray, side: int, scale: float | None = None) -> np.ndarray:
    """RGB pixels (rows, cols, 3): area-averaged down to ``side`` (or repeated up to it).

    ``scale`` clips the values to [-scale, scale] first (the robust scale); None: max-abs.
    """
    small = fit_matrix(matrix, max(side, 1))
    if scale is not None and scale > 0:
        small = np.clip(small, -scale, scale)  # the clipped peak is the scale heatmap_rgb divides by
    rgb = heatmap_rgb(small, max_cells=max(side, 1))
    factor = max(1, side // max(rgb.shape[0], rgb.shape[1]))
    if factor > 1:
        rgb = rgb.repeat(factor, axis=0).repeat(factor, axis=1)
    return rgb


def half_blocks(rgb: np.ndarray) -> Text:
    """Two pixel rows per text row: the upper half block in the top colour on the bottom colour."""
    text = Text(no_wrap=True, overflow="crop")
    rows = rgb.shape[0]
    for r in range(0, rows, 2):
        if r:
            text.append("\n")
        top = rgb[r]
        bottom = rgb[r + 1] if r + 1 < rows else None
        for c in range(rgb.shape[1]):
            b = None if bottom is None else tuple(int(v) for v in bottom[c])
            text.append(UPPER_HALF, _cell_style(tuple(int(v) for v in top[c]), b))
    return text


def size_label(matrix: np.ndarray, side: int) -> str:
    """``20x20``, or ``128x128→43x43`` when drawn smaller than it is."""
    rows, cols = matrix.shape
    shown = fitted_shape(matrix.shape, max(side, 1))
    label = f"{rows}x{cols}"
    return label if shown == (rows, cols) else f"{label}→{shown[0]}x{shown[1]}"


def scales(values: np.ndarray) -> tuple[float, float]:
    """(max-abs, 99th percentile of the magnitudes) of the finite values (0 when none)."""
    mags = np.abs(values[np.isfinite(values)])
    if not mags.size:
        return 0.0, 0.0
    return float(mags.max()), float(np.percentile(mags, 99))


def has_outlier(peak: float, p99: float) -> bool:
    """True when a few entries set a max-abs scale far above the rest."""
    return peak > OUTLIER * p99 if p99 > 0 else peak > 0


def colour_key(scale: float, width: int, label: str) -> Text:
    """A one-line colour bar, blue (-scale) to red (+scale), then ``label``."""
    bar = max(width - len(label) - 1, 0)
    text = Text(no_wrap=True, overflow="crop")
    if bar:
        rgb = heatmap_rgb(np.linspace(-1.0, 1.0, bar)[None, :], max_cells=bar)[0]
        for colour in rgb:
            text.append("█", Style(color=Color.from_rgb(*(int(v) for v in colour))))
    text.append(" " + label, style="dim")
    return text


def fit_tokens(tokens: list[tuple[str, str, int]], width: int, sep: str = "  ") -> Text:
    """Tokens (text, style, priority; lower is kept first) in their order, whole or not at all."""
    kept: set[int] = set()
    used = 0
    for i in sorted(range(len(tokens)), key=lambda i: tokens[i][2]):
        size = len(tokens[i][0]) + (len(sep) if kept else 0)
        if tokens[i][0] and used + size <= width:
            kept.add(i)
            used += size
    text = Text(no_wrap=True, overflow="crop")
    for i in sorted(kept):
        if text.plain:
            text.append(sep)
        text.append(tokens[i][0], style=tokens[i][1])
    return text


def title_text(title: str, width: int) -> Text:
    """The title, dropping whole words from the end when too wide (never cutting one)."""
    words = title.split(" ")
    while len(words) > 1 and len(" ".join(words)) > width:
        words.pop()
    line = " ".join(words)
    return Text(line if len(line) <= width else "", style="bold", no_wrap=True, overflow="crop")


def heatmap_text(matrix: np.ndarray | None, title: str, width: int, height: int,
                 note: str = "", robust: bool = False) -> Text:
    """Title, half-block heatmap, colour key and caption, fitted to ``width`` x ``height`` cells.

    Below 14 rows the colour bar gives way to a taller heatmap (the scale moves to the caption).
    """
    if matrix is None:
        return Text(f"{title}\n\n{note}", style="dim", justify="center")
    bar = height >= 14
    side = fit_pixels(width, height - (3 if bar else 2))
    small = fit_matrix(matrix, max(side, 1))
    peak, p99 = scales(small)
    scale = p99 if robust and p99 > 0 else peak
    scale_label = f"±{scale:.2g} {'p99' if robust and p99 > 0 else 'max'}"
    outlier = has_outlier(peak, p99)
    flag = ("clipped" if robust else "outlier") if outlier else ""
    lines: list[Text] = [title_text(title, width)]
    if side >= 2:
        rgb = heatmap_pixels(small, side, scale if robust else None)
        lines.append(half_blocks(rgb))
        if bar:
            lines.append(colour_key(scale, min(width, max(rgb.shape[1], 16)), scale_label))
    tokens = [(note, "", 0), ("" if bar else scale_label, "dim", 1), (flag, "bold yellow", 2),
              (size_label(matrix, side), "dim", 3)]
    lines.append(fit_tokens(tokens, width))
    out = Text(justify="center", no_wrap=True, overflow="crop")
    for i, line in enumerate(lines):
        out.append_text(line if i == 0 else Text("\n").append_text(line))
    return out


def heatmap_pair(pair: tuple[Panel, Panel], width: int, height: int, robust: bool = False) -> Table:
    """Two panels in a two-column grid, each fitted to half the width."""
    half = max((width - 1) // 2, 1)
    grid = Table.grid(expand=True, padding=(0, 1))
    grid.add_column(justify="center", ratio=1)
    grid.add_column(justify="center", ratio=1)
    grid.add_row(*(heatmap_text(p.matrix, p.title, half, height, p.note, robust) for p in pair))
    return grid
