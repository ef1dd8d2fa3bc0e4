"""TUI benchmark: how long one frame of the terminal app takes on the ``quickstart`` preset.

Run by hand (not in CI):  python benchmarks/bench_tui.py [--frames 40] [--threads N]

A *frame* is what the app does while playing: train to the next measurement
(``measure.every`` steps), measure every layer, and redraw the status bar, the per-layer
table, both heatmaps and both curves. Two figures:

1. pipeline: ``driver.advance`` plus every pure renderer at a 120x36 layout, encoded to
   terminal escape codes by rich (what the screen shows, without Textual's compositor);
2. in app: the real NfaApp, headless at 120x36, playing; the median time between two
   frames reaching the UI thread (worker and redraw overlap, as they do in a terminal).

The budget is 100 ms median per frame on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from rich.console import Console  # noqa: E402

from app.tui import charts, render, views  # noqa: E402
from app.tui.driver import advance  # noqa: E402
from app.tui.plotting import chart_text  # noqa: E402
from core.config import preset_config  # noqa: E402
from core.engine import Engine  # noqa: E402

BUDGET_MS = 100.0
WIDTH, HEIGHT = 120, 36


def draw(snap, console: Console) -> None:
    """Every panel of the main screen at a 120x36 layout, encoded to escape codes."""
    console.print(render.status_text(snap, "playing"))
    console.print(render.layer_table(snap, 1, WIDTH))
    console.print(render.heatmap_pair(views.panels(snap, 1, "nfm-agop", False), 70, 26))
    for chart in (charts.loss_chart(snap), charts.nfa_chart(snap, 1)):
        console.print(chart_text(chart.title, chart.curves, 46, 13, chart.log, chart.ylim))


def bench_pipeline(frames: int) -> list[float]:
    """Seconds per frame (advance + draw) over ``frames`` frames of quickstart."""
    engine = Engine(preset_config("quickstart"))
    console = Console(file=io.StringIO(), width=WIDTH, color_system="truecolor", force_terminal=True)
    times = []
    for _ in range(frames):
        start = time.perf_counter()
        frame = advance([engine], None, lambda: False)
        draw(frame.snaps[0], console)
        times.append(time.perf_counter() - start)
        console.file = io.StringIO()
    return times


async def _play_app(frames: int) -> list[float]:
    from app.tui import make_app

    app = make_app(preset_config("quickstart"))
    async with app.run_test(size=(WIDTH, HEIGHT)) as pilot:
        await pilot.pause()
        await pilot.press("space")
        deadline = time.perf_counter() + 120
        while len(app.frame_stamps) < frames and app.playing and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        await pilot.press("q")
    stamps = list(app.frame_stamps)
    return [b - a for a, b in zip(stamps, stamps[1:])]


def report(name: str, seconds: list[float]) -> float:
    """Prints median and p90 in ms; returns the median."""
    ms = sorted(s * 1000 for s in seconds)
    median = statistics.median(ms)
    p90 = ms[int(0.9 * (len(ms) - 1))]
    verdict = "ok" if median <= BUDGET_MS else "OVER BUDGET"
    print(f"{name:>9}: median {median:6.1f} ms  p90 {p90:6.1f} ms  ({len(ms)} frames)  {verdict}")
    return median


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=39, help="frames to time (quickstart has 40)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: the app's choice)")
    args = parser.parse_args()
    from app.tui.app import configure_threads

    configure_threads(args.threads)
    print(f"quickstart, {WIDTH}x{HEIGHT}, torch threads {torch.get_num_threads()}, {os.cpu_count()} cores, "
          f"budget {BUDGET_MS:.0f} ms median")
    bench_pipeline(3)  # warm-up (first measurement, caches)
    medians = [report("pipeline", bench_pipeline(args.frames)), report("in app", asyncio.run(_play_app(args.frames)))]
    return 0 if max(medians) <= BUDGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
