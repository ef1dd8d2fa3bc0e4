"""The browser's memory over a long Play, measured without a test harness in the page.

Run by hand (not in CI), with Debian's chromium and the ``websockets`` package (requirements-dev):
    python benchmarks/web_renderer.py [--minutes 10] [--network] [--port 7875]

Playwright enables the DevTools Network domain on every page it drives, and Chromium then
keeps each response's data for the inspector: on this app's page, which receives an update
several times a second, that alone grew the renderer by about 25 MiB a minute (7 Dec; the
figure ``web_soak.py`` reports is that plus the app). This script starts Chromium itself
(headless, ``--remote-debugging-port``) on the README's ``python -m app.cli web`` server,
talks the DevTools protocol over one websocket (Runtime, Performance and HeapProfiler only;
``--network`` also enables Network, to show the difference), presses Play, and every
``--every`` seconds forces a garbage collection in the page and prints the steps shown, the
renderers' resident memory (summed, from /proc), the JS heap, the DOM node count and the
server's resident memory; at the end, the least-squares slopes from minute 1 and from minute 10 on.
Linux only.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from websockets.sync.client import connect

from web_longplay import renderer_rss_mib, rss_mib, serve, wait_up  # benchmarks/, next to this file


class Page:
    """One DevTools connection to a page: ``call`` waits for its answer; events are counted and dropped."""

    def __init__(self, ws):
        self._ws = ws
        self._ids = itertools.count(1)
        self._answers: dict[int, dict] = {}
        self._cond = threading.Condition()
        self.events = 0
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:  # reads everything Chromium sends, so it never waits on this client
        while True:
            try:
                message = json.loads(self._ws.recv())
            except Exception:  # the connection closed
                return
            with self._cond:
                if "id" in message:
                    self._answers[message["id"]] = message
                    self._cond.notify_all()
                else:
                    self.events += 1

    def call(self, method: str, **params) -> dict:
        i = next(self._ids)
        self._ws.send(json.dumps({"id": i, "method": method, "params": params}))
        with self._cond:
            if not self._cond.wait_for(lambda: i in self._answers, timeout=60):
                raise TimeoutError(f"no answer to {method}")
            answer = self._answers.pop(i)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    def value(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")



def slope_per_minute(samples: list[tuple[float, float]], skip_s: float = 60) -> float:
    """Least-squares slope of (seconds, MiB) samples taken after ``skip_s``, in MiB a minute."""
    xs, ys = zip(*[(t / 60, v) for t, v in samples if t >= skip_s]) if samples else ((), ())
    if len(xs) < 2:
        return float("nan")
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--every", type=float, default=30, help="seconds between samples")
    parser.add_argument("--network", action="store_true", help="enable the Network domain, as Playwright does")
    parser.add_argument("--port", type=int, default=7875)
    parser.add_argument("--cdp-port", type=int, default=9335)
    args = parser.parse_args()
    url = f"http://127.0.0.1:{args.port}"
    server = serve(args.port, 10**8)
    profile = tempfile.mkdtemp(prefix="nfa-renderer-")
    chrome = None
    try:
        wait_up(url)
        chrome = subprocess.Popen(
            ["/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--remote-debugging-port={args.cdp_port}",
             f"--user-data-dir={profile}", "--window-size=1280,900", "--disable-background-timer-throttling",
             "--disable-renderer-backgrounding", url + "/?preset=quickstart"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(60):
            try:
                targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{args.cdp_port}/json", timeout=5))
                break
            except OSError:
                time.sleep(1)
        else:
            raise SystemExit("chromium did not open its DevTools port")
        with connect(next(t for t in targets if t["type"] == "page")["webSocketDebuggerUrl"], max_size=None) as ws:
            play(Page(ws), server, args)
        return 0
    finally:
        if chrome is not None:
            chrome.terminate()
            chrome.wait(timeout=30)
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(profile, ignore_errors=True)


def play(page: Page, server, args) -> None:
    """Presses Play and prints a sample every ``args.every`` seconds, then the slopes."""
    page.call("Performance.enable")
    if args.network:
        page.call("Network.enable")
    for _ in range(120):
        if page.value("!!document.querySelector('#nfa-heat canvas.nfa-img[data-drawn]')"):
            break
        time.sleep(1)
    else:
        raise SystemExit("the page never drew its heatmaps")
    page.value("document.querySelector('#nfa-play').click()")
    print(f"# Chromium {'with' if args.network else 'without'} the Network domain; one page playing quickstart")
    print("seconds   steps  renderer MiB  JS heap MiB  DOM nodes  server MiB  DevTools events")
    renderer, server_mem = [], []
    start = time.monotonic()
    while time.monotonic() - start < args.minutes * 60:
        time.sleep(args.every)
        page.call("HeapProfiler.collectGarbage")
        metrics = {m["name"]: m["value"] for m in page.call("Performance.getMetrics")["metrics"]}
        elapsed = time.monotonic() - start
        step = page.value("(document.querySelector('#nfa-status .nfa-step') || {}).textContent || ''")
        r, s = renderer_rss_mib(), rss_mib(server.pid)
        renderer.append((elapsed, r))
        server_mem.append((elapsed, s))
        heap = page.call("Runtime.getHeapUsage")["usedSize"] / 2**20
        print(f"{elapsed:7.0f}  {step:>8}  {r:12.0f}  {heap:11.1f}  {metrics['Nodes']:9.0f}  {s:10.0f}  "
              f"{page.events:15,}", flush=True)
    for skip in (60, 600):
        if sum(t >= skip for t, _ in renderer) >= 2:
            print(f"# slopes from minute {skip // 60} on: renderer {slope_per_minute(renderer, skip):+.2f} MiB/min, "
                  f"server {slope_per_minute(server_mem, skip) * 60:+.1f} MiB/h")


if __name__ == "__main__":
    sys.exit(main())
