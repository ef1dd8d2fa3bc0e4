"""Pictures of a run: fast array-to-image heatmaps and the CLI's matplotlib figures.

``heatmap_rgb`` turns a matrix into an RGB array with a diverging colour map scaled to
its own max-abs (no figure, cheap enough for every UI tick). ``write_figures`` draws
``nfa.png`` and ``heatmaps.png`` for a run folder. Uses matplotlib's Agg backend only.
"""

from __future__ import annotations

import functools
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import colormaps  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from core.history import History  # noqa: E402
from core.iofiles import atomic_path  # noqa: E402

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


@functools.cache
def heatmap_palette(cmap: str = DIVERGING) -> np.ndarray:
    """(256, 3) uint8: the colour map's lookup table, index 0 at -max and 255 at +max."""
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
_DPI = 110
"""save_figure's dpi: heatmaps_figure places pixels, so its figure uses the same."""
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
    return colormaps[DIVERGING]((values + 1) / 2, bytes=True)[..., :3]


def heatmaps_figure(snap, centered: bool = False):
    """NFM and AGOP side by side for every layer (rows), plus G* beside layer 1 when known.

    Drawn as one image of tiles (``heatmap_tile``: each tile's colours are ``heatmap_rgb`` of
    the matrix, symmetric at its own max-abs, with a colour strip labelled by that scale) and
    text, without axes: about 30x cheaper than a matplotlib panel with a colour bar each.
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
    fig = plt.figure(figsize=(width / _DPI, height / _DPI), dpi=_DPI)
    fig.text(0.5, 1 - 10 / height, f"step {snap.measured_step}: W^T W vs W^T K W ({snap.config.measure.correlation})",
             ha="center", va="top", fontsize=11)
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
            _text(fig, x, y + _TITLE_PX - 6, height, width, f"{title}\n[{size}]", fontsize=8, va="bottom")
            for frac, label in ((0.0, f"+{scale:.2g}"), (0.5, "0"), (1.0, f"-{scale:.2g}")):
                _text(fig, sx + _STRIP_PX + 3, top + frac * rgb.shape[0], height, width, label, fontsize=7,
                      va="center")
        y += _TITLE_PX + tile_h + _MARGIN_PX
    fig.figimage(canvas, xo=0, yo=0, origin="upper")
    return fig


def _text(fig, x_px: float, y_px: float, height: int, width: int, text: str, **kw) -> None:
    """Text at pixel (x, y) from the top left."""
    fig.text(x_px / width, 1 - y_px / height, text, ha="left", **kw)


_Y_TICKS = (0.0, 0.25, 0.5, 0.75, 1.0)


def nfa_figure(history: History, title: str = ""):
    """UC-NFA and C-NFA against step, one panel per layer."""
    layers = history.layers() or [1]
    fig, axes = plt.subplots(1, len(layers), figsize=(3.4 * len(layers), 3.0), squeeze=False, sharey=True)
    _margins(fig, left=0.6, right=0.15, bottom=0.5, top=0.75 if title else 0.35, wspace=0.08)
    for ax, layer in zip(axes[0], layers):
        for key, label, style in (("uc_nfa", "UC-NFA", "-"), ("c_nfa", "C-NFA", "--")):
            steps, values = history.series(key, layer)
            ax.plot(steps, values, style, label=label)
        ax.set_title(f"layer {layer}", fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylim(-0.05, 1.02)
        ax.set_yticks(_Y_TICKS)
        ax.xaxis.set_major_locator(MaxNLocator(4, integer=True))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("correlation")
    axes[0][0].legend(fontsize=8, loc="lower right")
    if title:
        fig.suptitle(title, fontsize=11, y=1 - 0.08 / 3.0)
    return fig


def _margins(fig, left: float, right: float, bottom: float, top: float, wspace: float = 0.2,
             hspace: float = 0.2) -> None:
    """Fixed margins in inches (cheap, unlike tight_layout's text measuring, which cost most of a figure's time)."""
    w, h = fig.get_size_inches()
    fig.subplots_adjust(left=left / w, right=1 - right / w, bottom=bottom / h, top=1 - top / h,
                        wspace=wspace, hspace=hspace)


def save_figure(fig, path: Path) -> None:
    """Saves a figure atomically as PNG and closes it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png", pil_kwargs={"compress_level": 1})
    plt.close(fig)


def write_figures(snap, folder: Path) -> None:
    """nfa.png and heatmaps.png for a run folder."""
    save_figure(nfa_figure(snap.history, f"NFA during training ({snap.optimizer})"), folder / "nfa.png")
    save_figure(heatmaps_figure(snap), folder / "heatmaps.png")


def _fmt(v) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.3f}"
