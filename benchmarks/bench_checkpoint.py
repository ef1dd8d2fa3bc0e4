"""What a checkpoint costs: one ``Engine.save(measure=False)`` of the digits preset, against its training steps.

Run by hand (not in CI):  python benchmarks/bench_checkpoint.py [--threads 1] [--steps 200] [--saves 10]

Reports, from the same process: the median time of a training step (no measurement), the
median time of a checkpoint save (config.json, metrics.csv, final.npz, state.npz, state.json;
no figures, nothing measured), their ratio (a checkpoint costs as much as N steps), the bytes
written, and the share of wall time spent checkpointing at the default interval.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from app.checkpoints import DEFAULT_EVERY_S  # noqa: E402
from core.config import preset_config  # noqa: E402
from core.engine import Engine  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--saves", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = preset_config("digits")
    cfg.device = "cpu"
    cfg.measure.every = 10**6  # time training steps alone
    engine = Engine(cfg)
    step_times = []
    for _ in range(args.steps):
        t = time.perf_counter()
        engine.step(1)
        step_times.append(time.perf_counter() - t)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "run"
        engine.save(folder, measure=False)  # warm: folder made, modules imported
        save_times = []
        for _ in range(args.saves):
            engine.step(1)
            t = time.perf_counter()
            engine.save(folder, measure=False)
            save_times.append(time.perf_counter() - t)
        size = sum(p.stat().st_size for p in folder.iterdir())
    step, save = statistics.median(step_times), statistics.median(save_times)
    params = sum(p.numel() for p in engine.model.parameters())
    print(f"digits preset: {cfg.model.depth}x{cfg.model.width} MLP, {params} parameters, {args.threads} thread(s)")
    print(f"training step     median {step * 1e3:8.2f} ms over {args.steps}")
    print(f"checkpoint save   median {save * 1e3:8.2f} ms over {args.saves} (min {min(save_times) * 1e3:.2f}, "
          f"max {max(save_times) * 1e3:.2f}); {size / 2**20:.2f} MiB written")
    print(f"ratio             one checkpoint = {save / step:.1f} training steps")
    print(f"at the default interval ({DEFAULT_EVERY_S:g} s): {100 * save / DEFAULT_EVERY_S:.3f}% of wall time")


if __name__ == "__main__":
    main()
