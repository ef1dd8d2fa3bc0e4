"""A long play against a served web app: server RSS and update cost, sampled every minute.

Starts ``python -m app.cli web`` as its own process (so the RSS is the server's alone;
``NFA_MAX_STEPS`` 10^7 so that Play does not stop at the session cap), then plays:

* by default, one headless Chromium page with the default run and ▶ Play, as a visitor
  would. The page logs every status change itself (``performance.now()``, a
  MutationObserver); once a minute the script also clicks *Centered* and times the click
  to the heatmaps showing the centered matrices (and clicks it back). Every ``--every``
  seconds one line: minutes, steps, server RSS (MiB), the median and p90 time between
  updates that moved the step counter (ms), the click's latency (ms), and the page's own
  memory: the RSS of its Chromium renderer and its JS heap (MiB);
* with ``--api``, one API session the way the page's timer does: one ``/step`` call of
  25 steps every 0.2 s; the line gives the server round trip instead.

At the end: first-minute vs last-minute latency (ratio) and the RSS slope (MB per hour,
least squares over the per-minute samples).

    python benchmarks/web_longplay.py --minutes 30 --port 7901 > longplay.txt
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def rss_mib(pid: int) -> float:
    """Resident set size of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def renderer_rss_mib() -> float:
    """RSS of the Chromium renderer processes this script started (descendants of this process), MiB."""
    parents, rss = {}, {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            status = (proc / "status").read_text()
            cmd = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        parents[int(proc.name)] = int(fields.get("PPid", "0"))
        if b"--type=renderer" in cmd and "VmRSS" in fields:
            rss[int(proc.name)] = int(fields["VmRSS"].split()[0]) / 1024

    def mine(pid: int) -> bool:
        while pid > 1:
            if pid == os.getpid():
                return True
            pid = parents.get(pid, 0)
        return False

    return sum(v for pid, v in rss.items() if mine(pid))


def wait_up(url: str, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url + "/config", timeout=5):
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"server at {url} did not come up")


def serve(port: int, max_steps: int) -> subprocess.Popen:
    env = {**os.environ, "NFA_MAX_STEPS": str(max_steps), "GRADIO_ANALYTICS_ENABLED": "False"}
    return subprocess.Popen([sys.executable, "-m", "app.cli", "web", "--host", "127.0.0.1", "--port", str(port)],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def slope_per_hour(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (minutes, MiB) samples, in MiB per hour."""
    if len(samples) < 2:
        return float("nan")
    xs, ys = [m for m, _ in samples], [r for _, r in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return 60 * sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else float("nan")


def summary(lines: list[tuple[float, float, float, float]], what: str) -> None:
    """lines: (minutes, rss, latency median, click latency); prints first vs last minute and the RSS slope."""
    if len(lines) < 2:
        return
    first, last = lines[0], lines[-1]
    print(f"# {what}: first minute {first[2]:.1f} ms, last minute {last[2]:.1f} ms, ratio {last[2] / first[2]:.2f}; "
          f"click latency first {first[3]:.0f} ms, last {last[3]:.0f} ms; RSS {first[1]:.1f} -> {last[1]:.1f} MiB, "
          f"slope {slope_per_hour([(m, r) for m, r, _, _ in lines]):+.1f} MiB/h", flush=True)


ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
LOG_JS = """() => {
  const box = document.querySelector('#nfa-status');
  window.nfaLog = [];
  new MutationObserver(() => {
    const s = box.querySelector('.nfa-step');
    const step = s ? +s.textContent : -1;
    const last = window.nfaLog[window.nfaLog.length - 1];
    if (!last || last[1] !== step) window.nfaLog.push([performance.now(), step]);
  }).observe(box, {subtree: true, childList: true, characterData: true});
}"""
"""Logs (time, step) in the page each time the status line's step changes."""
CLICK_JS = """async () => {
  const heat = document.querySelector('#nfa-heat'), box = document.querySelector('#nfa-centered input');
  const want = !box.checked, t0 = performance.now();
  const shows = () => heat.textContent.includes('centered NFM') === want;
  box.click();
  while (!shows()) { await new Promise(r => setTimeout(r, 5)); if (performance.now() - t0 > 60000) return -1; }
  return performance.now() - t0;
}"""
"""Clicks Centered and returns the ms until the heatmaps show it (polled every 5 ms)."""


def play_page(url: str, server, args) -> list:
    """One Chromium page plays the default run; a line per ``--every`` seconds."""
    from playwright.sync_api import sync_playwright

    lines = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        tab = browser.new_page(viewport={"width": 1280, "height": 720})
        tab.goto(url)
        tab.wait_for_selector("#nfa-heat canvas.nfa-img[data-drawn]", timeout=300_000)
        tab.evaluate(LOG_JS)
        tab.click("#nfa-play")
        print("minutes steps rss_mib update_ms_median update_ms_p90 click_ms page_rss_mib js_heap_mib", flush=True)
        t0, seen = time.monotonic(), 0
        while time.monotonic() - t0 < args.minutes * 60:
            time.sleep(max(0.0, args.every - 2.0))
            clicks = [tab.evaluate(CLICK_JS), tab.evaluate(CLICK_JS)]
            time.sleep(max(0.0, t0 + (len(lines) + 1) * args.every - time.monotonic()))
            log = tab.evaluate("(n) => window.nfaLog.slice(n)", seen)
            seen += len(log)
            gaps = sorted(b[0] - a[0] for a, b in zip(log, log[1:]))
            if not gaps:
                print(f"# no update in the last {args.every:.0f} s; status: {tab.inner_text('#nfa-status')!r}")
                break
            mins, rss = (time.monotonic() - t0) / 60, rss_mib(server.pid)
            med, p90 = statistics.median(gaps), gaps[int(0.9 * (len(gaps) - 1))]
            lines.append((mins, rss, med, statistics.median(clicks)))
            heap = tab.evaluate("() => performance.memory ? performance.memory.usedJSHeapSize / 1048576 : -1")
            print(f"{mins:.1f} {log[-1][1]} {rss:.1f} {med:.1f} {p90:.1f} {statistics.median(clicks):.0f} "
                  f"{renderer_rss_mib():.0f} {heap:.0f}", flush=True)
        browser.close()
    return lines


def play_api(url: str, server, args) -> list:
    """One API session, one ``/step`` call every ``--period`` seconds; a line per ``--every`` seconds."""
    from gradio_client import Client

    lines = []
    client = Client(url, verbose=False, download_files=False)
    t0 = next_sample = time.monotonic()
    costs: list[float] = []
    steps = 0
    print("minutes steps rss_mib update_ms_median update_ms_p90", flush=True)
    while time.monotonic() - t0 < args.minutes * 60:
        start = time.monotonic()
        client.predict(args.steps, 1, False, api_name="/step")
        costs.append((time.monotonic() - start) * 1000)
        steps += args.steps
        if time.monotonic() >= next_sample:
            costs.sort()
            p90 = costs[int(0.9 * (len(costs) - 1))]
            mins, rss = (time.monotonic() - t0) / 60, rss_mib(server.pid)
            lines.append((mins, rss, statistics.median(costs), float("nan")))
            print(f"{mins:.1f} {steps} {rss:.1f} {statistics.median(costs):.1f} {p90:.1f}", flush=True)
            costs, next_sample = [], next_sample + args.every
        time.sleep(max(0.0, args.period - (time.monotonic() - start)))
    client.close()
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--every", type=float, default=60, help="seconds between samples")
    ap.add_argument("--port", type=int, default=7901)
    ap.add_argument("--api", action="store_true", help="play through gradio_client instead of a Chromium page")
    ap.add_argument("--steps", type=int, default=25, help="steps per update (--api)")
    ap.add_argument("--period", type=float, default=0.2, help="seconds between updates, the page's timer (--api)")
    args = ap.parse_args()
    server = serve(args.port, max_steps=10_000_000)
    try:
        url = f"http://127.0.0.1:{args.port}"
        wait_up(url)
        print(f"# start rss_mib={rss_mib(server.pid):.1f}", flush=True)
        lines = (play_api if args.api else play_page)(url, server, args)
        time.sleep(2)
        print(f"# end rss_mib={rss_mib(server.pid):.1f}", flush=True)
        summary(lines, "server round trip" if args.api else "time between updates")
    finally:
        server.terminate()
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
