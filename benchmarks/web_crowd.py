"""The web app under a crowd of pages, in headless Chromium: Pause latency, Step clicks, server RSS.

Starts ``python -m app.cli web`` as its own process, opens ``--pages`` pages that all
play, then pauses them one by one (latency = click to "paused" in the page), checks
2 s later that none shows a stale "running" line, clicks Step 100 times 10 ms apart on
one page and checks the step counter, closes every page and waits for the server to
release the sessions. Prints the server's RSS at start, with the pages playing, and
after they closed.

    python benchmarks/web_crowd.py --pages 8 --port 7976
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


def open_pages(browser, url: str, n: int) -> list:
    pages = []
    for _ in range(n):
        tab = browser.new_page(viewport={"width": 1280, "height": 900})
        tab.goto(url + "?preset=quickstart&steps=100000")
        pages.append(tab)
    for tab in pages:
        tab.wait_for_selector("#nfa-heat img.nfa-img", timeout=300_000)
    return pages


def pause_all(pages: list) -> list[tuple[float, int, int]]:
    out = []
    for tab in pages:
        before, t0 = tab.evaluate(STEP), time.monotonic()
        tab.click("#nfa-pause")
        tab.wait_for_function(f"() => ({STATE})() === 'paused'", timeout=120_000)
        out.append((time.monotonic() - t0, before, tab.evaluate(STEP)))
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=8)
    ap.add_argument("--port", type=int, default=7976)
    ap.add_argument("--play", type=float, default=20, help="seconds all pages play before the pauses")
    ap.add_argument("--shots", default="", help="folder for screenshots of the paused pages")
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
            pages = open_pages(browser, url, args.pages)
            for tab in pages:
                tab.click("#nfa-play")
            time.sleep(args.play)
            playing = sum(tab.evaluate(f"({STATE})()") == "running" for tab in pages)
            print(f"{playing} of {args.pages} pages playing; server RSS {rss_mib(server.pid):.1f} MiB", flush=True)
            results = pause_all(pages)
            time.sleep(2)
            stale = [i for i, tab in enumerate(pages) if tab.evaluate(f"({STATE})()") != "paused"]
            moved = [i for i, (tab, r) in enumerate(zip(pages, results)) if tab.evaluate(STEP) != r[2]]
            lat = sorted(r[0] for r in results)
            print(f"pause latency with {args.pages} pages playing: median {statistics.median(lat):.2f} s, "
                  f"max {lat[-1]:.2f} s; steps between click and stop: {[r[2] - r[1] for r in results]}; "
                  f"stale 'running' after 2 s: {stale}; moved after pause: {moved}", flush=True)
            if args.shots:
                Path(args.shots).mkdir(parents=True, exist_ok=True)
                for i, tab in enumerate(pages):
                    tab.screenshot(path=f"{args.shots}/paused-{i}.png")
            before, after, secs, notes = click_step(pages[0])
            print(f"100 Step clicks 10 ms apart: step {before} -> {after} ({(after - before) / 25:g} clicks' worth) "
                  f"in {secs:.1f} s; the page says: {notes}", flush=True)
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
