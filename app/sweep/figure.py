"""``sweep.png``: each final metric against each varied key, mean and a +-1 std band over seeds.

One row of panels per (metric, varied key), one column per hidden layer. When other keys
vary too, each of their combinations is its own line (up to :data:`MAX_LINES`; beyond that
one line averages over them). ``seed`` is the x axis only when nothing else varies.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from app.sweep.table import METRICS  # noqa: E402
from core.plots import save_figure  # noqa: E402

MAX_LINES = 6
LABELS = {"uc_nfa": "UC-NFA", "c_nfa": "C-NFA", "feature_quality": "feature quality",
          "train_loss": "train loss", "test_loss": "test loss", "test_accuracy": "test accuracy"}


def x_keys(keys: list[str]) -> list[str]:
    """The keys that get an x axis."""
    return [k for k in keys if k != "seed"] or ["seed"]


def _metrics(rows: list[dict]) -> list[str]:
    return [m for m in METRICS if m != "train_loss" and any(r.get(m) is not None for r in rows)]


def sweep_figure(rows: list[dict], keys: list[str]):
    """The figure (rows: table rows with a layer; keys: the varied keys)."""
    rows = [r for r in rows if r.get("layer") is not None]
    layers = sorted({r["layer"] for r in rows}) or [1]
    panels = [(m, k) for m in _metrics(rows) for k in x_keys(keys)] or [("uc_nfa", x_keys(keys)[0])]
    fig, axes = plt.subplots(len(panels), len(layers), squeeze=False,
                             figsize=(3.2 * len(layers) + 0.6, 2.4 * len(panels) + 0.4))
    for i, (metric, key) in enumerate(panels):
        for j, layer in enumerate(layers):
            ax = axes[i][j]
            _panel(ax, [r for r in rows if r["layer"] == layer], metric, key, [k for k in keys if k not in (key, "seed")])
            ax.set_title(f"layer {layer}: {LABELS[metric]}", fontsize=8)
            ax.set_xlabel(key, fontsize=7)
    fig.tight_layout()
    return fig


def _panel(ax, rows: list[dict], metric: str, key: str, others: list[str]) -> None:
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=7)
    xs = _x_values(rows, key)
    pos = _positions(ax, xs)
    lines = defaultdict(list)
    for r in rows:
        lines[tuple((k, r.get(k)) for k in others)].append(r)
    if len(lines) > MAX_LINES:
        lines = {(): rows}
    for label, group in lines.items():
        mean, std = _band(group, metric, key, xs)
        ok = ~np.isnan(mean)
        if not ok.any():
            continue
        name = ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in label) or None
        (line,) = ax.plot(pos[ok], mean[ok], "o-", ms=3, lw=1.3, label=name)
        ax.fill_between(pos[ok], (mean - std)[ok], (mean + std)[ok], color=line.get_color(), alpha=0.2, lw=0)
    if len(lines) > 1:
        ax.legend(fontsize=6)


def _x_values(rows: list[dict], key: str) -> list[Any]:
    values = list(dict.fromkeys(r.get(key) for r in rows))
    return sorted(values) if _numeric(values) else values


def _numeric(values: list[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _positions(ax, xs: list[Any]) -> np.ndarray:
    if _numeric(xs) and xs:
        pos = np.array(xs, dtype=np.float64)
        if len(xs) > 2 and pos.min() > 0 and pos.max() / pos.min() >= 20:
            ax.set_xscale("log")
        return pos
    ax.set_xticks(range(len(xs)), [str(v) for v in xs], fontsize=7)
    return np.arange(len(xs), dtype=np.float64)


def _band(rows: list[dict], metric: str, key: str, xs: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std over seeds (and averaged-out keys) of ``metric`` at each x."""
    mean, std = np.full(len(xs), np.nan), np.full(len(xs), np.nan)
    for i, x in enumerate(xs):
        vals = [r[metric] for r in rows if r.get(key) == x and r.get(metric) is not None
                and math.isfinite(r[metric])]
        if vals:
            mean[i], std[i] = np.mean(vals), np.std(vals, ddof=1) if len(vals) > 1 else 0.0
    return mean, std


def write_sweep_png(path: Path, rows: list[dict], keys: list[str]) -> None:
    """Draws and saves ``sweep.png`` atomically."""
    save_figure(sweep_figure(rows, keys), path)
