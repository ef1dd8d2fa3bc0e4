"""Core benchmark: every figure of the measurement-speed issue, as ratios measured in one process.

Run by hand (not in CI):  python benchmarks/bench_core.py [--n 2000] [--threads 2] [--e2e-repeats 3] [--script-malloc]

1. The floor: the arithmetic any exact K needs (the Jacobian pushed back through every layer
   for every point, 2 n c k_{l+1} k_l FLOPs per layer, plus one Gram product per layer,
   2 n c k_l^2, the last layer's closed form 2 n k_L^2), divided by this process's plain
   matmul rate (2048^3, float32). K (the grouped sweep a measurement runs) and a full
   measurement (every number metrics.csv records and the matrices a snapshot holds) as
   fractions of the floor rate: floor time / time.
2. Per-sample jacrev+vmap K (the authors' get_Ks: jacrev w.r.t. zero perturbations of every
   pre-activation, vmapped over chunks of 1,024), warmed once; K agreement in float64 and float32.
3. Start-up: launch to the first line of ``python -m app.cli run --config quickstart``
   (printed once step 0 is measured) against ``python -c "import torch"``, alternated.
4. Figures: nfa.png and heatmaps.png of a digits run.
5. End to end: ``run --config digits`` for 60 steps measured every step on 1,000 points
   against benchmarks/jacrev_script.py at the same cadence (start-up included), alternated.
   The CLI settles its process for training (app/process.py: glibc keeps freed memory, the
   imports are frozen out of the GC); the script runs as a user would run it, and
   ``--script-malloc`` gives it the same malloc thresholds through glibc's environment
   variables too (a third run in each round).
6. Training steps without measurement versus a bare PyTorch loop on the same model and batches.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as app/__init__.py sets it for the commands (before numpy loads)

import torch  # noqa: E402
from torch.func import jacrev, vmap  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from app.process import settle_for_training  # noqa: E402
from core.config import RunConfig, preset_config  # noqa: E402
from core.data import Dataset  # noqa: E402
from core.diagnostics import SE_GROUPS, init_gram, measure_model  # noqa: E402
from core.engine import Engine  # noqa: E402
from core.ksweep import ptk_covariances, ptk_sweep  # noqa: E402
from core.model import ACTIVATION_FNS, MLP  # noqa: E402


def bench_config(n: int, dtype: str = "float32") -> RunConfig:
    """d=256 inputs, 5 hidden layers of width 256, 10 outputs (regression on random targets)."""
    return RunConfig.from_dict({
        "data": {"kind": "synthetic", "d": 256, "target": "x0*x1", "n_train": n, "n_test": 10},
        "model": {"depth": 5, "width": 256, "activation": "relu"},
        "optim": {"name": "sgd", "lr": 0.01, "batch_size": 128},
        "measure": {"every": 10**6, "n_points": n},
        "steps": 10, "dtype": dtype, "device": "cpu",
    })


def make_model(n: int, dtype: torch.dtype, outputs: int = 10) -> tuple[MLP, torch.Tensor]:
    cfg = bench_config(n)
    gen = torch.Generator().manual_seed(0)
    model = MLP(256, outputs, cfg.model, gen, dtype)
    x = torch.randn(n, 256, generator=gen, dtype=torch.float64).to(dtype)
    return model, x


def reference_k(model: MLP, x: torch.Tensor, chunk: int = 1024) -> list[torch.Tensor]:
    """K_l for all layers by per-sample Jacobians (jacrev + vmap), as the paper's public code does.

    A zero perturbation is added to every pre-activation h_l; one reverse-mode Jacobian of the
    output w.r.t. all perturbations gives J_l(x_i) for every layer, vmapped over chunks of points.
    """
    phi = ACTIVATION_FNS[model.activation]
    hidden, w_out = model.hidden, model.out.weight

    def output(x_i, deltas):
        a = x_i
        for layer, delta in zip(hidden, deltas):
            a = phi(layer.weight @ a + delta)
        return w_out @ a

    def per_sample(x_i):
        zeros = [torch.zeros(layer.out_features, dtype=x.dtype) for layer in hidden]
        return jacrev(lambda deltas: output(x_i, deltas))(zeros)

    ks = [torch.zeros(layer.out_features, layer.out_features, dtype=x.dtype) for layer in hidden]
    with torch.no_grad():
        for xb in x.split(chunk):
            for k, jac in zip(ks, vmap(per_sample)(xb)):  # jac: (m, c, k_l)
                flat = jac.reshape(-1, jac.shape[-1])
                k += flat.T @ flat
    return [k / x.shape[0] for k in ks]


def timed(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def check_agreement(n: int) -> tuple[float, float]:
    """Max relative difference of K against the per-sample reference: float64, and float32 vs float64."""
    model, x = make_model(n, torch.float64)
    ref = reference_k(model, x)
    ours64 = ptk_covariances(model, x)
    ours32 = ptk_covariances(copy.deepcopy(model).float(), x.float())
    return tuple(max(float((a.double() - b).abs().max() / b.abs().max()) for a, b in zip(ours, ref))
                 for ours in (ours64, ours32))


def floor_flops(model: MLP, n: int) -> float:
    """The issue's floor: 2 n c k_{l+1} k_l per propagation, 2 n c k_l^2 per Gram product, 2 n k_L^2 last."""
    widths = [layer.out_features for layer in model.hidden]
    c = model.out.out_features
    prop = sum(2 * n * c * a * b for a, b in zip(widths[:-1], widths[1:]))
    return prop + sum(2 * n * c * k * k for k in widths[:-1]) + 2 * n * widths[-1] ** 2


def interleaved(fns: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each function, run in turns (after one warm-up each) so drifts hit all."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(v) for name, v in times.items()}


def bench_measurement(n: int, repeats: int) -> dict[str, float]:
    """Median seconds: plain matmul (for the rate), K sweeps, measurements, jacrev+vmap K.

    ``light``: a measurement as the engine runs it between detailed ones: every number the
    contract's metrics.csv row records and the snapshot's matrices (the issue's "full
    measurement"; the SEs and diag_share are recorded at the cadence ``measure.detail_every``
    names, and this row leaves them empty). ``full``: a detailed measurement, which adds the
    jackknife SEs over 8 groups and diag_share's eigendecomposition.
    """
    model, x = make_model(n, torch.float32)
    w0 = [w.detach().clone() * 0.9 for w in model.weights()]
    grams = [init_gram(w) for w in w0]
    a = torch.randn(2048, 2048)

    def measurement(detailed):
        for s in measure_model(model, w0, x, "pearson", 1.0, detailed=detailed, init_grams=grams):
            s.scalars()  # every number the history row records

    t = interleaved({"matmul": lambda: a @ a, "k": lambda: ptk_sweep(model, x, SE_GROUPS),
                     "k1": lambda: ptk_sweep(model, x, 1), "full": lambda: measurement(True),
                     "light": lambda: measurement(False), "jacrev": lambda: reference_k(model, x)}, repeats)
    t["rate"] = 2 * 2048 ** 3 / t["matmul"]
    t["floor"] = floor_flops(model, n) / t["rate"]
    return t


def first_line_seconds(cmd: list[str], prefix: str = "") -> float:
    """Seconds from launch to the first stderr line starting with ``prefix`` (the process is then ended)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:
            if line.startswith(prefix):
                break
        else:
            proc.wait()
        return time.perf_counter() - t0
    finally:
        proc.kill()
        proc.wait()


def bench_startup(repeats: int, tmp: Path) -> tuple[float, float]:
    """Median seconds: ``import torch`` and the CLI's first line, alternated."""
    torch_t, cli_t = [], []
    for i in range(repeats):
        torch_t.append(first_line_seconds([sys.executable, "-c", "import torch"]))
        cli_t.append(first_line_seconds([sys.executable, "-m", "app.cli", "run", "--config", "quickstart",
                                         "--out", str(tmp / f"start{i}")], "run:"))
    return statistics.median(torch_t), statistics.median(cli_t)


def bench_figures(tmp: Path) -> tuple[float, float]:
    """Seconds to write a digits run's figures: first time (imports included), then the median."""
    cfg = preset_config("digits")
    cfg.steps, cfg.measure.every, cfg.device = 20, 10, "cpu"
    snap = Engine(cfg).run()
    t0 = time.perf_counter()
    from core.plots import write_figures

    write_figures(snap, tmp)
    first = time.perf_counter() - t0
    return first, timed(lambda: write_figures(snap, tmp), 3)


def bench_end_to_end(repeats: int, tmp: Path, script_malloc: bool = False) -> dict[str, list[float]]:
    """Wall seconds of the CLI run and the jacrev script per round, alternated (separate processes).

    ``script_malloc``: each round also runs the script with app/process.py's malloc thresholds
    given through glibc's environment variables (key ``script_malloc``).
    """
    from app.process import MMAP_THRESHOLD, TRIM_THRESHOLD

    cli = [sys.executable, "-m", "app.cli", "run", "--config", "digits", "--steps", "60", "--quiet",
           "--set", "measure.every=1", "--set", "measure.n_points=1000", "--set", "device=cpu"]
    script = [sys.executable, str(ROOT / "benchmarks" / "jacrev_script.py"), "--steps", "60", "--every", "1",
              "--threads", str(torch.get_num_threads())]  # the CLI gets as many through OMP_NUM_THREADS
    tuned = dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(MMAP_THRESHOLD), MALLOC_TRIM_THRESHOLD_=str(TRIM_THRESHOLD))
    runs = [("cli", cli, None), ("script", script, None)]
    if script_malloc:
        runs.append(("script_malloc", script, tuned))
    times: dict[str, list[float]] = {name: [] for name, _, _ in runs}
    for i in range(repeats):
        for name, cmd, env in runs:
            t0 = time.perf_counter()
            subprocess.run(cmd + ["--out", str(tmp / f"{name}{i}")], cwd=ROOT, check=True, capture_output=True, env=env)
            times[name].append(time.perf_counter() - t0)
    return times


def bench_dataset(n: int, outputs: int = 10) -> Dataset:
    """Random inputs (n, 256) and targets (n, 10), as a core Dataset."""
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 256, generator=gen), torch.randn(n, outputs, generator=gen)
    return Dataset(x_train=x, y_train=y, x_test=x[:10], y_test=y[:10], measure_index=torch.arange(n),
                   g_star=None, classes=0, description="benchmark")


def bench_training(steps: int, repeats: int) -> tuple[float, float]:
    """Engine.step(steps) versus a bare loop doing the same updates on the same batches."""
    cfg = bench_config(2000)
    data = bench_dataset(2000)
    engine = Engine(cfg, dataset=data)
    bare_model = copy.deepcopy(engine.model)
    opt = torch.optim.SGD(bare_model.parameters(), lr=cfg.optim.lr)
    order = Engine(cfg, dataset=data)
    batches = [order._batch_indices() for _ in range(steps)]
    x, y = data.x_train, data.y_train

    def bare():
        for idx in batches:
            opt.zero_grad(set_to_none=True)
            loss = F.mse_loss(bare_model(x[idx]), y[idx])
            loss.backward()
            opt.step()

    t_engine, t_bare = [], []
    bare()
    engine.step(steps)
    for _ in range(repeats):  # interleaved so drifts hit both
        t0 = time.perf_counter()
        engine.step(steps)
        t_engine.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        bare()
        t_bare.append(time.perf_counter() - t0)
    return statistics.median(t_engine), statistics.median(t_bare)




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--e2e-repeats", type=int, default=3)
    parser.add_argument("--script-malloc", action="store_true",
                        help="also time the jacrev script with the CLI's malloc thresholds (environment)")
    args = parser.parse_args()
    settle_for_training()  # as python -m app.cli does before it trains (app/process.py); the CLI runs below settle their own
    torch.set_num_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the subprocesses below use as many
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; n={args.n}, d=256, 5x256, c=10, float32")
    n_check = min(args.n, 500)
    d64, d32 = check_agreement(n_check)
    print(f"K vs per-sample jacrev (n={n_check}): max rel. difference float64 {d64:.1e} (target <= 1e-10), "
          f"float32 {d32:.1e} (target <= 1e-5)")
    t = bench_measurement(args.n, args.repeats)
    ms = lambda v: f"{v * 1e3:.0f} ms"  # noqa: E731
    print(f"plain matmul (2048^3, float32) {t['rate'] / 1e9:.0f} GFLOP/s -> floor {ms(t['floor'])}")
    print(f"K (sweep in 8 jackknife groups): {ms(t['k'])}, floor/time {t['floor'] / t['k']:.2f} (target >= 0.8); "
          f"one group: {ms(t['k1'])}, {t['floor'] / t['k1']:.2f}")
    print(f"full measurement (every number metrics.csv records at a measurement, the snapshot's matrices; "
          f"the SEs and diag_share at measure.detail_every): {ms(t['light'])}, floor/time "
          f"{t['floor'] / t['light']:.2f} (target >= 0.7)")
    print(f"detailed measurement (the jackknife SEs and diag_share's eigendecomposition too, every "
          f"detail_every-th): {ms(t['full'])}, floor/time {t['floor'] / t['full']:.2f}")
    amortised = (t["full"] + 9 * t["light"]) / 10
    print(f"mean per measurement at measure.detail_every = 10 (digits presets): {ms(amortised)}, floor/time "
          f"{t['floor'] / amortised:.2f}")
    print(f"warmed jacrev+vmap K: {ms(t['jacrev'])}, floor/time {t['floor'] / t['jacrev']:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t_torch, t_cli = bench_startup(args.repeats, tmp)
        print(f"start-up: import torch {t_torch:.2f} s, CLI to its first line (step 0 measured) {t_cli:.2f} s: "
              f"{t_cli / t_torch:.2f}x (target <= 1.3x)")
        first, again = bench_figures(tmp)
        print(f"figures (digits: nfa.png + heatmaps.png): {first:.2f} s the first time (imports "
              f"included), {again:.2f} s after")
        if args.e2e_repeats:
            e2e = bench_end_to_end(args.e2e_repeats, tmp, args.script_malloc)
            med = {name: statistics.median(v) for name, v in e2e.items()}
            rounds = ", ".join(f"{s / c:.2f}" for c, s in zip(e2e["cli"], e2e["script"]))
            print(f"end to end (digits 5x256, 60 steps, measured every step on 1,000 points): CLI {med['cli']:.1f} s, "
                  f"jacrev script {med['script']:.1f} s (medians of {args.e2e_repeats}): "
                  f"{med['script'] / med['cli']:.2f}x faster (target >= 1.3x); round by round {rounds}")
            if args.script_malloc:
                print(f"  the script with the CLI's malloc thresholds (environment): {med['script_malloc']:.1f} s, "
                      f"{med['script_malloc'] / med['cli']:.2f}x the CLI's time")
    t_engine, t_bare = bench_training(200, args.repeats)
    print(f"training 200 steps: engine {ms(t_engine)} vs bare loop {ms(t_bare)}: {t_engine / t_bare:.3f}x "
          f"(target <= 1.15x)")


if __name__ == "__main__":
    main()
