"""A long play against a served web app: server RSS and update cost, sampled every minute.

Starts ``python -m app.cli web`` as its own process (so the RSS is the server's alone),
then plays one API session the way the page's timer does: one ``/step`` call of 25
steps every 0.2 s. Every ``--every`` seconds it prints one line: minutes, steps, server
RSS (MiB), and the median server round trip of the updates since the last line (ms).

    python benchmarks/web_longplay.py --minutes 30 --port 7971 > longplay.txt
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--every", type=float, default=60, help="seconds between samples")
    ap.add_argument("--port", type=int, default=7971)
    ap.add_argument("--steps", type=int, default=25, help="steps per update")
    ap.add_argument("--period", type=float, default=0.2, help="seconds between updates (the page's timer)")
    args = ap.parse_args()
    from gradio_client import Client

    server = serve(args.port, max_steps=10_000_000)
    try:
        url = f"http://127.0.0.1:{args.port}"
        wait_up(url)
        print(f"# start rss_mib={rss_mib(server.pid):.1f}", flush=True)
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
                print(f"{(time.monotonic() - t0) / 60:.1f} {steps} {rss_mib(server.pid):.1f} "
                      f"{statistics.median(costs):.1f} {p90:.1f}", flush=True)
                costs, next_sample = [], next_sample + args.every
            time.sleep(max(0.0, args.period - (time.monotonic() - start)))
        client.close()
        time.sleep(2)
        print(f"# end rss_mib={rss_mib(server.pid):.1f}", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
