"""Pictures of a run: array-to-image heatmaps and the CLI's two PNGs, drawn straight to pixels.

``heatmap_rgb`` turns a matrix into an RGB array with a diverging colour map scaled to
its own max-abs (no figure, cheap enough for every UI tick). ``write_figures`` draws
``nfa.png`` and ``heatmaps.png`` for a run folder with PIL (``core.raster``): no
matplotlib on a run's path (its import alone took 0.6 s, more than both figures now).
``save_figure`` saves the matplotlib figures other commands draw (compare, sweep, reproduce).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from core import raster
from core.history import History
from core.iofiles import atomic_path

DIVERGING = "RdBu_r"
MAX_CELLS = 128


def downsample(m: np.ndarray, max_cells: int = MAX_CELLS) -> np.ndarray:
    """Block-averages a matrix so neither side exceeds ``max_cells`` (true size is the caller's label)."""
    m = np.asarray(m, dtype=np.float64)
    rows, cols = m.shape
    fr, fc = -(-rows // max_cells), -(-cols // max_cells)
    if fr == 1 and fc == 1:
        return m
    pr, pc = (-rows) % fr, (-cols) % fc
    padded = np.pad(m, ((0, pr), (0, pc)), constant_values=np.nan)
    blocks = padded.reshape(padded.shape[0] // fr, fr, padded.shape[1] // fc, fc)
    return np.nanmean(blocks, axis=(1, 3))


PALETTE_SIZE = 256
"""Colours in a heatmap's palette: matplotlib's own lookup-table size for the colour map."""
_RDBU = ((103, 0, 31), (178, 24, 43), (214, 96, 77), (244, 165, 130), (253, 219, 199), (247, 247, 247),
         (209, 229, 240), (146, 197, 222), (67, 147, 195), (33, 102, 172), (5, 48, 97))
"""ColorBrewer's 11-class RdBu, red to blue: the stops of matplotlib's ``RdBu``."""


@functools.cache
def heatmap_palette(cmap: str = DIVERGING) -> np.ndarray:
    """(256, 3) uint8: the colour map's lookup table, index 0 at -max and 255 at +max.

    ``RdBu_r`` is built here the way matplotlib builds it (linear segments between the
    reversed stops, then x 255 rounded down; a test checks every entry equals matplotlib's),
    so drawing a heatmap does not import matplotlib. Other maps come from matplotlib.
    """
    if cmap == DIVERGING:
        y = np.array(_RDBU, dtype=np.float64)[::-1] / 255
        x = (1.0 - np.linspace(0, 1, len(_RDBU))[::-1]) * (PALETTE_SIZE - 1)
        at = (PALETTE_SIZE - 1) * np.linspace(0, 1, PALETTE_SIZE)
        ind = np.searchsorted(x, at)[1:-1]
        frac = (at[1:-1] - x[ind - 1]) / (x[ind] - x[ind - 1])
        lut = np.concatenate([y[:1], frac[:, None] * (y[ind] - y[ind - 1]) + y[ind - 1], y[-1:]])
        palette = (np.clip(lut, 0, 1) * 255).astype(np.uint8)
    else:
        from matplotlib import colormaps

        palette = colormaps[cmap].resampled(PALETTE_SIZE)(np.arange(PALETTE_SIZE), bytes=True)[:, :3]
    palette.flags.writeable = False
    return palette


def heatmap_index(m: np.ndarray, max_cells: int = MAX_CELLS) -> np.ndarray:
    """uint8 palette index (rows, cols) of ``m``, colour scale symmetric at its max-abs; NaN takes the middle.

    The same bins matplotlib's colour maps use on floats in [0, 1] (x * 256, rounded down, 1.0 in
    the top bin), so ``heatmap_palette()[heatmap_index(m)]`` is ``heatmap_rgb(m)``: the web page
    sends these indices and draws them with the palette.
    """
    small = downsample(m, max_cells)
    scale = np.nanmax(np.abs(small)) if small.size else 0.0
    norm = small / scale if scale > 0 and np.isfinite(scale) else np.zeros_like(small)
    unit = (np.nan_to_num(norm) + 1) / 2
    return np.clip(unit * PALETTE_SIZE, 0, PALETTE_SIZE - 1).astype(np.uint8)


def heatmap_rgb(m: np.ndarray, max_cells: int = MAX_CELLS, cmap: str = DIVERGING) -> np.ndarray:
    """uint8 RGB image (rows, cols, 3) of ``m``, colour scale symmetric at its max-abs."""
    return heatmap_palette(cmap)[heatmap_index(m, max_cells)]


TILE_PX = 256
"""Largest side of a heatmap tile in heatmaps.png (a matrix drawn at most 128 cells a side, each cell a block of pixels)."""
_TITLE_PX, _STRIP_PX, _GAP_PX, _MARGIN_PX, _HEAD_PX = 30, 12, 70, 16, 34


def heatmap_tile(m: np.ndarray, px: int = TILE_PX) -> tuple[np.ndarray, float, tuple[int, int]]:
    """(uint8 RGB tile, colour scale, shown cells): ``heatmap_rgb`` enlarged by whole pixels per cell."""
    small = downsample(m)
    scale = float(np.nanmax(np.abs(small))) if small.size else 0.0
    factor = max(1, px // max(small.shape))
    rgb = heatmap_rgb(small, max_cells=max(small.shape))
    return np.repeat(np.repeat(rgb, factor, axis=0), factor, axis=1), scale, small.shape


def _colour_strip(height: int) -> np.ndarray:
    """The colour map from +1 (top) to -1 (bottom), ``_STRIP_PX`` wide."""
    values = np.linspace(1.0, -1.0, height)[:, None].repeat(_STRIP_PX, axis=1)
    return heatmap_rgb(values, max_cells=max(values.shape))


def heatmaps_figure(snap, centered: bool = False) -> Image.Image:
    """NFM and AGOP side by side for every layer (rows), plus G* beside layer 1 when known.

    One image of tiles (``heatmap_tile``: each tile's colours are ``heatmap_rgb`` of the
    matrix, symmetric at its own max-abs, with a colour strip labelled by that scale) and text.
    """
    prefix = "centered " if centered else ""
    rows = []
    for s in snap.layers:
        nfm, agop = (s.centered_nfm, s.centered_agop) if centered else (s.nfm, s.agop)
        corr = s.c_nfa if centered else s.uc_nfa
        row = [(nfm, f"layer {s.layer} {prefix}NFM"), (agop, f"{prefix}AGOP (rho={_fmt(corr)})")]
        if snap.g_star is not None and s.layer == 1:
            row.append((snap.g_star, f"ground truth G* (quality={_fmt(s.feature_quality)})"))
        rows.append([(m, title, *heatmap_tile(m)) for m, title in row])
    cols = max(len(r) for r in rows)
    cell_w = TILE_PX + _STRIP_PX + _GAP_PX
    width = 2 * _MARGIN_PX + cols * cell_w
    height = _HEAD_PX + sum(_TITLE_PX + max(t[2].shape[0] for t in r) + _MARGIN_PX for r in rows)
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    labels = []
    y = _HEAD_PX
    for row in rows:
        tile_h = max(t[2].shape[0] for t in row)
        for i, (m, title, rgb, scale, shown) in enumerate(row):
            x = _MARGIN_PX + i * cell_w
            top = y + _TITLE_PX
            canvas[top:top + rgb.shape[0], x:x + rgb.shape[1]] = rgb
            sx = x + rgb.shape[1] + 4
            canvas[top:top + rgb.shape[0], sx:sx + _STRIP_PX] = _colour_strip(rgb.shape[0])
            size = f"{m.shape[0]}x{m.shape[1]}" + (f", shown {shown[0]}x{shown[1]}" if tuple(shown) != m.shape else "")
            labels.append(("block", (x, y + _TITLE_PX - 4), f"{title}\n[{size}]"))
            for frac, label in ((0.0, f"+{scale:.2g}"), (0.5, "0"), (1.0, f"-{scale:.2g}")):
                labels.append(("lm", (sx + _STRIP_PX + 3, top + frac * (rgb.shape[0] - 1)), label))
        y += _TITLE_PX + tile_h + _MARGIN_PX
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    raster.text(draw, (width / 2, 8), f"step {snap.measured_step}: W^T W vs W^T K W ({snap.config.measure.correlation})",
                17, anchor="ma")
    for anchor, xy, label in labels:
        if anchor == "block":
            raster.lines_above(draw, *xy, label, 12)
        else:
            raster.text(draw, xy, label, 11, anchor=anchor)
    return image


# -- nfa.png -----------------------------------------------------------------------------

_SS = 2
"""nfa.png is drawn at twice its size and scaled down: smooth lines and text."""
_PANEL_W, _PANEL_H = 374, 330
_LEFT, _RIGHT, _BOTTOM, _TOP, _TOP_TITLED, _PANEL_GAP = 66, 16, 55, 38, 82, 10
Y_RANGE = (-0.05, 1.02)
"""The correlation axis; it extends below 0 when a value does (Pearson can be negative)."""
Y_TICK_STEP = 0.25
SERIES = (("uc_nfa", "UC-NFA", raster.BLUE, None), ("c_nfa", "C-NFA", raster.ORANGE, (8.5, 3.7)))
"""(history column, legend label, colour, dash (on, off) px or solid)."""


@dataclass(frozen=True)
class Axes:
    """One panel of nfa.png: its plot box in pixels of the saved image, and the data range it shows."""

    left: float
    top: float
    right: float
    bottom: float
    x_range: tuple[float, float]
    y_range: tuple[float, float] = Y_RANGE

    def to_px(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """(n, 2) pixel positions of data points (NaN stays NaN)."""
        (x0, x1), (y0, y1) = self.x_range, self.y_range
        px = self.left + (np.asarray(x, float) - x0) / (x1 - x0) * (self.right - self.left)
        py = self.bottom - (np.asarray(y, float) - y0) / (y1 - y0) * (self.bottom - self.top)
        return np.stack([px, py], axis=1)


def nfa_axes(history: History, title: str = "") -> tuple[tuple[int, int], list[Axes]]:
    """nfa.png's (width, height) and one ``Axes`` per layer, in the order of ``history.layers()``."""
    layers = history.layers() or [1]
    width, height = _PANEL_W * len(layers), _PANEL_H
    top = _TOP_TITLED if title else _TOP
    plot_w = (width - _LEFT - _RIGHT - _PANEL_GAP * (len(layers) - 1)) / len(layers)
    steps = history.column("step")
    lo, hi = (float(steps.min()), float(steps.max())) if len(steps) else (0.0, 1.0)
    pad = (hi - lo) * 0.05 if hi > lo else 1.0
    y_range = (min(Y_RANGE[0], _lowest(history) - 0.05), Y_RANGE[1])
    return (width, height), [Axes(_LEFT + i * (plot_w + _PANEL_GAP), top, _LEFT + i * (plot_w + _PANEL_GAP) + plot_w,
                                  height - _BOTTOM, (lo - pad, hi + pad), y_range) for i in range(len(layers))]


def _lowest(history: History) -> float:
    """The smallest finite value of the plotted series (0 when there is none)."""
    values = np.concatenate([history.column(key) for key, _, _, _ in SERIES])
    values = values[np.isfinite(values)]
    return float(values.min()) if values.size else 0.0


def nfa_figure(history: History, title: str = "") -> Image.Image:
    """UC-NFA (solid) and C-NFA (dashed) against step, one panel per layer, on one y scale."""
    layers = history.layers() or [1]
    (width, height), axes = nfa_axes(history, title)
    image = Image.new("RGB", (width * _SS, height * _SS), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    k = _SS
    for i, (ax, layer) in enumerate(zip(axes, layers)):
        box = [ax.left * k, ax.top * k, ax.right * k, ax.bottom * k]
        ticks = raster.integer_ticks(max(ax.x_range[0], 0), ax.x_range[1], most=4)
        for t in ticks:
            (x, _), = ax.to_px([t], [0]) * k
            draw.line([(x, box[1]), (x, box[3])], fill=raster.GRID, width=k)
            draw.line([(x, box[3]), (x, box[3] + 4 * k)], fill=raster.INK, width=k)
            raster.text(draw, (x, box[3] + 6 * k), f"{t:,}", 13 * k, anchor="ma")
        for v in (j * Y_TICK_STEP for j in range(math.ceil(ax.y_range[0] / Y_TICK_STEP), round(1 / Y_TICK_STEP) + 1)):
            (_, y), = ax.to_px([ax.x_range[0]], [v]) * k
            draw.line([(box[0], y), (box[2], y)], fill=raster.GRID, width=k)
            if i == 0:
                draw.line([(box[0] - 4 * k, y), (box[0], y)], fill=raster.INK, width=k)
                raster.text(draw, (box[0] - 6 * k, y), f"{v:.2f}", 13 * k, anchor="rm")
        for key, _, colour, dash in SERIES:
            steps, values = history.series(key, layer)
            pts = ax.to_px(steps, values) * k
            raster.polyline(draw, pts, colour, width=round(2.3 * k),
                            dash=None if dash is None else (dash[0] * k, dash[1] * k))
        draw.rectangle(box, outline=raster.INK, width=k)
        raster.text(draw, ((box[0] + box[2]) / 2, box[1] - 6 * k), f"layer {layer}", 15 * k, anchor="md")
        raster.text(draw, ((box[0] + box[2]) / 2, box[3] + 26 * k), "step", 15 * k, anchor="ma")
    _legend(draw, axes[0], k)
    raster.vertical_text(image, (14 * k, (axes[0].top + axes[0].bottom) / 2 * k), "correlation", 15 * k)
    if title:
        raster.text(draw, (width * k / 2, 10 * k), title, 17 * k, anchor="ma")
    return image.resize((width, height), Image.Resampling.LANCZOS)


def _legend(draw: ImageDraw.ImageDraw, ax: Axes, k: int) -> None:
    """The series' names with their line styles, in the first panel's lower right corner."""
    row, sample, pad = 18 * k, 26 * k, 6 * k
    width = sample + 3 * pad + max(raster.font(12 * k).getlength(label) for _, label, _, _ in SERIES)
    right, bottom = ax.right * k - pad, ax.bottom * k - pad
    left, top = right - width, bottom - len(SERIES) * row - pad
    draw.rounded_rectangle([left, top, right, bottom], radius=3 * k, fill=(255, 255, 255), outline=(204, 204, 204),
                           width=k)
    for j, (_, label, colour, dash) in enumerate(SERIES):
        y = top + pad + row * j + row / 2
        pts = np.array([[left + pad, y], [left + pad + sample, y]])
        raster.polyline(draw, pts, colour, width=round(2.3 * k), dash=None if dash is None else (dash[0] * k, dash[1] * k))
        raster.text(draw, (left + 2 * pad + sample, y), label, 12 * k, anchor="lm")


def save_image(image: Image.Image, path: Path) -> None:
    """Saves a picture atomically as PNG (fast compression)."""
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", compress_level=1)


def pyplot():
    """matplotlib's pyplot on the Agg backend, imported on first use (only the commands that draw with it pay)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> None:
    """Saves a matplotlib figure atomically as PNG and closes it."""
    plt = pyplot()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png", pil_kwargs={"compress_level": 1})
    plt.close(fig)


def write_figures(snap, folder: Path) -> None:
    """nfa.png and heatmaps.png for a run folder."""
    save_image(nfa_figure(snap.history, f"NFA during training ({snap.optimizer})"), folder / "nfa.png")
    save_image(heatmaps_figure(snap), folder / "heatmaps.png")


def _fmt(v) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.3f}"
