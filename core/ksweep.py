"""The K sweep: K_l = (1/n) sum_i J_l(x_i)^T J_l(x_i) for every hidden layer in one pass.

The output Jacobian is pushed back through the layers for a chunk of points at once
(``back = flat @ W_{l+1}``, then the activation derivative), and each K gets the chunk's
Gram product ``flat^T flat``. Only the upper triangle of each Gram product is computed
(blocked: the off-diagonal block once, the diagonal blocks recursively); the lower
triangle is filled by symmetry when the sweep ends. The last layer needs no (m, c, k)
tensor: K_L = (W_out^T W_out) * (D^T D) with D = phi'(h_L).

Points are split into ``groups`` contiguous parts (for the jackknife, core/jackknife.py);
each group's sums are kept apart, so K and every leave-one-group-out K come from the same
sweep. The points are swept in near-equal chunks of at most ``CHUNK_ELEMENTS`` entries of
the propagated Jacobian (a chunk may span two groups: it is propagated once and each
group's rows get their own Gram product), so memory stays bounded whatever n is, and a chunk's products
stay in cache: 2-4 MiB chunks ran the 5x256 sweep at 0.8-0.9 of the floor rate where
16 MiB ones ran at 0.67-0.76 (benchmarks/bench_core.py, 1 thread, a shared machine).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from core.model import MLP, activation_derivative

CHUNK_ELEMENTS = 1 << 20
"""rows * c * k of the propagated Jacobian held at once (4 MiB in float32)."""
GRAM_LEAF = 128
"""Gram blocks at most this wide are computed whole; wider ones are split in two."""


@dataclass(frozen=True)
class Sweep:
    """Per-group sums of J_l^T J_l: ``sums[l]`` is (groups, k_l, k_l), symmetric; ``counts`` points per group."""

    sums: list[torch.Tensor]
    counts: tuple[int, ...]
    outputs: torch.Tensor | None = None
    """The model's outputs at the swept points (n, c), when asked for: the sweep's forward pass gives them."""

    @property
    def n(self) -> int:
        return sum(self.counts)

    def covariances(self) -> list[torch.Tensor]:
        """K_1..K_L over all points."""
        return [s.sum(0) / self.n for s in self.sums]


def group_bounds(n: int, groups: int) -> list[tuple[int, int]]:
    """Contiguous (start, stop) ranges of near-equal size (sizes differ by at most one)."""
    groups = max(1, min(groups, n))
    base, extra = divmod(n, groups)
    bounds, start = [], 0
    for g in range(groups):
        stop = start + base + (g < extra)
        bounds.append((start, stop))
        start = stop
    return bounds


def chunk_rows(model: MLP) -> int:
    """Points per chunk so the propagated Jacobian stays within CHUNK_ELEMENTS."""
    widths = [layer.out_features for layer in model.hidden]
    return max(1, CHUNK_ELEMENTS // (model.out.out_features * max(widths)))


def ptk_sweep(model: MLP, x: torch.Tensor, groups: int = 1, outputs: bool = False) -> Sweep:
    """Group sums of J_l^T J_l over the points x (n, d), in the model's dtype, on x's device.

    ``outputs``: also keep the model's outputs at x (``Sweep.outputs``), from the forward pass
    the sweep runs anyway (the engine's training loss reuses them for the measured points).
    """
    widths = [layer.out_features for layer in model.hidden]
    bounds = group_bounds(x.shape[0], groups)
    sums = [torch.zeros(len(bounds), k, k, dtype=x.dtype, device=x.device) for k in widths]
    chunk = chunk_rows(model)
    outs = [] if outputs else None
    n = x.shape[0]
    with torch.no_grad():  # near-equal chunks over all points; a chunk's rows may span groups (segments)
        for lo, hi in group_bounds(n, -(-n // chunk)):
            segments = [(g, max(a, lo) - lo, min(b, hi) - lo) for g, (a, b) in enumerate(bounds) if a < hi and b > lo]
            _accumulate(model, x[lo:hi], sums, segments, outs)
        w_out = model.out.weight
        sums[-1] = (w_out.T @ w_out)[None] * _symmetrize(sums[-1])  # K_L = (W_out^T W_out) * (D^T D)
        sums[:-1] = [_symmetrize(s) for s in sums[:-1]]
    out = None if outs is None else (torch.cat(outs) if outs else x.new_zeros(0, model.out.out_features))
    return Sweep(sums=sums, counts=tuple(b - a for a, b in bounds), outputs=out)


def _accumulate(model: MLP, x: torch.Tensor, sums: list[torch.Tensor], segments, outs: list | None = None) -> None:
    """Adds one chunk's upper-triangle Gram products to each group's sums (D_L^T D_L for the last layer).

    ``segments``: (group, first, stop) row ranges of the chunk; the propagation runs once for
    the whole chunk, the Gram products once per segment.
    """
    hs = model.preactivations(x)
    if outs is not None:
        outs.append(model.head(hs[-1]))
    m, c = x.shape[0], model.out.out_features
    last = activation_derivative(model.activation, hs[-1])  # (m, k_L)
    for g, a, b in segments:
        gram_upper_(sums[-1][g], last[a:b])
    if len(hs) == 1:
        return
    flat = (model.out.weight[None, :, :] * last[:, None, :]).reshape(m * c, -1)  # (m*c, k_L)
    for l in range(len(hs) - 2, -1, -1):
        back = (flat @ model.hidden[l + 1].weight).reshape(m, c, -1)  # (m, c, k_l): d f / d a_l
        back.mul_(activation_derivative(model.activation, hs[l])[:, None, :])
        flat = back.reshape(m * c, -1)
        for g, a, b in segments:
            gram_upper_(sums[l][g], flat[a * c:b * c])


def gram_upper_(acc: torch.Tensor, f: torch.Tensor, leaf: int | None = None) -> None:
    """acc += f^T f on and above the diagonal (below it acc gets partial garbage; see _symmetrize)."""
    leaf = GRAM_LEAF if leaf is None else leaf
    k = f.shape[1]
    if k <= leaf:
        acc.addmm_(f.T, f)
        return
    h = k // 2
    gram_upper_(acc[:h, :h], f[:, :h], leaf)
    acc[:h, h:].addmm_(f[:, :h].T, f[:, h:])
    gram_upper_(acc[h:, h:], f[:, h:], leaf)


def _symmetrize(upper: torch.Tensor) -> torch.Tensor:
    """The symmetric matrices whose upper triangles (diagonal included) are ``upper``'s (..., k, k)."""
    return torch.triu(upper) + torch.triu(upper, 1).transpose(-1, -2)


def ptk_covariances(model: MLP, x: torch.Tensor) -> list[torch.Tensor]:
    """K_1..K_L (each k_l x k_l) over the points x (n, d), in the model's dtype."""
    return ptk_sweep(model, x).covariances()
