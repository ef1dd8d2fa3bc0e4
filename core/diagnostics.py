"""Per-layer NFA diagnostics.

Glossary (see docs/nfa-math.md for the definitions; l = 1..L are the hidden layers):

- ``W``, ``W0``, ``dW``: layer l's weight (k_l x k_{l-1}), its initial value, ``W - W0``.
- ``nfm``: neural feature matrix ``W^T W``.
- ``ptk_cov`` (``K``): covariance of the pre-activation tangent features,
  ``(1/n) sum_i J_l(x_i)^T J_l(x_i)`` with ``J_l = df/dh_l`` (c x k_l).
- ``agop``: average gradient outer product w.r.t. the layer input, ``W^T K W``.
- ``centered_nfm`` ``dW^T dW`` and ``centered_agop`` ``dW^T K dW``.
- ``uc_nfa``: rho(nfm, agop^alpha); ``c_nfa``: rho(centered_nfm, centered_agop^alpha),
  undefined (None) while dW = 0.
- ``rel_movement``: ||dW||_F / ||W||_F.
- ``utku``: U^T K U with W = U S V^T; ``diag_share`` = ||diag(utku)||_F / ||utku||_F.
- ``nfm_shares`` / ``agop_shares``: Frobenius norms of the init, cross and centered terms
  of NFM (AGOP), each divided by the sum of the three.
- ``feature_quality``: rho(nfm_1, G*^alpha) for a synthetic target's ground truth G*.

K for every layer comes from one batched backward sweep over the measurement set: the
output Jacobian is propagated through the layers for all points at once, and each K is
accumulated as one matrix product per chunk (no per-sample autograd).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from core.model import MLP, activation_derivative

CHUNK_ELEMENTS = 1 << 22  # rows*c*k of the propagated Jacobian held at once


def ptk_covariances(model: MLP, x: torch.Tensor) -> list[torch.Tensor]:
    """K_1..K_L (each k_l x k_l) over the points x (n, d), in the model's dtype."""
    widths = [layer.out_features for layer in model.hidden]
    c = model.out.out_features
    ks = [torch.zeros(k, k, dtype=x.dtype, device=x.device) for k in widths]
    n = x.shape[0]
    chunk = max(1, CHUNK_ELEMENTS // (c * max(widths)))
    with torch.no_grad():
        for start in range(0, n, chunk):
            _accumulate(model, x[start:start + chunk], ks)
    return [k / n for k in ks]


def _accumulate(model: MLP, x: torch.Tensor, ks: list[torch.Tensor]) -> None:
    hs = model.preactivations(x)
    m, c = x.shape[0], model.out.out_features
    w_out = model.out.weight  # (c, k_L)
    last = activation_derivative(model.activation, hs[-1])  # (m, k_L)
    # J_L(x_i) = W_out diag(phi'(h_L)), so K_L = (W_out^T W_out) * (D^T D): no (m, c, k) tensor
    ks[-1].add_((w_out.T @ w_out) * (last.T @ last))
    if len(hs) == 1:
        return
    flat = (w_out.expand(m, -1, -1) * last[:, None, :]).reshape(m * c, -1)  # (m*c, k_L)
    for l in range(len(hs) - 2, -1, -1):
        back = (flat @ model.hidden[l + 1].weight).reshape(m, c, -1)  # (m, c, k_l): d f / d a_l
        flat = (back * activation_derivative(model.activation, hs[l])[:, None, :]).reshape(m * c, -1)
        ks[l].addmm_(flat.T, flat)


def correlation(a: torch.Tensor, b: torch.Tensor, kind: str = "pearson") -> float:
    """rho: cosine of the flattened matrices, after subtracting each one's mean entry for pearson."""
    a, b = a.reshape(-1), b.reshape(-1)
    if kind == "pearson":
        a, b = a - a.mean(), b - b.mean()
    denom = torch.linalg.vector_norm(a) * torch.linalg.vector_norm(b)
    if denom == 0 or not torch.isfinite(denom):
        return float("nan")
    return float((a @ b) / denom)


def matrix_power(m: torch.Tensor, alpha: float) -> torch.Tensor:
    """m^alpha of a symmetric matrix via eigh, negative eigenvalues clipped to 0."""
    if alpha == 1:
        return m
    vals, vecs = torch.linalg.eigh((m + m.T) / 2)
    return (vecs * vals.clamp(min=0) ** alpha) @ vecs.T


def left_singular(w: torch.Tensor, nfm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """U and S of the reduced SVD W = U S V^T, descending, from the smaller Gram matrix's eigh.

    About twice as fast as ``torch.linalg.svd`` for square float64 layers; columns of U for
    singular values below 1e-10 of the largest are left at zero (they carry no NFM or AGOP).
    """
    rows, cols = w.shape
    if rows <= cols:
        vals, u = torch.linalg.eigh(w @ w.T)
        return u.flip(1), vals.flip(0).clamp(min=0).sqrt()
    vals, v = torch.linalg.eigh(nfm)
    s = vals.flip(0).clamp(min=0).sqrt()
    keep = s > s[0] * 1e-10
    u = (w @ v.flip(1)) / torch.where(keep, s, torch.ones_like(s))
    return u * keep, s


@dataclass(frozen=True)
class LayerStats:
    """Everything measured for one hidden layer (numpy, float64)."""

    layer: int
    W: np.ndarray
    W0: np.ndarray
    K: np.ndarray
    nfm: np.ndarray
    agop: np.ndarray
    centered_nfm: np.ndarray
    centered_agop: np.ndarray
    utku: np.ndarray
    singular_values: np.ndarray
    uc_nfa: float
    c_nfa: float | None
    rel_movement: float
    diag_share: float
    nfm_shares: tuple[float, float, float]
    agop_shares: tuple[float, float, float]
    uc_nfa_cosine: float
    alignment_cosine: float
    feature_quality: float | None
    step_norm: float | None = None
    """||W_t - W_{t-1}||_F of the step before this measurement (set by the engine; None at step 0)."""

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.W.shape)

    def scalars(self) -> dict[str, float | None]:
        """The per-layer numbers recorded in the history."""
        return {
            "uc_nfa": self.uc_nfa, "c_nfa": self.c_nfa, "rel_movement": self.rel_movement,
            "feature_quality": self.feature_quality, "diag_share": self.diag_share,
            "init_share": self.nfm_shares[0], "cross_share": self.nfm_shares[1],
            "centered_share": self.nfm_shares[2], "step_norm": self.step_norm,
        }


def _terms(w0: torch.Tensor, dw: torch.Tensor, middle: torch.Tensor | None = None):
    """(init, cross, centered) terms of W^T M W for W = W0 + dW (M = identity when None)."""
    m_w0 = w0 if middle is None else middle @ w0
    m_dw = dw if middle is None else middle @ dw
    cross = w0.T @ m_dw
    return w0.T @ m_w0, cross + cross.T, dw.T @ m_dw


def _shares(terms) -> tuple[float, float, float]:
    norms = [float(torch.linalg.matrix_norm(t)) for t in terms]
    total = sum(norms)
    return tuple(v / total for v in norms) if total > 0 else (1.0, 0.0, 0.0)


def _diag_share(utku: torch.Tensor) -> float:
    total = torch.linalg.matrix_norm(utku)
    return float(torch.linalg.vector_norm(torch.diagonal(utku)) / total) if total > 0 else float("nan")


def layer_stats(layer: int, w: torch.Tensor, w0: torch.Tensor, k: torch.Tensor,
                correlation_kind: str = "pearson", alpha: float = 1.0,
                g_star: torch.Tensor | None = None) -> LayerStats:
    """Diagnostics of one layer from W, W0 and K (all converted to float64)."""
    w, w0, k = (t.detach().to(torch.float64) for t in (w, w0, k))
    dw = w - w0
    nfm_terms, agop_terms = _terms(w0, dw), _terms(w0, dw, k)
    nfm, agop = sum(nfm_terms), sum(agop_terms)
    cnfm, cagop = nfm_terms[2], agop_terms[2]
    moved = bool(torch.any(dw != 0))
    u, s = left_singular(w, nfm)
    utku = u.T @ k @ u
    w_norm = float(torch.linalg.matrix_norm(w))
    fq = None
    if g_star is not None and layer == 1:
        fq = correlation(nfm, matrix_power(g_star.to(torch.float64), alpha), correlation_kind)
    return LayerStats(
        layer=layer, W=_np(w), W0=_np(w0), K=_np(k), nfm=_np(nfm), agop=_np(agop),
        centered_nfm=_np(cnfm), centered_agop=_np(cagop), utku=_np(utku), singular_values=_np(s),
        uc_nfa=correlation(nfm, matrix_power(agop, alpha), correlation_kind),
        c_nfa=correlation(cnfm, matrix_power(cagop, alpha), correlation_kind) if moved else None,
        rel_movement=float(torch.linalg.matrix_norm(dw)) / w_norm if w_norm > 0 else float("nan"),
        diag_share=_diag_share(utku),
        nfm_shares=_shares(nfm_terms), agop_shares=_shares(agop_terms),
        uc_nfa_cosine=correlation(nfm, agop, "cosine"),
        alignment_cosine=correlation(torch.diag(s * s), s[:, None] * utku * s[None, :], "cosine"),
        feature_quality=fq,
    )


def _np(t: torch.Tensor) -> np.ndarray:
    a = t.detach().cpu().numpy()
    a.setflags(write=False)
    return a


def measure_model(model: MLP, w0s: list[torch.Tensor], x_measure: torch.Tensor,
                  correlation_kind: str = "pearson", alpha: float = 1.0,
                  g_star: torch.Tensor | None = None) -> list[LayerStats]:
    """All hidden layers' diagnostics for the model's current weights."""
    ks = ptk_covariances(model, x_measure)
    return [
        layer_stats(i + 1, w, w0, k, correlation_kind, alpha, g_star)
        for i, (w, w0, k) in enumerate(zip(model.weights(), w0s, ks))
    ]
