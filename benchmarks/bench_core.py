"""Core benchmark: diagnostics and training speed, as ratios against references in the same run.

Run by hand (not in CI):  python benchmarks/bench_core.py [--n 2000] [--threads 2]

1. All-layer diagnostics (K for every layer in one batched sweep, then NFM, AGOP, centered
   versions, correlations, SVD alignment, shares) versus a per-sample ``torch.func.jacrev``
   + ``vmap`` computation of K alone, layer by layer (how the paper's public code does it).
   Same weights and data; K agreement is checked in float64.
2. The K accumulation's achieved FLOP rate as a fraction of a plain matmul's rate.
3. Training steps without measurement versus a bare PyTorch loop on the same model and batches.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch.func import jacrev, vmap  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from core.config import RunConfig  # noqa: E402
from core.data import Dataset  # noqa: E402
from core.diagnostics import measure_model, ptk_covariances  # noqa: E402
from core.engine import Engine  # noqa: E402
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


def reference_k_layerwise(model: MLP, x: torch.Tensor) -> list[torch.Tensor]:
    """K_l one layer at a time: jacrev + vmap of the sub-network from h_l to the output."""
    phi = ACTIVATION_FNS[model.activation]
    weights = [layer.weight for layer in model.hidden]
    w_out = model.out.weight
    ks = []
    for l, h in enumerate(model.preactivations(x)):
        def tail(h_i, l=l):
            a = phi(h_i)
            for w in weights[l + 1:]:
                a = phi(w @ a)
            return w_out @ a
        with torch.no_grad():
            jac = vmap(jacrev(tail))(h)  # (n, c, k_l)
        ks.append(torch.einsum("nck,ncj->kj", jac, jac) / x.shape[0])
    return ks


def timed(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def check_agreement(n: int) -> float:
    """Max relative difference of K (float64), batched sweep versus per-sample reference."""
    model, x = make_model(n, torch.float64)
    ours = ptk_covariances(model, x)
    return max(float((a - b).abs().max() / b.abs().max())
               for ref in (reference_k(model, x), reference_k_layerwise(model, x))
               for a, b in zip(ours, ref))


def bench_diagnostics(n: int, repeats: int) -> dict[str, float]:
    """Median seconds: our full diagnostics, our K alone, and the two per-sample references."""
    model, x = make_model(n, torch.float32)
    w0 = [w.detach().clone() * 0.9 for w in model.weights()]
    return {
        "diagnostics": timed(lambda: measure_model(model, w0, x, "pearson", 1.0), repeats),
        "k_only": timed(lambda: ptk_covariances(model, x), repeats),
        "reference": timed(lambda: reference_k(model, x), repeats),
        "reference_layerwise": timed(lambda: reference_k_layerwise(model, x), max(1, repeats // 2)),
    }


def k_flops(model: MLP, n: int) -> float:
    """2 x multiply-adds of the forward sweep, the backward propagation and the K products.

    The last layer's K is (W_out^T W_out) * (D^T D): 2 n k_L^2, not 2 n c k_L^2.
    """
    widths = [model.hidden[0].in_features] + [layer.out_features for layer in model.hidden]
    c = model.out.out_features
    fwd = sum(2 * n * a * b for a, b in zip(widths, widths[1:]))
    ks = sum(2 * n * c * k * k for k in widths[1:-1]) + 2 * n * widths[-1] ** 2
    prop = sum(2 * n * c * a * b for a, b in zip(widths[1:-1], widths[2:]))
    return fwd + ks + prop


def bench_flop_rate(n: int, repeats: int) -> tuple[float, float]:
    model, x = make_model(n, torch.float32)
    t_k = timed(lambda: ptk_covariances(model, x), repeats)
    rate_k = k_flops(model, n) / t_k
    a = torch.randn(n * 10, 256)
    t_mm = timed(lambda: a.T @ a, repeats)
    rate_mm = 2 * n * 10 * 256 * 256 / t_mm
    return rate_k, rate_mm


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
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, n={args.n}")

    diff = check_agreement(min(args.n, 500))
    print(f"K agreement (float64, n={min(args.n, 500)}): max relative difference {diff:.2e} (target <= 1e-5)")
    t = bench_diagnostics(args.n, args.repeats)
    for ref in ("reference", "reference_layerwise"):
        print(f"{ref:>19}: per-sample jacrev+vmap K {t[ref] * 1e3:.0f} ms; all-layer diagnostics "
              f"{t['diagnostics'] * 1e3:.0f} ms: {t[ref] / t['diagnostics']:.2f}x; K alone "
              f"{t['k_only'] * 1e3:.0f} ms: {t[ref] / t['k_only']:.2f}x (target >= 8x)")
    rate_k, rate_mm = bench_flop_rate(args.n, args.repeats)
    print(f"K accumulation {rate_k / 1e9:.1f} GFLOP/s vs plain matmul {rate_mm / 1e9:.1f} GFLOP/s: "
          f"{rate_k / rate_mm:.2f} of matmul rate (target >= 0.7)")
    t_engine, t_bare = bench_training(200, args.repeats)
    print(f"training 200 steps: engine {t_engine * 1e3:.0f} ms vs bare loop {t_bare * 1e3:.0f} ms: "
          f"{t_engine / t_bare:.3f}x (target <= 1.15x)")


if __name__ == "__main__":
    main()
