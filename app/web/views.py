"""What the page shows, rendered from snapshots to HTML with inline images (no figure per tick).

Heatmaps go from arrays to PNG bytes through ``core.plots.heatmap_rgb``; curves through
``app.web.plot``. Both are embedded as data URIs, so a tick writes no file and the
browser swaps pictures without a request. Every user-supplied string is escaped.
"""

from __future__ import annotations

import base64
import functools
import html
import io
from dataclasses import dataclass

import numpy as np
from matplotlib import colormaps
from PIL import Image

from core.plots import DIVERGING, MAX_CELLS, heatmap_rgb

LAYER_COLORS = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14),
                (140, 86, 75), (227, 119, 194), (23, 190, 207), (188, 189, 34), (127, 127, 127))
TRAIN, TEST, QUALITY = (45, 45, 52), (230, 120, 0), (20, 20, 20)
BASELINE, SLO_RED = (130, 130, 140), (214, 39, 40)
SHARE_COLORS = ((127, 127, 127), (255, 127, 14), (31, 119, 180))
CHART_SIZE = (440, 220)


@dataclass(frozen=True)
class View:
    """What the viewer chose: the layer and whether heatmaps show the centered matrices."""

    layer: int = 1
    centered: bool = False


def layer_color(layer: int, faded: bool = False) -> tuple[int, int, int]:
    """The colour of a layer's curves; faded towards white for layers not selected."""
    c = LAYER_COLORS[(layer - 1) % len(LAYER_COLORS)]
    return tuple(int(v + (255 - v) * 0.55) for v in c) if faded else c


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def fmt(value: float | None, digits: int = 3) -> str:
    """A number for the page; n/a for None or NaN."""
    if value is None or not np.isfinite(value):
        return "n/a"
    return f"{value:.{digits}f}" if abs(value) >= 10 ** -digits else f"{value:.2e}"


def fmt_loss(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:.4g}"


# -- images ----------------------------------------------------------------------------

def png_bytes(image: Image.Image | np.ndarray, colors: int = 0) -> bytes:
    """Fast PNG (compression level 1); ``colors`` > 0 first reduces a chart to a small palette (5x smaller)."""
    img = image if isinstance(image, Image.Image) else Image.fromarray(image)
    if colors:
        img = img.quantize(colors, method=Image.Quantize.FASTOCTREE)
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def data_uri(image: Image.Image | np.ndarray, colors: int = 0) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(image, colors)).decode("ascii")


def matrix_power(m: np.ndarray, alpha: float) -> np.ndarray:
    """m^alpha of a symmetric matrix (negative eigenvalues clipped), as the correlations use."""
    if alpha == 1:
        return m
    vals, vecs = np.linalg.eigh((m + m.T) / 2)
    return (vecs * np.clip(vals, 0, None) ** alpha) @ vecs.T


@functools.cache
def colorbar_css() -> str:
    """The diverging map as a CSS gradient (left = -max, right = +max)."""
    cmap = colormaps[DIVERGING]
    stops = [cmap(i / 10) for i in range(11)]
    parts = [f"rgb({int(r * 255)},{int(g * 255)},{int(b * 255)}) {i * 10}%" for i, (r, g, b, _) in enumerate(stops)]
    return "linear-gradient(90deg, " + ", ".join(parts) + ")"


def size_label(m: np.ndarray) -> str:
    """True size, and the shown size when the picture is block-averaged."""
    rows, cols = m.shape
    shown_r, shown_c = -(-rows // -(-rows // MAX_CELLS)), -(-cols // -(-cols // MAX_CELLS))
    label = f"{rows}×{cols}"
    return label + (f" (shown {shown_r}×{shown_c})" if (shown_r, shown_c) != (rows, cols) else "")


def figure(m: np.ndarray, title: str, sub: str = "", extra: str = "", tip: str = "") -> str:
    """One heatmap with its caption: name, true size, the scale (its own max-abs), and a hover tip."""
    scale = float(np.max(np.abs(m))) if m.size else 0.0
    return (f'<figure class="nfa-fig" title="{esc(tip)}">'
            f'<figcaption><b>{title}</b> <span class="nfa-dim">{esc(sub)}</span></figcaption>'
            f'<img class="nfa-img" alt="{esc(title)}" src="{data_uri(heatmap_rgb(m))}"/>'
            f'<div class="nfa-meta"><span>{size_label(m)}</span><span>±{scale:.3g}</span></div>'
            f'{extra}</figure>')


def placeholder(text: str) -> str:
    return f'<figure class="nfa-fig nfa-empty"><div>{text}</div></figure>'


def colorbar() -> str:
    return (f'<div class="nfa-cbar" title="each picture is scaled to its own max |entry|, the ± value under it">'
            f'<span>−max</span><div style="background:{colorbar_css()}"></div><span>+max</span></div>')
