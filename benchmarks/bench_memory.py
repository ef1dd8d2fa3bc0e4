"""Peak memory of one full measurement: n points, a depth x width ReLU MLP, float32 (Linux only).

Run by hand:  python benchmarks/bench_memory.py [--n 20000] [--width 1024] [--depth 5] [--d 1024] [--settled]

Prints the resident-set peak during measure_model (+ every metrics.csv number), above the
resident set before it (model and data already in memory), and that peak as a multiple of
the float64 matrices the measurement returns (W, W0, K, NFM, AGOP and both centered ones
per layer). No measurement runs before (freed memory the process keeps would hide the
peak); the peak is reset with /proc/self/clear_refs just before the measurement.
``--settled``: first settle the process as ``python -m app.cli run`` does (app/process.py:
glibc keeps freed blocks under 32 MiB), to show the CLI's peak.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from core.config import ModelConfig  # noqa: E402
from core.diagnostics import measure_model  # noqa: E402
from core.ksweep import chunk_rows  # noqa: E402
from core.model import MLP  # noqa: E402


def _status(key: str) -> int:
    """A /proc/self/status value in bytes (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--depth", type=int, default=5)
    parser.add_argument("--d", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--settled", action="store_true", help="settle the process as the CLI does first")
    args = parser.parse_args()
    if args.settled:
        from app.process import settle_for_training

        settle_for_training()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    model = MLP(args.d, 10, ModelConfig(depth=args.depth, width=args.width, activation="relu"), gen)
    x = torch.randn(args.n, args.d, generator=gen)
    w0 = [w.detach().clone() * 0.9 for w in model.weights()]
    before = _status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak to the current resident set
    t0 = time.perf_counter()
    stats = measure_model(model, w0, x)
    row = [s.scalars() for s in stats]
    seconds = time.perf_counter() - t0
    peak = _status("VmHWM") - before
    returned = sum(getattr(s, k).nbytes for s in stats
                   for k in ("W", "W0", "K", "nfm", "agop", "centered_nfm", "centered_agop"))
    mib = 1 << 20
    print(f"n={args.n}, d={args.d}, {args.depth}x{args.width}, float32, {args.threads} threads, "
          f"chunk {chunk_rows(model)} points{', settled as the CLI' if args.settled else ''}: "
          f"measurement {seconds:.1f} s")
    print(f"peak memory above the resident set before: {peak / mib:.0f} MiB; returned matrices (float64): "
          f"{returned / mib:.0f} MiB; peak / returned = {peak / returned:.2f}; inputs x: {x.nbytes / mib:.0f} MiB")
    assert len(row) == args.depth


if __name__ == "__main__":
    main()
