"""Web latency: one tick of the page (the chosen steps, a measurement, every picture).

Run by hand (not in CI):  python benchmarks/bench_web.py [--ticks 60] [--steps 25] [--threads 2]

Calls the tick handler directly, as Gradio would on each timer event while playing,
for the ``quickstart`` preset (the page's default) and, separately, for the compare view
(two runs per tick). Prints the median and 90th percentile in milliseconds, plus the
bytes a tick sends to the browser. The target is a median of at most 150 ms on a
2-core CPU for the single run.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from app.web import handlers  # noqa: E402
from app.web.form import form_values  # noqa: E402
from app.web.handlers import WebApp  # noqa: E402
from app.web.settings import WebSettings  # noqa: E402

TARGET_MS = 150.0


def time_ticks(app: WebApp, key: str, ticks: int, steps: int, warmup: int = 5) -> tuple[list[float], int]:
    """Milliseconds per tick (after ``warmup`` ticks) and the HTML bytes of the last one."""
    handlers.play(app, key)
    times, out = [], {}
    for i in range(warmup + ticks):
        if app.store.get(key).runs()[0].engine.step_count + steps > 1900:
            handlers.reset(app, key, form_values(app.store.get(key).runs()[0].engine.config))
            handlers.play(app, key)
        start = time.perf_counter()
        out = handlers.tick(app, key, steps, 1, False)
        elapsed = (time.perf_counter() - start) * 1000
        assert "warning" not in out, out.get("warning")
        if i >= warmup:
            times.append(elapsed)
    return times, sum(len(out.get(k, "")) for k in ("status", "heat", "curves"))


def summary(name: str, times: list[float], size: int) -> float:
    median = statistics.median(times)
    p90 = sorted(times)[int(0.9 * (len(times) - 1))]
    print(f"{name:<28} median {median:6.1f} ms   p90 {p90:6.1f} ms   ({len(times)} ticks, {size / 1024:.0f} KiB/tick)")
    return median


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=60)
    parser.add_argument("--steps", type=int, default=25, help="steps per update (the page's default is 25)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{args.threads} threads; quickstart preset, {args.steps} steps per tick")
    with tempfile.TemporaryDirectory() as root:
        app = WebApp.create(WebSettings(), root=Path(root) / "sessions")
        try:
            handlers.load_page(app, "bench", {})
            median = summary("tick (single run)", *time_ticks(app, "bench", args.ticks, args.steps))
            engine = app.store.get("bench").run.engine
            handlers.toggle_compare(app, "bench", form_values(engine.config))
            summary("tick (compare: two runs)", *time_ticks(app, "bench", args.ticks // 2, args.steps))
        finally:
            app.close()
    ok = median <= TARGET_MS
    print(f"target: median <= {TARGET_MS:.0f} ms for the single run: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
