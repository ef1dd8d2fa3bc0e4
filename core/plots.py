"""Pictures of a run: fast array-to-image heatmaps and the CLI's matplotlib figures.

``heatmap_rgb`` turns a matrix into an RGB array with a diverging colour map scaled to
its own max-abs (no figure, cheap enough for every UI tick). ``write_figures`` draws
``nfa.png`` and ``heatmaps.png`` for a run folder. Uses matplotlib's Agg backend only.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import colormaps  # noqa: E402

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


def heatmap_rgb(m: np.ndarray, max_cells: int = MAX_CELLS, cmap: str = DIVERGING) -> np.ndarray:
    """uint8 RGB image (rows, cols, 3) of ``m``, colour scale symmetric at its max-abs."""
    small = downsample(m, max_cells)
    scale = np.nanmax(np.abs(small)) if small.size else 0.0
    norm = small / scale if scale > 0 and np.isfinite(scale) else np.zeros_like(small)
    rgba = colormaps[cmap]((np.nan_to_num(norm) + 1) / 2, bytes=True)
    return rgba[..., :3]


def _panel_heatmap(ax, m: np.ndarray, title: str) -> None:
    small = downsample(m)
    scale = float(np.nanmax(np.abs(small))) or 1.0
    im = ax.imshow(small, cmap=DIVERGING, vmin=-scale, vmax=scale, interpolation="nearest")
    size = f"{m.shape[0]}x{m.shape[1]}" + (f" (shown {small.shape[0]}x{small.shape[1]})" if small.shape != m.shape else "")
    ax.set_title(f"{title}  [{size}]", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)


def heatmaps_figure(snap, centered: bool = False):
    """NFM and AGOP side by side for every layer (rows), plus G* beside layer 1 when known."""
    n = len(snap.layers)
    extra = snap.g_star is not None
    width, height = (9.5 if extra else 6.6), 3.1 * n + 0.35
    fig, axes = plt.subplots(n, 3 if extra else 2, figsize=(width, height), squeeze=False)
    _margins(fig, left=0.15, right=0.35, bottom=0.1, top=0.6, wspace=0.45, hspace=0.3)
    for row, s in zip(axes, snap.layers):
        nfm, agop = (s.centered_nfm, s.centered_agop) if centered else (s.nfm, s.agop)
        prefix = "centered " if centered else ""
        corr = s.c_nfa if centered else s.uc_nfa
        _panel_heatmap(row[0], nfm, f"layer {s.layer} {prefix}NFM")
        _panel_heatmap(row[1], agop, f"{prefix}AGOP (rho={_fmt(corr)})")
        if extra:
            if s.layer == 1:
                _panel_heatmap(row[2], snap.g_star, f"ground truth G* (quality={_fmt(s.feature_quality)})")
            else:
                row[2].axis("off")
    fig.suptitle(f"step {snap.measured_step}: W^T W vs W^T K W ({snap.config.measure.correlation})", fontsize=11,
                 y=1 - 0.12 / height)
    return fig


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
