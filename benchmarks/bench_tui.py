"""TUI benchmark: does a frame cost the same after 10^6 steps as after 1,000, and does memory stay flat?

Run by hand (not in CI):

    python benchmarks/bench_tui.py                 # draw cost fresh vs 10^6 steps, in-app frames, RSS
    python benchmarks/bench_tui.py --soak 1800 --size 120x40   # play 30 minutes headless, a line per minute
    python benchmarks/bench_tui.py --only memory   # RSS of play, bytes per history row, MB per hour

Figures (``quickstart`` preset, 120x36 layout):

1. draw: what the UI thread does per frame (bring the bounded history view up to date from
   the new rows, build the curves, render status, table, heatmaps and both charts to
   escape codes), with a history of 1,000 steps and with one of 1,000,000 steps
   (synthesised on quickstart's measurement grid, 2 rows per measurement). The ratio
   must be at most 1.2.
2. in app: the real NfaApp headless at 120x36, playing; the median time between frames
   reaching the UI thread, fresh and on an engine whose history holds 10^6 steps.
3. memory: RSS before and after playing ``--seconds``, per hour of play; then the bytes a
   history row costs (``history_memory.py``: the old list of row dicts vs the columnar
   History, 10^6 steps of engine-made rows, tracemalloc and RSS) and the MB per hour they
   make at the rows per second the app just played.
4. ``--soak``: the real app plays for that long; once a minute a line with steps, history
   rows, RSS, the frame gap and UI work of the last 512 frames, and the key latency
   (``c`` pressed four times, from the press to the heatmap widget drawing the toggled
   setting); at the end, first vs last minute, the RSS slope over the whole soak and
   from minute 10 on (after the history's arrays reach their in-memory cap).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import io
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from rich.console import Console  # noqa: E402

from app.tui import charts, heatmaps, render, views  # noqa: E402
from app.tui.driver import advance  # noqa: E402
from app.tui.plotting import chart_text  # noqa: E402
from core.config import preset_config  # noqa: E402
from core.engine import Engine  # noqa: E402
from core.history import History  # noqa: E402

import history_memory  # noqa: E402  (benchmarks/, next to this file)

RATIO_LIMIT = 1.2
WIDTH, HEIGHT = 120, 36


def rss_mb() -> float:
    """Resident set size of this process, MB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def synthetic_rows(template: list[dict], steps: int, every: int) -> list[dict]:
    """Rows on the measurement grid up to ``steps``, copied from a real measurement's rows."""
    rows = []
    for step in range(0, steps + 1, every):
        for r in template:
            rows.append({**r, "step": step})
    return rows


def draw(snap, view, console: Console) -> None:
    """Every panel of the main screen at a 120x36 layout, encoded to escape codes."""
    view.update(snap.history)
    console.print(render.status_text(snap, "playing"))
    console.print(render.layer_table(snap, 1, WIDTH, view))
    console.print(heatmaps.heatmap_pair(views.panels(snap, 1, "nfm-agop", False), 70, 26))
    for chart in (charts.loss_chart(view), charts.nfa_chart(view, 1, snap.g_star is not None)):
        console.print(chart_text(chart, 46, 13))


def bench_draw(steps: int, frames: int) -> list[float]:
    """Seconds per frame of UI work on a history of ``steps`` steps, one new measurement a frame."""
    cfg = preset_config("quickstart")
    engine = Engine(cfg)
    snap = engine.snapshot()
    every = cfg.measure.every
    template = list(snap.history.rows)
    history = History(synthetic_rows(template, steps, every))
    view = charts.new_view()
    console = Console(file=io.StringIO(), width=WIDTH, color_system="truecolor", force_terminal=True)
    draw(dataclasses.replace(snap, history=history), view, console)  # the first update reads everything
    times = []
    for i in range(frames):
        step = steps + (i + 1) * every
        history = history.extend({**r, "step": step} for r in template)
        frame_snap = dataclasses.replace(snap, step=step, history=history)
        start = time.perf_counter()
        draw(frame_snap, view, console)
        times.append(time.perf_counter() - start)
        console.file = io.StringIO()
    return times


def prefill(engine: Engine, steps: int) -> None:
    """Gives a fresh engine a synthesised history of ``steps`` steps (benchmark only)."""
    template = list(engine.history.rows)
    engine._history = History(synthetic_rows(template, steps, engine.config.measure.every))
    engine._step = steps
    engine._last = dataclasses.replace(engine._last, step=steps, measured_step=steps, history=engine._history)


async def play_app(frames: int, history_steps: int = 0, seconds: float | None = None,
                   on_minute=None, size: tuple[int, int] = (WIDTH, HEIGHT)) -> tuple[list[float], list[float], object]:
    """Frame gaps and UI seconds of the real app playing (``frames`` frames or ``seconds``).

    ``on_minute(app, pilot, elapsed)`` is awaited once a minute.
    """
    from app.tui import make_app

    engine = Engine(preset_config("quickstart"))
    if history_steps:
        prefill(engine, history_steps)
    app = make_app(engine.config, engine)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        await pilot.press("space")
        start = minute = time.perf_counter()
        while app.playing:
            await asyncio.sleep(0.05)
            now = time.perf_counter()
            if seconds is None and len(app.frame_stamps) >= frames:
                break
            if seconds is not None and now - start >= seconds:
                break
            if on_minute is not None and now - minute >= 60:
                await on_minute(app, pilot, now - start)
                minute = now
        stamps, ui = list(app.frame_stamps), list(app.ui_seconds)
        gaps = [b - a for a, b in zip(stamps, stamps[1:])]
        await pilot.press("q")
    return gaps, ui, app


def ms(values: list[float]) -> tuple[float, float]:
    """(median, p90) in ms."""
    v = sorted(x * 1000 for x in values)
    return statistics.median(v), v[int(0.9 * (len(v) - 1))]


def report_draw(frames: int) -> bool:
    fresh = ms(bench_draw(1_000, frames))
    long = ms(bench_draw(1_000_000, frames))
    ratio = long[0] / fresh[0]
    print(f"draw    1,000 steps: median {fresh[0]:6.1f} ms  p90 {fresh[1]:6.1f} ms")
    print(f"draw 1,000,000 steps: median {long[0]:6.1f} ms  p90 {long[1]:6.1f} ms   ratio {ratio:.2f} "
          f"(limit {RATIO_LIMIT}) {'ok' if ratio <= RATIO_LIMIT else 'OVER'}")
    return ratio <= RATIO_LIMIT


def report_app(frames: int) -> bool:
    gaps0, ui0, _ = asyncio.run(play_app(frames))
    gaps1, ui1, _ = asyncio.run(play_app(frames, history_steps=1_000_000))
    g0, g1, u0, u1 = ms(gaps0), ms(gaps1), ms(ui0), ms(ui1)
    print(f"in app, fresh:        frame gap median {g0[0]:6.1f} ms p90 {g0[1]:6.1f}; UI work median {u0[0]:5.1f} ms")
    print(f"in app, 10^6 steps:   frame gap median {g1[0]:6.1f} ms p90 {g1[1]:6.1f}; UI work median {u1[0]:5.1f} ms"
          f"   gap ratio {g1[0] / g0[0]:.2f}, UI ratio {u1[0] / u0[0]:.2f}")
    return g1[0] / g0[0] <= RATIO_LIMIT


def report_memory(seconds: float) -> float:
    """RSS over ``seconds`` of play; returns the history rows the app added per second."""
    before = rss_mb()
    _, _, app = asyncio.run(play_app(0, seconds=seconds))
    after = rss_mb()
    steps, rows = app.engine.step_count, len(app.engine.history)
    per_hour = (after - before) / seconds * 3600
    print(f"memory: RSS {before:.1f} -> {after:.1f} MB over {seconds:.0f} s of play ({steps:,} steps, "
          f"{rows:,} history rows, arrays {app.engine.history.nbytes / 1e6:.2f} MB): {per_hour:+.0f} MB per hour")
    return rows / seconds


def report_rows(rows_per_s: float) -> None:
    """Bytes per history row (before/now) and what the terminal app's measured rate makes of them per hour."""
    engine = Engine(preset_config("quickstart"))
    costs = history_memory.row_costs(list(engine.history.rows), engine.config.measure.every)
    history_memory.print_row_costs(costs)
    history_memory.print_per_hour("terminal app", costs, rows_per_s)


async def key_latency(app, pilot, presses: int = 4) -> float:
    """Median seconds from pressing ``c`` (centered on/off) to the heatmaps rendered with the new setting.

    The heatmap widget's ``render`` is wrapped to note when it first draws the toggled state.
    (``pilot.pause()`` is not used: it waits for the CPU to go idle, which never happens while
    the app plays, and so measured its own time-out, about 3 s, not the app.)
    """
    from app.tui.widgets import HeatmapView

    heat = app.main_screen.query_one(HeatmapView)
    drawn: list[tuple[float, bool]] = []
    real = heat.render

    def noted():
        drawn.append((time.perf_counter(), heat.centered))
        return real()

    heat.render = noted
    out = []
    try:
        for _ in range(presses):
            want = not app.centered
            drawn.clear()
            start = time.perf_counter()
            await pilot.press("c")
            while not any(c == want for _, c in drawn):
                await asyncio.sleep(0.001)
                if time.perf_counter() - start > 30:
                    raise TimeoutError("the heatmaps never showed the toggled setting")
            out.append(next(t for t, c in drawn if c == want) - start)
            assert app.centered == want
    finally:
        heat.render = real
    return statistics.median(out)


def slope_per_hour(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (minutes, MB) samples, in MB per hour."""
    xs, ys = [m for m, _ in samples], [r for _, r in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return 60 * sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else float("nan")


def soak(seconds: float, size: tuple[int, int]) -> None:
    """Plays headless for ``seconds``; prints a line per minute (steps, RSS, frame gaps, UI work, key latency)."""
    print("minute  steps        rows     RSS MB  gap median  gap p90  UI median  key ms  (last 512 frames)")
    lines = []

    async def line(app, pilot, elapsed):
        gaps = [b - a for a, b in zip(list(app.frame_stamps), list(app.frame_stamps)[1:])]
        g, u = ms(gaps), ms(list(app.ui_seconds))
        key = await key_latency(app, pilot) * 1000
        rss = rss_mb()
        lines.append((elapsed / 60, rss, g[0], key))
        print(f"{elapsed / 60:6.1f}  {app.engine.step_count:>11,}  {len(app.engine.history):>8,}  "
              f"{rss:8.1f}  {g[0]:8.1f}  {g[1]:8.1f}  {u[0]:8.1f}  {key:6.1f}", flush=True)

    asyncio.run(play_app(0, seconds=seconds, on_minute=line, size=size))
    if len(lines) >= 2:
        (m0, r0, g0, k0), (m1, r1, g1, k1) = lines[0], lines[-1]
        late = [(m, r) for m, r, _, _ in lines if m >= 10]
        print(f"# first vs last minute: frame gap {g0:.1f} -> {g1:.1f} ms (ratio {g1 / g0:.2f}), key latency "
              f"{k0:.1f} -> {k1:.1f} ms (ratio {k1 / k0:.2f}); RSS {r0:.1f} -> {r1:.1f} MB, slope "
              f"{slope_per_hour([(m, r) for m, r, _, _ in lines]):+.1f} MB/h"
              + (f", from minute 10 on {slope_per_hour(late):+.1f} MB/h" if len(late) >= 2 else ""), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60, help="frames to time per case")
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds of play for the memory figure")
    parser.add_argument("--soak", type=float, default=0.0, help="play this many seconds, a line per minute")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: the app's choice)")
    parser.add_argument("--only", choices=("draw", "app", "memory"), default=None, help="one figure only")
    parser.add_argument("--size", default=f"{WIDTH}x{HEIGHT}", help="terminal size of the soak, COLSxROWS")
    args = parser.parse_args()
    from app.tui.app import configure_threads

    configure_threads(args.threads)
    print(f"quickstart, {args.size if args.soak else f'{WIDTH}x{HEIGHT}'}, torch threads {torch.get_num_threads()}, {os.cpu_count()} cores")
    if args.soak:
        cols, rows = (int(v) for v in args.size.lower().split("x"))
        soak(args.soak, (cols, rows))
        return 0
    ok = True
    if args.only in (None, "draw"):
        ok = report_draw(args.frames)
    if args.only in (None, "app"):
        ok = report_app(args.frames) and ok
    if args.only in (None, "memory"):
        report_rows(report_memory(args.seconds))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
