"""Web soak: pages playing for a long time; server and browser memory, update cost, Pause latency.

Run by hand (not in CI), with Debian's chromium and the playwright package installed:
    python benchmarks/web_soak.py [--minutes 30] [--pages 1] [--port 7871]

Starts ``python -m app.cli web`` as its own process (the README's command, with
``NFA_MAX_STEPS`` 10^7 so that Play does not stop at the session cap), opens ``--pages``
headless Chromium pages on the ``quickstart`` preset and presses Play in each, then once a
minute prints: the server's resident memory, the Chromium renderers' resident memory
(summed), the steps each page shows, and the median time between two updates of the page
(from a log the page keeps of its status changes) in the minute just past. At the end it
presses Pause in every page and prints the time from the click to "paused" shown, and
whether the step then stays put; then the slopes (MiB per hour, fitted from minute 2 on)
and the last minute's update interval over the first's. Linux only (reads /proc).
``web_longplay.py`` times a Centered click over a long play instead (and plays through the API).

The renderers' memory here includes Playwright's: it enables the DevTools Network domain,
and Chromium keeps the page's responses for the inspector (about 25 MiB a minute on this
page). ``web_renderer.py`` measures the browser without it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from playwright.sync_api import sync_playwright

from web_longplay import ARGS, renderer_rss_mib, rss_mib, serve, wait_up  # benchmarks/, next to this file

CHROMIUM = os.environ.get("NFA_CHROMIUM", "/usr/bin/chromium")

OBSERVE = """() => {
  window.nfaLog = [];
  const box = document.querySelector('#nfa-status');
  new MutationObserver(() => {
    const b = box.querySelector('b'), s = box.querySelector('.nfa-step');
    const step = s ? +s.textContent : -1, last = window.nfaLog[window.nfaLog.length - 1];
    if (!last || last[2] !== step || last[1] !== (b ? b.textContent : ''))
      window.nfaLog.push([performance.now(), b ? b.textContent : '', step]);
    if (window.nfaLog.length > 5000) window.nfaLog.splice(0, 2500);
  }).observe(box, {subtree: true, childList: true, characterData: true});
  document.addEventListener('click', (e) => {
    if (e.target.closest && e.target.closest('#nfa-pause')) window.nfaPauseAt = performance.now();
  }, true);
}"""


def update_gaps(tab, since: float) -> list[float]:
    """Milliseconds between consecutive "running" step changes logged after ``since`` (page clock)."""
    log = tab.evaluate("() => window.nfaLog")
    moves = [t for t, state, _ in log if state == "running" and t >= since]
    return [b - a for a, b in zip(moves, moves[1:])]


def slope_per_hour(samples: list[tuple[float, float]], skip_s: float = 120) -> float:
    pts = [(t, v) for t, v in samples if t >= skip_s] or samples
    if len(pts) < 2:
        return float("nan")
    mt, mv = statistics.fmean(t for t, _ in pts), statistics.fmean(v for _, v in pts)
    den = sum((t - mt) ** 2 for t, _ in pts)
    return sum((t - mt) * (v - mv) for t, v in pts) / den * 3600 if den else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--pages", type=int, default=1)
    parser.add_argument("--port", type=int, default=7871)
    parser.add_argument("--every", type=float, default=60, help="seconds between samples")
    parser.add_argument("--probe", action="store_true",
                        help="also force a garbage collection in each page and print its JS heap, DOM nodes and listeners")
    args = parser.parse_args()
    url = f"http://127.0.0.1:{args.port}/"
    server = serve(args.port, max_steps=10_000_000)
    try:
        wait_up(url.rstrip("/"))
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS + ["--disable-background-timer-throttling",
                                                                                "--disable-renderer-backgrounding"])
            tabs = []
            for _ in range(args.pages):
                tab = browser.new_page(viewport={"width": 1280, "height": 900})
                tab.goto(url + "?preset=quickstart")
                tab.wait_for_selector("#nfa-heat canvas.nfa-img[data-drawn]", timeout=180_000)
                tab.evaluate(OBSERVE)
                tabs.append(tab)
            print(f"server RSS at start (pages loaded, paused): {rss_mib(server.pid):.0f} MiB; "
                  f"renderers {renderer_rss_mib():.0f} MiB", flush=True)
            cdps = []
            if args.probe:
                for tab in tabs:
                    cdp = tab.context.new_cdp_session(tab)
                    cdp.send("Performance.enable")
                    cdps.append(cdp)
            for tab in tabs:
                tab.click("#nfa-play")
            start = time.time()
            page_t0 = [tab.evaluate("() => performance.now()") for tab in tabs]
            marks = list(page_t0)
            server_mem, render_mem, gaps_by_minute = [], [], []
            print("sample  server MiB  renderers MiB  steps shown  median update gap ms", flush=True)
            minute = 0
            while time.time() - start < args.minutes * 60:
                minute += 1
                time.sleep(max(0.0, start + minute * args.every - time.time()))
                t = time.time() - start
                server_mem.append((t, rss_mib(server.pid)))
                render_mem.append((t, renderer_rss_mib()))
                gaps, steps = [], []
                for i, tab in enumerate(tabs):
                    gaps += update_gaps(tab, marks[i])
                    marks[i] = tab.evaluate("() => performance.now()")
                    steps.append(tab.inner_text("#nfa-status .nfa-step"))
                gap = statistics.median(gaps) if gaps else float("nan")
                for cdp in cdps:
                    cdp.send("HeapProfiler.collectGarbage")
                    m = {x["name"]: x["value"] for x in cdp.send("Performance.getMetrics")["metrics"]}
                    print(f"        page: JS heap {m['JSHeapUsedSize'] / 2**20:.1f} of {m['JSHeapTotalSize'] / 2**20:.1f} MiB,"
                          f" {m['Nodes']:.0f} nodes, {m['JSEventListeners']:.0f} listeners, {m['Documents']:.0f} documents;"
                          f" renderers after GC {renderer_rss_mib():.0f} MiB", flush=True)
                gaps_by_minute.append(gap)
                print(f"{minute:6d}  {server_mem[-1][1]:10.0f}  {render_mem[-1][1]:13.0f}  {','.join(steps):>11s}"
                      f"  {gap:8.0f}", flush=True)
            latencies, held = [], []
            for tab in tabs:
                tab.click("#nfa-pause")
            time.sleep(8)
            for tab in tabs:
                log, click = tab.evaluate("() => [window.nfaLog, window.nfaPauseAt]")
                paused = [(t, step) for t, state, step in log if t > click and state == "paused"]
                latencies.append(paused[0][0] - click if paused else float("nan"))
                after = {(state, step) for t, state, step in log if paused and t >= paused[0][0]}
                held.append(len(after) == 1)
            browser.close()
    finally:
        server.terminate()
        server.wait(30)
    print(f"Pause: click to 'paused' shown {', '.join(f'{x:.0f}' for x in latencies)} ms; "
          f"stayed paused at one step: {all(held)}")
    print(f"server RSS {server_mem[0][1]:.0f} -> {server_mem[-1][1]:.0f} MiB, slope "
          f"{slope_per_hour(server_mem):+.1f} MiB/h (from minute 2)")
    print(f"renderers RSS {render_mem[0][1]:.0f} -> {render_mem[-1][1]:.0f} MiB, slope "
          f"{slope_per_hour(render_mem):+.1f} MiB/h (from minute 2; Playwright's Network buffers included: "
          f"see web_renderer.py)")
    if len(gaps_by_minute) > 1:
        print(f"median update gap: minute 1 {gaps_by_minute[0]:.0f} ms, last minute {gaps_by_minute[-1]:.0f} ms "
              f"(ratio {gaps_by_minute[-1] / gaps_by_minute[0]:.2f})")


if __name__ == "__main__":
    main()
