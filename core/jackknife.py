"""Sampling standard error of UC-NFA and C-NFA: a delete-one-group jackknife over the K sweep's groups.

The measurement set is split into G contiguous groups (core/ksweep.py keeps each group's sum
of J^T J apart). Replicate g recomputes the correlation with K_(-g), the K of all points but
group g's, and

    SE = sqrt((G - 1) / G * sum_g (rho_(-g) - mean_g rho_(-g))^2).

With alpha = 1 no replicate needs a new AGOP: for V = W (or dW), N = V^T V, A = V^T K V,
G_V = V V^T, b = V 1 and E_g = K_(-g) - K,

    <N_c, A_(-g)>    = <N_c, A> + <V N_c V^T, E_g>          (linear in E_g)
    ||A_(-g)||_F^2   = ||A||^2 + 2 <G_V K G_V, E_g> + tr(E_g G_V E_g G_V)
    sum(A_(-g))      = sum(A) + b^T E_g b

(N_c = N minus its mean entry for pearson, N itself for cosine), so a replicate costs one
k x k product (the quadratic term) instead of a new AGOP and correlation. The result is the
exact jackknife, not a linearisation (tested against K recomputed on each held-out subset).
"""

from __future__ import annotations

import torch


def replicate_deltas(sums: torch.Tensor, counts: tuple[int, ...]) -> torch.Tensor:
    """E_g = K_(-g) - K for every group g: (G, k, k), from the group sums (G, k, k)."""
    n = sum(counts)
    total = sums.sum(0)
    k = total / n
    return torch.stack([(total - s) / (n - c) - k for s, c in zip(sums, counts)])  # no host-to-device copy


def replicate_correlations(v: torch.Tensor, nfm: torch.Tensor, agop: torch.Tensor, k: torch.Tensor,
                           e: torch.Tensor, kind: str, quad_dtype: torch.dtype | None = None) -> torch.Tensor:
    """rho(V^T V, V^T K_(-g) V) for every group g (alpha = 1), as a (G,) tensor, on v's device.

    The k x k products that weigh the E_g (G_V, G_V^2, G_V K G_V and the quadratic term) may
    be computed in a lower ``quad_dtype`` (the sweep's float32, the dtype K was summed in):
    their relative rounding (1e-7) moves each replicate by about 1e-8, far below the spread
    of the replicates that the SE measures. The replicates' base values (<N_c, A>, ||A||)
    stay in v's dtype.
    """
    low = quad_dtype or e.dtype
    v_low = v.to(low)
    gram = v_low @ v_low.T
    b = v.sum(1)
    square = (gram @ gram).to(v.dtype)
    if kind == "pearson":
        mu = nfm.mean()
        m = square - mu * torch.outer(b, b)  # V (N - mu 1 1^T) V^T
        n_norm = torch.linalg.vector_norm(nfm - mu)
        num0 = ((nfm - mu) * agop).sum()
    else:
        m = square
        n_norm = torch.linalg.vector_norm(nfm)
        num0 = (nfm * agop).sum()
    y = (gram @ k.to(low) @ gram).to(v.dtype)
    quad = _quadratic(e, gram, low)
    flat = e.reshape(e.shape[0], -1)
    num = num0 + flat @ m.reshape(-1)
    sq = (agop * agop).sum() + 2 * (flat @ y.reshape(-1)) + quad
    if kind == "pearson":
        total = agop.sum() + (e @ b) @ b
        sq = sq - total * total / agop.numel()
    return num / (n_norm * sq.clamp(min=0).sqrt())


def _quadratic(e: torch.Tensor, gram: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """tr(E_g G E_g G) for every g, as one (G k, k) x (k, k) product."""
    x = (e.to(dtype).reshape(-1, e.shape[-1]) @ gram.to(dtype)).reshape(e.shape)
    return (x * x.transpose(1, 2)).sum((1, 2)).to(e.dtype)


def standard_error(replicates: torch.Tensor) -> torch.Tensor:
    """The jackknife standard error of G replicate values (a 0-d tensor; NaN when G < 2)."""
    g = replicates.shape[0]
    if g < 2:
        return torch.full((), float("nan"), dtype=replicates.dtype, device=replicates.device)
    dev = replicates - replicates.mean()
    return ((g - 1) / g * (dev * dev).sum()).sqrt()
