"""The web app under a crowd of pages, in headless Chromium: Pause latency, Step clicks, server RSS.

Starts ``python -m app.cli web`` as its own process, opens ``--pages`` pages that all
play, then pauses them one by one, checks 2 s later that none shows a stale "running"
line or moved, clicks Step 100 times 10 ms apart on one page and checks the step
counter, closes every page and waits for the server to release the sessions. Prints the
server's RSS at start, after one page played and closed (``--warm``: what the server keeps
after its first visitor), with the pages playing, and after they closed.

Times are taken inside each page (``performance.now()``): a capture-phase listener notes
the Pause click, a MutationObserver on the status line notes every change with its
state and step. Pause latency is click to the first "paused" status; the page's update
interval is the median time between status changes that moved the step, over the
``--play`` seconds before its click; "updates after the click" counts the status
changes that still said "running" with a new step after the click.

    python benchmarks/web_crowd.py --pages 8 --port 7900
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from web_longplay import rss_mib, serve, wait_up  # noqa: E402

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
STATE = "() => document.querySelector('#nfa-status b')?.textContent"
STEP = "() => +document.querySelector('#nfa-status .nfa-step').textContent"
OBSERVE = """() => {
  const box = document.querySelector('#nfa-status');
  window.nfaLog = [];
  const note = () => {
    const b = box.querySelector('b'), s = box.querySelector('.nfa-step');
    window.nfaLog.push([performance.timeOrigin + performance.now(), b ? b.textContent : '', s ? +s.textContent : -1]);
  };
  new MutationObserver(note).observe(box, {subtree: true, childList: true, characterData: true});
  document.addEventListener('click', (e) => {
    if (e.target.closest && e.target.closest('#nfa-pause')) window.nfaPauseAt = performance.timeOrigin + performance.now();
  }, true);
  note();
}"""
"""Records, inside the page, every status change (time, state, step) and the Pause click's time."""


def open_pages(browser, url: str, n: int) -> list:
    pages = []
    for _ in range(n):
        tab = browser.new_page(viewport={"width": 1280, "height": 900})
        tab.goto(url + "?preset=quickstart&steps=100000")
        pages.append(tab)
    for tab in pages:
        tab.wait_for_selector("#nfa-heat canvas.nfa-img[data-drawn]", timeout=300_000)
        tab.evaluate(OBSERVE)
    return pages


def timings(tab, window_ms: float) -> dict:
    """From the page's own log: Pause latency, update interval before the click, updates after it."""
    log, click = tab.evaluate("() => [window.nfaLog, window.nfaPauseAt]")
    before = [(t, step) for t, state, step in log if click - window_ms <= t <= click and state == "running"]
    moves = [t for (t, step), (_, prev) in zip(before[1:], before) if step != prev]
    gaps = [b - a for a, b in zip(moves, moves[1:])]
    after = [(t, state, step) for t, state, step in log if t > click]
    paused = next((t for t, state, _ in after if state == "paused"), float("nan"))
    last = before[-1][1] if before else -1
    late = {step for t, state, step in after if t < paused and state == "running" and step != last}
    return dict(latency=(paused - click) / 1000, interval=statistics.median(gaps) / 1000 if gaps else float("nan"),
                late=len(late), click=click, log=log)


def pause_all(pages: list, window_s: float) -> list[tuple[dict, int, int]]:
    """Pauses the pages one by one; per page (its timings, step at the click, step when paused)."""
    out = []
    for tab in pages:
        before = tab.evaluate(STEP)
        tab.click("#nfa-pause")
        tab.wait_for_function(f"() => ({STATE})() === 'paused'", timeout=120_000)
        out.append((timings(tab, window_s * 1000), before, tab.evaluate(STEP)))
    return out


def click_step(tab, clicks: int = 100, gap_ms: int = 10) -> tuple[int, int, float, str]:
    """Step clicks ``gap_ms`` apart; returns (step before, step once it settled, seconds, the notices)."""
    before, t0 = tab.evaluate(STEP), time.monotonic()
    for _ in range(clicks):
        tab.click("#nfa-step", delay=0)
        tab.wait_for_timeout(gap_ms)
    last, still = tab.evaluate(STEP), 0.0
    while still < 5.0 and time.monotonic() - t0 < 300:
        time.sleep(0.5)
        now = tab.evaluate(STEP)
        still = still + 0.5 if now == last else 0.0
        last = now
    notes = tab.inner_text("#nfa-status").replace("\n", " | ")
    return before, last, time.monotonic() - t0 - still, notes


def warm_up(browser, url: str, seconds: float) -> None:
    """One page plays ``seconds`` and closes; returns once the server has had time to release it."""
    (tab,) = open_pages(browser, url, 1)
    tab.click("#nfa-play")
    time.sleep(seconds)
    tab.close()
    time.sleep(15)  # the heartbeat closes, Gradio runs the unload event


def report(n: int, results: list, stale: list, moved: list) -> None:
    lat = sorted(r[0]["latency"] for r in results)
    gaps = sorted(r[0]["interval"] for r in results)
    ratio = sorted(r[0]["latency"] / r[0]["interval"] for r in results)
    for i, (t, at_click, stopped) in enumerate(results):
        print(f"  page {i}: pause {t['latency']:.2f} s, update interval {t['interval']:.2f} s, "
              f"running updates after the click {t['late']}, step {at_click} at the click, {stopped} paused")
    print(f"pause latency with {n} pages playing: median {statistics.median(lat):.2f} s, max {lat[-1]:.2f} s; "
          f"update interval median {statistics.median(gaps):.2f} s (max {gaps[-1]:.2f} s); latency / interval "
          f"median {statistics.median(ratio):.2f}, max {ratio[-1]:.2f}; stale 'running' after 2 s: {stale}; "
          f"moved after pause: {moved}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=8)
    ap.add_argument("--port", type=int, default=7900)
    ap.add_argument("--play", type=float, default=20, help="seconds all pages play before the pauses")
    ap.add_argument("--shots", default="", help="folder for screenshots of the paused pages")
    ap.add_argument("--step-clicks", type=int, default=100, help="Step clicks 10 ms apart after the pauses (0: none)")
    ap.add_argument("--warm", type=int, default=1, help="first let one page play and close (the server's warm level)")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    server = serve(args.port, max_steps=200_000)
    try:
        url = f"http://127.0.0.1:{args.port}"
        wait_up(url)
        time.sleep(2)
        print(f"server RSS at start: {rss_mib(server.pid):.1f} MiB", flush=True)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            if args.warm:
                warm_up(browser, url, args.play)
                print(f"server RSS after one page played {args.play:g} s and closed: {rss_mib(server.pid):.1f} MiB",
                      flush=True)
            pages = open_pages(browser, url, args.pages)
            for tab in pages:
                tab.click("#nfa-play")
            time.sleep(args.play)
            playing = sum(tab.evaluate(f"({STATE})()") == "running" for tab in pages)
            print(f"{playing} of {args.pages} pages playing; server RSS {rss_mib(server.pid):.1f} MiB", flush=True)
            results = pause_all(pages, args.play)
            time.sleep(2)
            stale = [i for i, tab in enumerate(pages) if tab.evaluate(f"({STATE})()") != "paused"]
            moved = [i for i, (tab, r) in enumerate(zip(pages, results)) if tab.evaluate(STEP) != r[2]]
            report(args.pages, results, stale, moved)
            if args.shots:
                Path(args.shots).mkdir(parents=True, exist_ok=True)
                for i, tab in enumerate(pages):
                    tab.screenshot(path=f"{args.shots}/paused-{i}.png")
            if args.step_clicks:
                before, after, secs, notes = click_step(pages[0], args.step_clicks)
                print(f"{args.step_clicks} Step clicks 10 ms apart: step {before} -> {after} "
                      f"({(after - before) / 25:g} clicks' worth) in {secs:.1f} s; the page says: {notes}", flush=True)
            print(f"server RSS with {args.pages} sessions: {rss_mib(server.pid):.1f} MiB", flush=True)
            browser.close()
        time.sleep(15)  # heartbeats close, Gradio runs the unload events, the sessions go
        print(f"server RSS after the pages closed: {rss_mib(server.pid):.1f} MiB", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
