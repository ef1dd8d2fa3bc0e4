"""Pure render functions: snapshots and matrices in, rich renderables out.

Widgets hold state and call these with their current size; nothing here touches
Textual, so every function can be tested and benchmarked on its own.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Iterable, Sequence

import numpy as np
from rich.color import Color
from rich.style import Style
from rich.table import Table
from rich.text import Text
from rich import box

from app.tui.views import Panel
from core.engine import Snapshot
from core.plots import heatmap_rgb

SPARK_BARS = "▁▂▃▄▅▆▇█"
SELECTED = "bold on grey23"
"""Style of the selected layer's row."""
UPPER_HALF = "▀"


# -- numbers -----------------------------------------------------------------------------

def fmt(value: float | None, digits: int = 3) -> str:
    """A correlation-style number, or ``n/a`` when undefined."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}f}"


def fmt_loss(value: float | None) -> str:
    """A loss with four significant digits."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.4g}"


def sparkline(values: Iterable[float], width: int, lo: float = 0.0, hi: float = 1.0) -> str:
    """The last ``width`` values as bar characters on a fixed [lo, hi] scale (blank where NaN)."""
    tail = list(values)[-width:] if width > 0 else []
    chars = []
    for v in tail:
        if v is None or not math.isfinite(v):
            chars.append(" ")
            continue
        frac = (min(max(v, lo), hi) - lo) / (hi - lo)
        chars.append(SPARK_BARS[min(int(frac * len(SPARK_BARS)), len(SPARK_BARS) - 1)])
    return "".join(chars).ljust(width)


# -- heatmaps ----------------------------------------------------------------------------

@lru_cache(maxsize=8192)
def _cell_style(top: tuple[int, int, int], bottom: tuple[int, int, int] | None) -> Style:
    bg = None if bottom is None else Color.from_rgb(*bottom)
    return Style(color=Color.from_rgb(*top), bgcolor=bg)


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


def heatmap_pixels(matrix: np.ndarray, side: int) -> np.ndarray:
    """RGB pixels (rows, cols, 3) of ``matrix``: area-averaged down to ``side``, or repeated up to it."""
    small = fit_matrix(matrix, max(side, 1))
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


def shown_size(matrix: np.ndarray, side: int) -> tuple[int, int]:
    """The matrix size as drawn after shrinking to at most ``side`` a side."""
    return fitted_shape(matrix.shape, max(side, 1))


def size_label(matrix: np.ndarray, side: int) -> str:
    """``20x20``, or ``128x128→43x43`` when drawn smaller than it is."""
    rows, cols = matrix.shape
    shown = shown_size(matrix, side)
    label = f"{rows}x{cols}"
    return label if shown == (rows, cols) else f"{label}→{shown[0]}x{shown[1]}"


def colour_key(scale: float, width: int) -> Text:
    """A one-line colour bar, blue (-scale) to red (+scale), then ``±scale``."""
    label = f" ±{scale:.2g}"
    bar = max(width - len(label), 0)
    text = Text(no_wrap=True, overflow="crop")
    if bar:
        rgb = heatmap_rgb(np.linspace(-1.0, 1.0, bar)[None, :], max_cells=bar)[0]
        for colour in rgb:
            text.append("█", Style(color=Color.from_rgb(*(int(v) for v in colour))))
    text.append(label, style="dim")
    return text


def heatmap_text(matrix: np.ndarray | None, title: str, width: int, height: int,
                 note: str = "") -> Text:
    """Title, half-block heatmap, colour key and true size, fitted to ``width`` x ``height`` cells.

    Below 14 rows the colour bar gives way to a taller heatmap (the scale stays in the label).
    """
    if matrix is None:
        return Text(f"{title}\n\n{note}", style="dim", justify="center")
    bar = height >= 14
    side = fit_pixels(width, height - (3 if bar else 2))
    small = fit_matrix(matrix, max(side, 1))
    scale = float(np.nanmax(np.abs(small))) if small.size else 0.0  # the colour bar's ends
    scale = scale if math.isfinite(scale) else 0.0
    label = size_label(matrix, side) + ("" if bar else f" ±{scale:.2g}") + (f"  {note}" if note else "")
    lines: list[Text] = [Text(title, style="bold", no_wrap=True, overflow="ellipsis")]
    if side >= 2:
        rgb = heatmap_pixels(small, side)
        lines.append(half_blocks(rgb))
        if bar:
            lines.append(colour_key(scale, min(width, max(rgb.shape[1], 16))))
    lines.append(Text(label, style="dim", no_wrap=True, overflow="ellipsis"))
    out = Text(justify="center", no_wrap=True, overflow="crop")
    for i, line in enumerate(lines):
        out.append_text(line if i == 0 else Text("\n").append_text(line))
    return out


def heatmap_pair(pair: tuple[Panel, Panel], width: int, height: int) -> Table:
    """Two panels in a two-column grid, each fitted to half the width."""
    half = max((width - 1) // 2, 1)
    grid = Table.grid(expand=True, padding=(0, 1))
    grid.add_column(justify="center", ratio=1)
    grid.add_column(justify="center", ratio=1)
    grid.add_row(*(heatmap_text(p.matrix, p.title, half, height, p.note) for p in pair))
    return grid


# -- status and table --------------------------------------------------------------------

def optimizer_label(snap: Snapshot) -> str:
    """``sgd lr 0.05 · SLO off`` or ``SLO on (layer k, boost b) · speed s``."""
    o = snap.config.optim
    if o.slo.enabled:
        return f"SLO on (layer {o.slo.target_layer}, boost {o.slo.boost:g}) · speed {o.slo.speed:g}"
    momentum = f" momentum {o.momentum:g}" if o.name == "sgd" and o.momentum else ""
    return f"{o.name} lr {o.lr:g}{momentum} · SLO off"


STATE_STYLES = {"playing": "bold green", "paused": "bold yellow", "finished": "bold cyan",
                "diverged": "bold red", "error": "bold red", "working": "bold magenta"}


def status_text(snap: Snapshot | None, state: str, detail: str = "", step: int | None = None) -> Text:
    """The status bar: step, losses, state, optimiser and SLO, then any message.

    ``step`` is a newer step count than the snapshot's, while a long frame is still training.
    """
    if snap is None:
        return Text(f"{state} {detail}".strip(), style=STATE_STYLES.get(state, ""))
    acc = f" acc {snap.test_accuracy:.3f}" if snap.test_accuracy is not None else ""
    shown = max(snap.step, step or 0)
    text = Text.assemble(
        (f"step {shown}", "bold"), "  ",
        ("loss ", "dim"), fmt_loss(snap.train_loss), ("  test ", "dim"), fmt_loss(snap.test_loss), acc, "  ",
        (state, STATE_STYLES.get(state, "")), "  ", optimizer_label(snap),
    )
    message = detail or snap.message
    if message:
        text.append("\n")
        text.append(message, style="red" if state in ("diverged", "error") else "italic")
    return text


def _history(snap: Snapshot, key: str, layer: int) -> np.ndarray:
    return snap.history.series(key, layer)[1]


TABLE_FIXED = 46
"""Columns the table needs besides its two sparklines (cells and padding)."""


def layer_table(snap: Snapshot | None, selected: int, width: int) -> Table:
    """The per-layer table: shape, UC-NFA, C-NFA, relative movement and both correlations' history."""
    quality = snap is not None and snap.g_star is not None
    spark = max(4, (width - TABLE_FIXED - (8 if quality else 0)) // 2)
    table = Table(box=box.SIMPLE_HEAD, expand=True, padding=(0, 1), pad_edge=False, show_edge=False)
    table.add_column("layer", justify="right", no_wrap=True)
    table.add_column("shape", justify="right", no_wrap=True)
    for name in ("UC-NFA", "C-NFA", "move"):
        table.add_column(name, justify="right", no_wrap=True)
    if quality:
        table.add_column("quality", justify="right", no_wrap=True)
    table.add_column("UC trend", no_wrap=True, min_width=4, ratio=1, overflow="crop")
    table.add_column("C trend", no_wrap=True, min_width=4, ratio=1, overflow="crop")
    for s in (snap.layers if snap is not None else ()):
        mark = "▶" if s.layer == selected else " "
        row = [f"{mark}{s.layer}", f"{s.shape[0]}x{s.shape[1]}", fmt(s.uc_nfa), fmt(s.c_nfa),
               fmt(s.rel_movement)]
        if quality:
            row.append(fmt(s.feature_quality) if s.layer == 1 else "")
        row += [Text(sparkline(_history(snap, "uc_nfa", s.layer), spark), style="cyan"),
                Text(sparkline(_history(snap, "c_nfa", s.layer), spark), style="magenta")]
        table.add_row(*row, style=SELECTED if s.layer == selected else "")
    return table


def measure_caption(snap: Snapshot) -> str:
    """Which setting produced the numbers: correlation kind, AGOP power, measured step."""
    m = snap.config.measure
    return f"rho = {m.correlation}, alpha = {m.alpha:g}, measured at step {snap.measured_step}"


def help_rows(bindings: Sequence[tuple[str, str]]) -> Table:
    """A two-column table of keys and what they do."""
    table = Table(box=None, show_header=False, padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    for key, what in bindings:
        table.add_row(key, what)
    return table


def _pair(a: float | None, b: float | None) -> str:
    return f"{fmt(a, 2)}→{fmt(b, 2)}"


def compare_table(base: Snapshot | None, slo: Snapshot | None, selected: int) -> Table:
    """Per layer: UC-NFA, C-NFA and feature quality, baseline → SLO."""
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, show_edge=False,
                  caption="baseline → SLO; * SLO target", caption_style="dim")
    table.add_column("layer", justify="right", no_wrap=True)
    for name in ("UC-NFA", "C-NFA", "quality"):
        table.add_column(name, justify="right", no_wrap=True)
    if base is None or slo is None:
        return table
    target = slo.config.optim.slo.target_layer
    for b, s in zip(base.layers, slo.layers):
        mark = "▶" if b.layer == selected else " "
        quality = _pair(b.feature_quality, s.feature_quality) if b.feature_quality is not None else ""
        name = f"{mark}{b.layer}" + ("*" if b.layer == target else " ")
        table.add_row(name, _pair(b.uc_nfa, s.uc_nfa), _pair(b.c_nfa, s.c_nfa), quality,
                      style=SELECTED if b.layer == selected else "")
    return table


def run_label(name: str, snap: Snapshot) -> Text:
    """A compare column's one-line heading: run name, optimiser and test loss."""
    o = snap.config.optim
    rule = f"layer {o.slo.target_layer} boost {o.slo.boost:g}" if o.slo.enabled else f"{o.name} lr {o.lr:g}"
    return Text.assemble((name, "bold"), f"  {rule}", ("  test ", "dim"), fmt_loss(snap.test_loss),
                         no_wrap=True, overflow="ellipsis")


def compare_status(snaps: Sequence[Snapshot], state: str, detail: str = "") -> Text:
    """The compare view's status: step, state, what is compared, then any message."""
    slo = snaps[1].config.optim.slo
    text = Text.assemble(
        (f"step {snaps[0].step}", "bold"), "  ", (state, STATE_STYLES.get(state, "")),
        f"  baseline (SLO off) vs SLO on (layer {slo.target_layer}, boost {slo.boost:g}), same start")
    if detail:
        text.append("\n")
        text.append(detail, style="red" if state in ("diverged", "error") else "italic")
    return text


def key_bar(entries: Sequence[tuple[str, str, str]], width: int) -> Text:
    """The footer: ``key description`` entries wrapped to ``width``, never split across lines.

    Each entry is (keys shown, description, click action); a click on an entry runs its action.
    """
    text, used = Text(no_wrap=True, overflow="crop"), 0
    for keys, description, action in entries:
        size = len(keys) + 1 + len(description)
        if used and used + 2 + size > width:
            text.append("\n")
            used = 0
        elif used:
            text.append("  ")
            used += 2
        meta = {"@click": action} if action else {}
        text.append(keys, Style(bold=True, color="yellow", meta=meta))
        text.append(" " + description, Style(meta=meta))
        used += size
    return text
