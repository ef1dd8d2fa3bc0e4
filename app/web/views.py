"""What the page shows, rendered from snapshots to HTML with inline pictures (no figure per tick).

Heatmaps go from arrays to palette indices (``core.plots.heatmap_index``) carried by a
``<canvas>`` that the page script draws, so a tick writes no file and the browser swaps
pictures without a request (the curves are plotly charts, ``app.web.charts``). Every
user-supplied string is escaped.
"""

from __future__ import annotations

import base64
import functools
import html
from dataclasses import dataclass

import numpy as np
from core.plots import MAX_CELLS, PALETTE_SIZE, heatmap_index, heatmap_palette

WINDOWS = ("whole run", "recent")
SCALES = ("max", "robust")
WINDOW, SCALE = WINDOWS[0], SCALES[0]
OUTLIER_RATIO = 4.0
"""A picture whose max |entry| exceeds this many times its 99th percentile is called outlier-scaled."""


@dataclass(frozen=True)
class View:
    """What the viewer chose: the layer, centered matrices or not, the curves' window, the heatmaps' scale."""

    layer: int = 1
    centered: bool = False
    window: str = "whole run"
    """``whole run`` (decimated) or ``recent`` (the last raw measurements)."""
    scale: str = "max"
    """``max``: each heatmap scaled to its max |entry|; ``robust``: to its 99th percentile (clipped above)."""


def view_of(layer, centered, window: str = WINDOW, scale: str = SCALE) -> View:
    """The viewer's choices from control values (unknown window or scale names fall back to the defaults)."""
    try:
        layer = max(int(layer or 1), 1)
    except (TypeError, ValueError):
        layer = 1
    return View(layer, bool(centered), window if window in WINDOWS else WINDOW, scale if scale in SCALES else SCALE)


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def fmt(value: float | None, digits: int = 3) -> str:
    """A number for the page; n/a for None or NaN."""
    if value is None or not np.isfinite(value):
        return "n/a"
    return f"{value:.{digits}f}" if abs(value) >= 10 ** -digits else f"{value:.2e}"


def fmt_loss(value: float | None) -> str:
    """A loss in a fixed format (4 decimals; scientific below 0.001), so the status line does not jump."""
    if value is None or not np.isfinite(value):
        return "n/a"
    return f"{value:.4f}" if abs(value) >= 1e-3 else f"{value:.2e}"


def fmt_se(value: float | None) -> str:
    """A standard error after its correlation: ``±0.012``, or nothing when undefined."""
    return "" if value is None or not np.isfinite(value) else f" ±{value:.3f}"


# -- images ----------------------------------------------------------------------------

def canvas(m: np.ndarray, title: str) -> str:
    """A heatmap as a ``<canvas>`` carrying its palette indices (``core.plots.heatmap_index``, base64).

    The page script (``app.web.pagejs``) draws it with the same palette, synchronously, as soon
    as it is inserted. Not an ``<img>``: Chromium keeps every decoded data-URL picture a page
    ever replaced (its renderer grew 188 MiB a minute with 5 pictures every 300 ms, flat with
    canvases; ``benchmarks/browser_images.py``).
    """
    idx = heatmap_index(m)
    rows, cols = idx.shape
    data = base64.b64encode(idx.tobytes()).decode("ascii")
    return (f'<canvas class="nfa-img" role="img" aria-label="{esc(title)}" width="{cols}" height="{rows}" '
            f'data-idx="{data}"></canvas>')


def matrix_power(m: np.ndarray, alpha: float) -> np.ndarray:
    """m^alpha of a symmetric matrix (negative eigenvalues clipped), as the correlations use."""
    if alpha == 1:
        return m
    vals, vecs = np.linalg.eigh((m + m.T) / 2)
    return (vecs * np.clip(vals, 0, None) ** alpha) @ vecs.T


@functools.cache
def colorbar_css() -> str:
    """The diverging map as a CSS gradient (left = -max, right = +max): every 25th palette entry and the last."""
    palette = heatmap_palette()
    at = list(range(0, PALETTE_SIZE, 25)) + [PALETTE_SIZE - 1]
    parts = [f"rgb({r},{g},{b}) {i / (PALETTE_SIZE - 1) * 100:.1f}%" for i, (r, g, b) in zip(at, palette[at])]
    return "linear-gradient(90deg, " + ", ".join(parts) + ")"


def size_label(m: np.ndarray) -> str:
    """True size, and the shown size when the picture is block-averaged."""
    rows, cols = m.shape
    shown_r, shown_c = -(-rows // -(-rows // MAX_CELLS)), -(-cols // -(-cols // MAX_CELLS))
    label = f"{rows}×{cols}"
    return label + (f" (shown {shown_r}×{shown_c})" if (shown_r, shown_c) != (rows, cols) else "")


def scales(m: np.ndarray) -> tuple[float, float]:
    """(max |entry|, 99th percentile of |entry|) of a matrix."""
    if not m.size:
        return 0.0, 0.0
    a = np.abs(m[np.isfinite(m)])
    return (float(a.max()), float(np.percentile(a, 99))) if a.size else (0.0, 0.0)


def outlier_scaled(m: np.ndarray) -> bool:
    top, p99 = scales(m)
    return top > OUTLIER_RATIO * p99 > 0


def figure(m: np.ndarray, title: str, sub: str = "", extra: str = "", tip: str = "", scale: str = "max") -> str:
    """One heatmap with its caption: name, true size, the colour scale, and a hover tip.

    With ``scale="robust"`` the picture is clipped at its 99th percentile of |entry|. A picture
    scaled to one outlier (max over 4x the 99th percentile) says so under it, in either mode.
    """
    top, p99 = scales(m)
    robust = scale == "robust" and top > p99 > 0
    shown = np.clip(m, -p99, p99) if robust else m
    flag = ""
    if top > OUTLIER_RATIO * p99 > 0:
        tip = (f"max |entry| {top:.3g} is {top / p99:.0f}x the 99th percentile {p99:.3g}: "
               + ("colours are clipped there" if robust else "one entry sets the colours; try Heatmap scale: robust"))
        flag = (f'<div class="nfa-meta nfa-outlier" title="{tip}"><span>⚠ outlier: max = '
                f'{top / p99:.0f}× p99{" (clipped)" if robust else ""}</span></div>')
    label = f"±{p99:.3g} (99%)" if robust else f"±{top:.3g}"
    return (f'<figure class="nfa-fig" title="{esc(tip)}">'
            f'<figcaption><b>{title}</b> <span class="nfa-dim">{esc(sub)}</span></figcaption>'
            f'{canvas(shown, title)}'
            f'<div class="nfa-meta"><span>{size_label(m)}</span><span>{label}</span></div>'
            f'{flag}{extra}</figure>')


def placeholder(text: str) -> str:
    return f'<figure class="nfa-fig nfa-empty"><div>{text}</div></figure>'


def colorbar() -> str:
    return (f'<div class="nfa-cbar" title="each picture is scaled to its own max |entry|, the ± value under it">'
            f'<span>−max</span><div style="background:{colorbar_css()}"></div><span>+max</span></div>')
