"""Line charts for the terminal, drawn by plotext into text (the loss and correlation curves).

plotext keeps one global figure, so charts are built only on the UI thread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import plotext
from rich.text import Text


@dataclass(frozen=True)
class Curve:
    """One line: label, colour (r, g, b) and the points (NaN points are dropped)."""

    label: str
    colour: tuple[int, int, int]
    steps: np.ndarray
    values: np.ndarray


def _finite(curve: Curve, log: bool) -> tuple[list[float], list[float]]:
    ok = np.isfinite(curve.values) & ((curve.values > 0) if log else True)
    return curve.steps[ok].astype(float).tolist(), curve.values[ok].astype(float).tolist()


def legend(title: str, curves: list[Curve]) -> Text:
    """The chart's first line: title and a coloured swatch per curve."""
    text = Text(title, style="bold", no_wrap=True, overflow="ellipsis")
    for c in curves:
        text.append(" ■", style="rgb({},{},{})".format(*c.colour))
        text.append(c.label)
    return text


def step_ticks(last: float, count: int) -> list[int]:
    """Round step numbers from 0 to ``last``, at most ``count`` of them (1, 2 or 5 times 10^k apart)."""
    if last <= 0 or count < 2:
        return [0]
    raw = last / (count - 1)
    power = 10 ** math.floor(math.log10(raw))
    gap = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return [int(i * gap) for i in range(int(last // gap) + 1)]


def step_label(step: int) -> str:
    """``950``, ``1.5k``, ``20k``."""
    if step < 1000:
        return str(step)
    return f"{step / 1000:g}k"


def chart_text(title: str, curves: list[Curve], width: int, height: int, log: bool = False,
               ylim: tuple[float, float] | None = None) -> Text:
    """Title and legend on one line, then the plot, in ``width`` x ``height`` cells."""
    head = legend(title, curves)
    points = [_finite(c, log) for c in curves]
    if height < 4 or width < 16 or max((len(x) for x, _ in points), default=0) < 2:
        return Text.assemble(head, "\n", ("waiting for two measurements…", "dim"))
    fig = plotext.figure
    fig.clear()
    fig.plot_size(width, height - 1)
    fig.theme("simple")
    fig.legend(active=False)
    for curve, (x, y) in zip(curves, points):
        if len(x) >= 1:
            signal = fig.signal(x, y, marker=plotext.marker("braille", curve.colour))
            signal.lines()
            fig.draw(signal)
    last = max(max(x) for x, _ in points if x)
    ticks = step_ticks(last, max(2, (width - 8) // 7))
    fig.ruler("x").ticks(ticks, [step_label(t) for t in ticks])
    if log:
        fig.ruler("y").scale("log")
    elif ylim is not None:
        fig.ruler("y").lim(*ylim)
    body = Text.from_ansi(fig.build().string(), no_wrap=True, overflow="crop")
    body.rstrip()
    return Text.assemble(head, "\n", body)


def unit_limits(curves: list[Curve]) -> tuple[float, float]:
    """[0, 1] widened to take in any negative correlation."""
    lows = [float(np.nanmin(c.values)) for c in curves if np.isfinite(c.values).any()]
    low = min([0.0] + lows)
    return (math.floor(low * 10) / 10, 1.0)
