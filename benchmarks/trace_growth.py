"""Who keeps memory per measurement while the apps play? tracemalloc over real updates.

Run by hand (not in CI):

    python benchmarks/trace_growth.py [--updates 150] [--warm 30]

Plays ``quickstart`` through the paths the front ends run on each update, with the real
Engine: the web page's tick handler (``app.web.handlers.tick``: 25 steps, a measurement,
status, heatmaps and the four charts) and the terminal app's frame work (``driver.advance``
to the next measurement, then every panel drawn from the bounded view). After ``--warm``
updates (on a run given 10^6 steps of history first, so the bounded views are full) it
takes a tracemalloc snapshot, plays ``--updates`` more, and prints the growth
per history row: the history's arrays (``History.nbytes``) and everything else, with the
allocation sites that grew most. Anything that kept a copy per row (row dicts, lists of
values) would show there as hundreds of bytes a row.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import io
import sys
import tempfile
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import history_memory  # noqa: E402  (benchmarks/, next to this file)

LONG_STEPS = history_memory.LONG_STEPS


def prefill(engine) -> None:
    """Gives the engine 10^6 steps of history first, so the bounded views are full before tracing."""
    template = engine.history.rows_at(engine.history.last_step)
    engine._history = history_memory.as_history(template, LONG_STEPS, engine.config.measure.every)
    engine._step = LONG_STEPS
    engine._last = dataclasses.replace(engine._last, step=LONG_STEPS, measured_step=LONG_STEPS,
                                       history=engine._history)


def _trace(update, history, warm: int, updates: int, label: str) -> None:
    for _ in range(warm):
        update()
    gc.collect()
    tracemalloc.start(1)
    before, rows0, nbytes0 = tracemalloc.take_snapshot(), len(history()), history().nbytes
    for _ in range(updates):
        update()
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    rows, arrays = len(history()) - rows0, history().nbytes - nbytes0
    stats = [s for s in after.compare_to(before, "lineno") if s.size_diff]
    total = sum(s.size_diff for s in stats)
    print(f"{label}: {updates} updates, {rows} history rows; traced growth {total / rows:.0f} B/row, of which the "
          f"history's arrays {arrays / rows:.0f} B/row (capacity doubling included), the rest {(total - arrays) / rows:.0f}")
    for s in sorted(stats, key=lambda s: -s.size_diff)[:6]:
        frame = s.traceback[0]
        print(f"   {s.size_diff:>9,} B  {s.count_diff:>6,} objects  {frame.filename.split('site-packages/')[-1]}:{frame.lineno}")


def web(warm: int, updates: int) -> None:
    from app.web import handlers
    from app.web.handlers import WebApp
    from app.web.settings import WebSettings, web_limits

    with tempfile.TemporaryDirectory() as root:
        limits = dataclasses.replace(web_limits(), max_steps=3 * LONG_STEPS)
        app = WebApp.create(WebSettings(limits=limits, update_seconds=60), root=Path(root) / "sessions")
        try:
            handlers.load_page(app, "trace", {})
            prefill(app.store.get("trace").run.engine)
            handlers.play(app, "trace")

            def update():
                out = handlers.tick(app, "trace", 25, 1, False)
                assert "warning" not in out, out.get("warning")

            _trace(update, lambda: app.store.get("trace").run.engine.history, warm, updates, "web tick")
        finally:
            app.close()


def tui(warm: int, updates: int) -> None:
    from rich.console import Console

    from app.tui import charts, heatmaps, render, views
    from app.tui.driver import advance
    from app.tui.plotting import chart_text
    from core.config import preset_config
    from core.engine import Engine

    engine = Engine(preset_config("quickstart").replace(steps=2 * LONG_STEPS))
    prefill(engine)
    view = charts.new_view()

    def update():
        snap = advance([engine], None, lambda: False).snaps[0]
        console = Console(file=io.StringIO(), width=120, color_system="truecolor", force_terminal=True)
        view.update(snap.history)
        console.print(render.status_text(snap, "playing"))
        console.print(render.layer_table(snap, 1, 120, view))
        console.print(heatmaps.heatmap_pair(views.panels(snap, 1, "nfm-agop", False), 70, 26))
        for chart in (charts.loss_chart(view), charts.nfa_chart(view, 1, snap.g_star is not None)):
            console.print(chart_text(chart, 46, 13))

    _trace(update, lambda: engine.history, warm, updates, "terminal frame")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=150)
    parser.add_argument("--warm", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", choices=("web", "tui"), default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.only in (None, "tui"):
        tui(args.warm, args.updates)
    if args.only in (None, "web"):
        web(args.warm, args.updates)
    return 0


if __name__ == "__main__":
    sys.exit(main())
