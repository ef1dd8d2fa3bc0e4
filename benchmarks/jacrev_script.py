"""The per-sample script the CLI replaces: the authors' MLP measurement loop (github
dmbeaglehole/centered_NFA, MLP/main.py and MLP/utils.py get_Ks), at the CLI's cadence.

K comes from ``torch.func.jacrev`` of the output with respect to zero perturbations added
to every pre-activation, ``vmap``-ped over minibatches of 1,024 points, as in get_Ks; then
per layer NFM, AGOP = W^T K W, their centered versions and the Pearson correlations
(mat_cov), and ||dW|| / ||W||. Data and schedule match ``python -m app.cli run --config
digits``: scikit-learn's digits (read from its bundled csv.gz, as the CLI does), per-feature
standardisation, targets one-hot minus 1/c, a bias-free 5 x 256 ReLU MLP, SGD lr 0.1,
batch 128, a measurement at step 0 and every ``--every`` steps on ``--n-measure`` fixed
training points, and losses at every measurement. Writes results.npz to ``--out``.

    python benchmarks/jacrev_script.py --steps 60 --every 1 --out /tmp/jacrev
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.func import jacrev, vmap


def digits() -> tuple[np.ndarray, np.ndarray]:
    root = Path(next(iter(importlib.util.find_spec("sklearn").submodule_search_locations)))
    with gzip.open(root / "datasets" / "data" / "digits.csv.gz", "rt") as f:
        data = np.loadtxt(f, delimiter=",")
    return data[:, :-1], data[:, -1].astype(np.int64)


class Net(nn.Module):
    """The authors' MLP: Linear (no bias) and ReLU layers; ``perturbs`` are added to each pre-activation."""

    def __init__(self, d: int, width: int, depth: int, classes: int):
        super().__init__()
        sizes = [d] + [width] * depth
        self.hidden = nn.ModuleList(nn.Linear(a, b, bias=False) for a, b in zip(sizes, sizes[1:]))
        self.out = nn.Linear(width, classes, bias=False)

    def forward(self, x, perturbs=None):
        for i, layer in enumerate(self.hidden):
            h = layer(x)
            x = torch.relu(h if perturbs is None else h + perturbs[i])
        return self.out(x)


def get_ks(net: Net, x: torch.Tensor, width: int) -> torch.Tensor:
    """Sum over points of J_l^T J_l for every layer, (L, k, k): jacrev w.r.t. zero perturbations, vmapped."""
    depth = len(net.hidden)
    ks = 0.0
    with torch.no_grad():
        for xmb in x.split(1024):
            def single(xi):
                perturbs = [torch.zeros(1, width) for _ in range(depth)]
                return jacrev(lambda p: net(xi.unsqueeze(0), p).squeeze(0))(perturbs)

            grads = torch.stack(vmap(single)(xmb)).squeeze(3)  # (L, n, c, k)
            grads = grads.moveaxis(-1, 1).reshape(depth, width, -1)
            ks = ks + grads @ grads.transpose(1, 2)
    return ks


def mat_cov(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.reshape(-1) - a.mean(), b.reshape(-1) - b.mean()
    return float(a @ b / a.norm() / b.norm())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--n-measure", type=int, default=1000)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--depth", type=int, default=5)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x_all, labels = digits()
    x_all = torch.tensor(x_all, dtype=torch.float32)
    y_all = torch.nn.functional.one_hot(torch.tensor(labels), 10).float() - 0.1
    perm = torch.randperm(len(x_all))
    train, test = perm[:1400], perm[1400:]
    mean, std = x_all[train].mean(0), x_all[train].std(0)
    x_all = (x_all - mean) / torch.where(std > 1e-12, std, torch.ones_like(std))
    x_tr, y_tr, x_te, y_te = x_all[train], y_all[train], x_all[test], y_all[test]
    x_meas = x_tr[torch.randperm(len(x_tr))[: args.n_measure]]
    net = Net(x_tr.shape[1], args.width, args.depth, 10)
    w0s = [layer.weight.detach().clone() for layer in net.hidden]
    opt = torch.optim.SGD(net.parameters(), lr=args.lr)
    loss_fn = nn.MSELoss()
    rows, order, pos = [], torch.randperm(len(x_tr)), 0
    for step in range(args.steps + 1):
        if step > 0:
            if pos >= len(order):
                order, pos = torch.randperm(len(x_tr)), 0
            idx = order[pos:pos + 128]
            pos += 128
            opt.zero_grad()
            loss = loss_fn(net(x_tr[idx]), y_tr[idx])
            loss.backward()
            opt.step()
        if step % args.every == 0 or step == args.steps:
            with torch.no_grad():
                train_loss, test_loss = float(loss_fn(net(x_tr), y_tr)), float(loss_fn(net(x_te), y_te))
            ks = get_ks(net, x_meas, args.width) / len(x_meas)
            for l, layer in enumerate(net.hidden):
                w = layer.weight.detach()
                dw = w - w0s[l]
                nfa = mat_cov(w.T @ ks[l] @ w, w.T @ w)
                cnfa = mat_cov(dw.T @ ks[l] @ dw, dw.T @ dw) if step else float("nan")
                rows.append((step, l + 1, nfa, cnfa, float(dw.norm() / w.norm()), train_loss, test_loss))
            print(f"step {step}: loss {train_loss:.4g} test {test_loss:.4g} "
                  f"UC-NFA {' '.join(f'{r[2]:.2f}' for r in rows[-args.depth:])}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez(args.out / "results.npz", rows=np.array(rows))


if __name__ == "__main__":
    main()
