"""Web latency: one playing update of the page, fresh and after 10^6 steps; chart renderers compared.

Run by hand (not in CI):
    python benchmarks/bench_web.py [--ticks 40] [--steps 25] [--threads 2]

1. ``tick``: the tick handler, called directly as Gradio does on each timer event while
   playing (the chosen steps, a measurement, status + heatmaps + the four charts), for
   the ``quickstart`` preset; then the same run after 10^6 steps of history (synthesised:
   20,000 measurements appended to the engine's history, the step counter moved to 10^6),
   and the compare view (three arms per tick). Median, 90th percentile, bytes per tick.
   Target: median <= 150 ms for the single run, fresh and after 10^6 steps. Then the
   memory of the history: bytes per row (``history_memory.py``: the old list of row dicts
   vs the columnar History, 10^6 steps of rows) and MB per hour at the page's play rate
   (rows per tick, measured, over the timer's period or the tick's time if longer).
2. ``renderers``: the four single-run charts of one update, built from the same bounded
   views (fresh: 40 measurements; 10^6 steps: 20,000) as plotly JSON for ``gr.Plot`` (what the
   page uses), as ``gr.LinePlot`` data (a pandas frame through its postprocess), and as
   the matplotlib figure the exported PNG uses. (The hand-drawn PIL row of README's table
   came from an earlier ``--png-from`` flag, removed: it executed code read from git history.)
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from app.web import charts, handlers  # noqa: E402
from app.web.handlers import WebApp  # noqa: E402
from app.web.sessions import curve_view  # noqa: E402
from app.web.settings import WebSettings, web_limits  # noqa: E402
from core.history import History  # noqa: E402

import history_memory  # noqa: E402  (benchmarks/, next to this file)

TARGET_MS = 150.0
LONG_STEPS = 1_000_000
WARMUP = 3


def time_ticks(app: WebApp, key: str, ticks: int, steps: int, warmup: int = WARMUP) -> tuple[list[float], int]:
    """Milliseconds per tick (after ``warmup`` ticks) and the bytes the last one sends."""
    handlers.play(app, key)
    times, out = [], {}
    for i in range(warmup + ticks):
        start = time.perf_counter()
        out = handlers.tick(app, key, steps, 1, False)
        elapsed = (time.perf_counter() - start) * 1000
        assert "warning" not in out, out.get("warning")
        assert app.store.get(key).playing, "the run stopped: the benchmark would time pictures only"
        if i >= warmup:
            times.append(elapsed)
    size = len(out["status"]) + len(out["heat"]) + sum(len(c.plot) for c in out["curves"])
    return times, size


def summary(name: str, times: list[float], size: int) -> float:
    median = statistics.median(times)
    p90 = sorted(times)[int(0.9 * (len(times) - 1))]
    print(f"{name:<34} median {median:6.1f} ms   p90 {p90:6.1f} ms   ({len(times)} ticks, {size / 1024:.0f} KiB/tick)")
    return median


def long_rows(rows: list[dict], every: int, until: int) -> list[dict]:
    """Rows measured every ``every`` steps up to ``until``, values varying like a real run's."""
    per_step = [r for r in rows if r["step"] == rows[-1]["step"]]
    out = []
    for i, step in enumerate(range(every, until + 1, every)):
        wobble = 0.05 * math.sin(i / 97)
        for r in per_step:
            out.append({**r, "step": step, "uc_nfa": (r["uc_nfa"] or 0) + wobble,
                        "train_loss": r["train_loss"] * (1 + wobble)})
    return out


def grow_history(app: WebApp, key: str, until: int = LONG_STEPS) -> None:
    """Gives the session's run ``until`` steps of history (the benchmark's stand-in for hours of play)."""
    engine = app.store.get(key).run.engine
    every = engine.config.measure.every
    engine._history = engine.history.extend(long_rows(list(engine.history.rows), every, until))
    engine._step = until


def bench_ticks(args) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as root:
        limits = dataclasses.replace(web_limits(), max_steps=3 * LONG_STEPS)  # room to play past 10^6 steps
        app = WebApp.create(WebSettings(limits=limits, update_seconds=60), root=Path(root) / "sessions")
        try:
            handlers.load_page(app, "bench", {})
            engine = app.store.get("bench").run.engine
            rows0 = len(engine.history)
            fresh = summary("tick, fresh (single run)", *time_ticks(app, "bench", args.ticks, args.steps))
            rows_per_tick = (len(engine.history) - rows0) / (args.ticks + WARMUP)
            template = engine.history.rows_at(engine.history.last_step)
            handlers.load_page(app, "long", {})
            grow_history(app, "long")
            long = summary(f"tick, after {LONG_STEPS:.0e} steps (single)",
                           *time_ticks(app, "long", args.ticks, args.steps))
            app.store.close("long")
            from app.web.form import form_values

            handlers.toggle_compare(app, "bench", form_values(engine.config))
            summary("tick, compare (three arms)", *time_ticks(app, "bench", max(args.ticks // 2, 5), args.steps))
        finally:
            app.close()
    report_rows(template, engine.config.measure.every, rows_per_tick, fresh)
    return fresh, long


def report_rows(template: list[dict], every: int, rows_per_tick: float, tick_ms: float) -> None:
    """Bytes per history row (before/now) and MB per hour at the page's play rate.

    Playing, the page's timer asks for an update every TICK_SECONDS, or as soon as the last
    one is done when it took longer: rows per second = rows per tick / max(TICK_SECONDS, tick).
    """
    from app.web.layout import TICK_SECONDS

    seconds = max(TICK_SECONDS, tick_ms / 1000)
    costs = history_memory.row_costs(template, every)
    history_memory.print_row_costs(costs)
    print(f"web play: {rows_per_tick:.2f} history rows per tick, a tick every {seconds:.3f} s "
          f"(timer {TICK_SECONDS} s, median tick {tick_ms:.0f} ms)")
    history_memory.print_per_hour("web app", costs, rows_per_tick / seconds)


# -- renderers ---------------------------------------------------------------------------------

class _Snap:
    g_star = object()


def _history(measurements: int, every: int = 50) -> History:
    rows = []
    for i in range(measurements):
        for layer in (1, 2):
            rows.append({"step": i * every, "layer": layer, "uc_nfa": 0.5 + 0.3 * math.sin(i / 50 + layer),
                         "c_nfa": 0.9, "rel_movement": 0.01 * math.log1p(i) * layer, "train_loss": 2 / (1 + i),
                         "test_loss": 2.2 / (1 + i), "feature_quality": 0.3 + 0.2 * math.tanh(i / 500),
                         "init_share": 1 / (1 + i / 100), "cross_share": 0.05, "centered_share": 1 - 1 / (1 + i / 100)})
    return History(rows)


def _plotly(chart_list) -> int:
    return sum(len(charts.plot_data(c).plot) for c in chart_list)


def _lineplot():
    import gradio as gr
    import pandas as pd

    component = gr.LinePlot(x="step", y="value", color="series")

    def render(chart_list) -> int:
        size = 0
        for c in chart_list:
            frame = pd.concat([pd.DataFrame({"step": ln.x, "value": ln.y, "series": ln.name}) for ln in c.lines])
            size += len(component.postprocess(frame).model_dump_json())
        return size
    return render


def _matplotlib(chart_list) -> int:
    from app.web.exports import charts_image

    return len(charts_image(chart_list, 900).tobytes())


def bench_renderers(args) -> None:
    renderers = [("plotly JSON (gr.Plot)", _plotly), ("gr.LinePlot data", _lineplot()),
                 ("matplotlib (export PNG)", _matplotlib)]
    for measurements in (40, LONG_STEPS // 50):
        view = curve_view()
        view.update(_history(measurements))
        chart_list = charts.single_charts(view, _Snap(), 1)
        for name, render in renderers:
            render(chart_list)
            times, size = [], 0
            for _ in range(args.repeat):
                start = time.perf_counter()
                size = render(chart_list)
                times.append((time.perf_counter() - start) * 1000)
            print(f"charts {measurements * 50:>8} steps  {name:<30} median {statistics.median(times):6.1f} ms"
                  f"   ({size / 1024:.0f} KiB)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=40)
    parser.add_argument("--steps", type=int, default=25, help="steps per update (the page's default is 25)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=15, help="renders per renderer")
    parser.add_argument("--only", choices=("ticks", "renderers"), default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{args.threads} threads; quickstart preset, {args.steps} steps per tick")
    ok = True
    if args.only in (None, "renderers"):
        bench_renderers(args)
    if args.only in (None, "ticks"):
        fresh, long = bench_ticks(args)
        ok = fresh <= TARGET_MS and long <= TARGET_MS
        print(f"long/fresh ratio {long / fresh:.2f} (target <= 1.2); "
              f"target median <= {TARGET_MS:.0f} ms fresh and after 10^6 steps: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
