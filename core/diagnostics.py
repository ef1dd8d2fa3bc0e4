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
- ``nfm_identity`` / ``agop_identity``: rho(nfm, I) and rho(agop^alpha, I), the identity baseline.
- ``uc_nfa_se`` / ``c_nfa_se``: jackknife standard errors over the measurement set (core/jackknife.py).
- ``rel_movement``: ||dW||_F / ||W||_F.
- ``utku``: U^T K U with W = U S V^T; ``diag_share`` = ||diag(utku)||_F / ||utku||_F.
- ``nfm_shares`` / ``agop_shares``: Frobenius norms of the init, cross and centered terms
  of NFM (AGOP), each divided by the sum of the three.
- ``feature_quality``: rho(nfm_1, G*^alpha) for a synthetic target's ground truth G*.
- ``detailed``: whether this measurement computed the extras that cost more than the rest
  of a measurement together (the jackknife SEs and ``diag_share``'s eigendecomposition);
  the engine asks for them at every ``measure.detail_every``-th measurement and at the
  run's fixed points. A view may still read ``diag_share`` of any measurement (computed on
  first access); ``scalars()``, the history row, leaves it empty when not detailed.

A measurement runs in three stages. The K sweep (core/ksweep.py) and every product
metrics.csv needs run on the model's device in the model's dtype, and the correlations and
norms on the device in float64 (``_device_terms``), with no host synchronisation; then one
transfer brings the matrices and scalars to the host as
float64; what only a view needs (the SVD alignment U^T K U, the AGOP shares) is computed
there on first access and cached (``LayerStats`` lazy properties).
"""

from __future__ import annotations

import contextlib
import math
import dataclasses
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from core import jackknife
from core.ksweep import ptk_covariances, ptk_sweep  # noqa: F401  (ptk_covariances: public API)
from core.model import MLP

SE_GROUPS = 8
"""Jackknife groups of the measurement set (fewer when it has fewer points)."""

_MATRICES = ("W", "W0", "K", "nfm", "agop", "centered_nfm", "centered_agop")
_LAZY = ("_svd", "diag_share", "alignment_cosine", "agop_shares")
"""LayerStats' cached properties: functions of the matrices alone."""
_SCALARS = ("uc_nfa", "c_nfa", "rel_movement", "uc_nfa_cosine", "nfm_identity", "agop_identity",
            "uc_nfa_se", "c_nfa_se", "init_norm", "cross_norm", "centered_norm", "moved")


def correlation(a: torch.Tensor, b: torch.Tensor, kind: str = "pearson") -> float:
    """rho: cosine of the flattened matrices, after subtracting each one's mean entry for pearson."""
    return float(_rho(a, b, kind))


def _rho(a: torch.Tensor, b: torch.Tensor, kind: str) -> torch.Tensor:
    """correlation() as a 0-d tensor on the inputs' device (NaN when either side is constant/zero)."""
    a, b = a.reshape(-1), b.reshape(-1)
    if a.dtype != b.dtype:
        common = torch.promote_types(a.dtype, b.dtype)
        a, b = a.to(common), b.to(common)
    if kind == "pearson":
        a, b = a - a.mean(), b - b.mean()
    denom = torch.linalg.vector_norm(a) * torch.linalg.vector_norm(b)
    value = (a @ b) / denom
    return torch.where((denom == 0) | ~torch.isfinite(denom), torch.full_like(value, math.nan), value)


def _rho_identity(m: torch.Tensor, kind: str) -> torch.Tensor:
    return _rho(m, torch.eye(m.shape[0], dtype=m.dtype, device=m.device), kind)


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """num / den, NaN where den is zero or not finite (as _rho answers for a constant or zero matrix)."""
    return torch.where((den == 0) | ~torch.isfinite(den), torch.full_like(num, math.nan), num / den)


def matrix_power(m: torch.Tensor, alpha: float) -> torch.Tensor:
    """m^alpha of a symmetric matrix via eigh, negative eigenvalues clipped to 0."""
    if alpha == 1:
        return m
    with single_thread():
        vals, vecs = torch.linalg.eigh((m + m.T) / 2)
    return (vecs * vals.clamp(min=0) ** alpha) @ vecs.T


@contextlib.contextmanager
def single_thread():
    """Runs small LAPACK calls (eigh of k x k) on one thread: faster alone, and far faster on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def left_singular(w: torch.Tensor, nfm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """U and S of the reduced SVD W = U S V^T, descending, from the smaller Gram matrix's eigh.

    About twice as fast as ``torch.linalg.svd`` for square float64 layers; columns of U for
    singular values below 1e-10 of the largest are left at zero (they carry no NFM or AGOP).
    """
    rows, cols = w.shape
    with single_thread():
        if rows <= cols:
            vals, u = torch.linalg.eigh(w @ w.T)
            return u.flip(1), vals.flip(0).clamp(min=0).sqrt()
        vals, v = torch.linalg.eigh(nfm)
    s = vals.flip(0).clamp(min=0).sqrt()
    keep = s > s[0] * 1e-10
    u = (w @ v.flip(1)) / torch.where(keep, s, torch.ones_like(s))
    return u * keep, s


@dataclass(frozen=True, eq=False)
class LayerStats:
    """Everything measured for one hidden layer (numpy float64 arrays, read-only; floats or None).

    The contract's matrices and every metrics.csv number are set when measured; ``utku``,
    ``singular_values``, ``alignment_cosine``, ``diag_share`` and ``agop_shares`` are computed
    from them on first access and cached.
    """

    layer: int
    W: np.ndarray
    W0: np.ndarray
    K: np.ndarray
    nfm: np.ndarray
    agop: np.ndarray
    centered_nfm: np.ndarray
    centered_agop: np.ndarray
    uc_nfa: float
    c_nfa: float | None
    rel_movement: float
    nfm_shares: tuple[float, float, float]
    uc_nfa_cosine: float
    nfm_identity: float
    agop_identity: float
    uc_nfa_se: float | None
    c_nfa_se: float | None
    feature_quality: float | None
    step_norm: float | None = None
    """||W_t - W_{t-1}||_F of the step before this measurement (set by the engine; None at step 0)."""
    detailed: bool = True
    """Whether the SEs were computed and ``diag_share`` belongs in the history row."""

    @classmethod
    def build(cls, layer: int, matrices: dict[str, np.ndarray], scalars: dict[str, float | None],
              feature_quality: float | None = None, detailed: bool = True) -> "LayerStats":
        """From the matrices (_MATRICES) and the measured numbers (_SCALARS but ``moved``)."""
        shares = _shares((scalars["init_norm"], scalars["cross_norm"], scalars["centered_norm"]))
        named = {key: scalars[key] for key in ("uc_nfa", "c_nfa", "rel_movement", "uc_nfa_cosine", "nfm_identity",
                                               "agop_identity", "uc_nfa_se", "c_nfa_se")}
        return cls(layer=layer, **matrices, **named, nfm_shares=shares, feature_quality=feature_quality,
                   detailed=detailed)

    def replaced(self, **changes) -> "LayerStats":
        """``dataclasses.replace`` that keeps the lazy values already computed when no matrix changes."""
        new = dataclasses.replace(self, **changes)
        if not changes.keys() & set(_MATRICES):
            new.__dict__.update({key: self.__dict__[key] for key in _LAZY if key in self.__dict__})
        return new

    def __repr__(self) -> str:
        return f"LayerStats(layer={self.layer}, shape={self.shape}, uc_nfa={self.uc_nfa:.4f})"

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.W.shape)

    @cached_property
    def _svd(self) -> tuple[np.ndarray, np.ndarray]:
        w, k = _t(self.W), _t(self.K)
        u, s = left_singular(w, _t(self.nfm))
        return _np(u.T @ k @ u), _np(s)

    @property
    def utku(self) -> np.ndarray:
        """U^T K U (k_l x k_l): K in the basis of W's left singular vectors."""
        return self._svd[0]

    @property
    def singular_values(self) -> np.ndarray:
        return self._svd[1]

    @cached_property
    def diag_share(self) -> float:
        """||diag(U^T K U)||_F / ||U^T K U||_F."""
        utku = self.utku  # sums of squares, not np.linalg.norm: numpy's BLAS threads would then spin against torch's
        total = math.sqrt(float(np.sum(utku * utku)))
        diag = np.diagonal(utku)
        return math.sqrt(float(np.sum(diag * diag))) / total if total > 0 else float("nan")

    @cached_property
    def alignment_cosine(self) -> float:
        """rho_cosine(S^2, S U^T K U S): equals uc_nfa_cosine (the alignment identity)."""
        s = _t(self.singular_values)
        return correlation(torch.diag(s * s), s[:, None] * _t(self.utku) * s[None, :], "cosine")

    @cached_property
    def agop_shares(self) -> tuple[float, float, float]:
        """Shares of W0^T K W0, the cross term and dW^T K dW in the AGOP's Frobenius norm."""
        w0, k = _t(self.W0), _t(self.K)
        dw = _t(self.W) - w0
        cross = w0.T @ (k @ dw)
        terms = (w0.T @ k @ w0, cross + cross.T, _t(self.centered_agop))
        return _shares([float(torch.linalg.matrix_norm(t)) for t in terms])

    def scalars(self) -> dict[str, float | None]:
        """The per-layer numbers recorded in the history."""
        return {
            "uc_nfa": self.uc_nfa, "c_nfa": self.c_nfa, "rel_movement": self.rel_movement,
            "feature_quality": self.feature_quality, "diag_share": self.diag_share if self.detailed else None,
            "init_share": self.nfm_shares[0], "cross_share": self.nfm_shares[1],
            "centered_share": self.nfm_shares[2],
            "nfm_identity": self.nfm_identity, "agop_identity": self.agop_identity,
            "uc_nfa_se": self.uc_nfa_se, "c_nfa_se": self.c_nfa_se, "step_norm": self.step_norm,
        }


def restored_layer_stats(layer: int, arrays: dict[str, np.ndarray], row: dict) -> LayerStats:
    """A LayerStats rebuilt from a run folder: matrices from final.npz, numbers from its metrics.csv row."""
    matrices = {key: _np(_t(arrays[f"layer{layer}.{key}"])) for key in _MATRICES}
    values = {key: row.get(key) for key in _SCALARS[:-4]}
    values.update(init_norm=row.get("init_share") or 0.0, cross_norm=row.get("cross_share") or 0.0,
                  centered_norm=row.get("centered_share") or 0.0)
    values["uc_nfa_cosine"] = correlation(_t(matrices["nfm"]), _t(matrices["agop"]), "cosine")
    stats = LayerStats.build(layer, matrices, values, row.get("feature_quality"),
                             detailed=row.get("diag_share") is not None)
    shares = tuple(row.get(key) for key in ("init_share", "cross_share", "centered_share"))
    return dataclasses.replace(stats, step_norm=row.get("step_norm"),
                               nfm_shares=shares if None not in shares else stats.nfm_shares)


def _shares(norms) -> tuple[float, float, float]:
    total = sum(norms)
    return tuple(v / total for v in norms) if total > 0 else (1.0, 0.0, 0.0)


def init_gram(w0: torch.Tensor) -> torch.Tensor:
    """W0^T W0 in W0's dtype: the NFM's init term, the same at every measurement of a run."""
    w0 = w0.detach()
    return w0.T @ w0


def _device_terms(w, w0, k, e, kind: str, alpha: float, init: torch.Tensor | None = None) -> tuple[dict, torch.Tensor]:
    """One layer's matrices and scalars (a 1-d float64 tensor in _SCALARS order), on the device, no sync.

    The k x k products run in the model's dtype (K's), as the forward pass and the sweep do:
    in float32 each carries a relative rounding of about 1e-7, two orders below the 1e-5 the
    float32 path promises against float64 (tests/test_core_uncertainty.py), at half the cost
    of float64 products. Everything reduced to a scalar (means, dot products, norms, the
    jackknife) is accumulated in float64 from those matrices: it keeps the correlations
    within about 5e-8 of float64's where float32 sums drift by 2e-7 (an NFM whose mean entry
    is 20 times its spread). The four matrices are centred once and every inner product the
    correlations need comes from one 4 x 4 Gram product (the reductions are memory-bound: a
    pass per correlation cost more than the k^3 products). rho(M, I) needs no identity:
    the identity's entries have mean 1/k and centred squared norm k - 1, and the centred M
    sums to zero, so rho_pearson(M, I) = tr(M - mean) / sqrt(||M - mean||^2 (k - 1)), and
    rho_cosine(M, I) = tr M / sqrt(||M||^2 k). ``init``: W0^T W0 when the caller keeps it.
    """
    dtype = k.dtype
    w, w0 = w.to(dtype), w0.to(dtype)
    dw = w - w0
    init = init_gram(w0) if init is None else init.to(dtype)
    half, cen = w0.T @ dw, dw.T @ dw
    cross = half + half.T
    nfm = init + cross + cen
    agop, cagop = w.T @ (k @ w), dw.T @ (k @ dw)
    size = nfm.shape[0]
    flat = torch.stack((nfm, agop, cen, cagop)).reshape(4, -1).to(torch.float64)  # reductions in float64
    mean = flat.mean(1, keepdim=True)
    cent = flat - mean if kind == "pearson" else flat
    dots = cent @ cent.T  # every (centred) inner product of NFM, AGOP, centred NFM, centred AGOP in one pass
    raw = dots + flat.shape[1] * (mean @ mean.T) if kind == "pearson" else dots
    sq, trace = dots.diagonal(), cent.view(4, size, size).diagonal(dim1=1, dim2=2).sum(1)
    ident = _ratio(trace, (sq * (size - 1 if kind == "pearson" else size)).sqrt())  # rho(M, I); see below
    cosine = _ratio(raw[0, 1], (raw[0, 0] * raw[1, 1]).sqrt())
    moved = (dw != 0).any()
    nan = torch.full((), math.nan, dtype=torch.float64, device=w.device)
    norm = lambda t: torch.linalg.vector_norm(t, dtype=torch.float64)  # noqa: E731
    w_norm = norm(w)
    uc = c = agop_id = uc_se = c_se = nan
    if alpha == 1:
        uc, c = _ratio(dots[0, 1], (sq[0] * sq[1]).sqrt()), _ratio(dots[2, 3], (sq[2] * sq[3]).sqrt())
        agop_id = ident[1]
        if e is not None:
            four = flat.view(4, size, size)
            k64, w64, dw64 = (t.to(torch.float64) for t in (k, w, dw))
            e = e.to(torch.float64)
            uc_se = jackknife.standard_error(jackknife.replicate_correlations(w64, four[0], four[1], k64, e, kind, dtype))
            c_se = jackknife.standard_error(jackknife.replicate_correlations(dw64, four[2], four[3], k64, e, kind, dtype))
    scalars = torch.stack([
        uc, torch.where(moved, c, nan), torch.where(w_norm > 0, norm(dw) / w_norm, nan),
        cosine, ident[0], agop_id, uc_se, torch.where(moved, c_se, nan),
        norm(init), norm(cross), raw[2, 2].sqrt(), moved.to(torch.float64),
    ])
    matrices = dict(W=w, W0=w0, K=k, nfm=nfm, agop=agop, centered_nfm=cen, centered_agop=cagop)
    return matrices, scalars


def _to_host(tensors: list[torch.Tensor]) -> list[np.ndarray]:
    """float64 numpy copies, read-only; from a GPU in one transfer."""
    if tensors and tensors[0].device.type != "cpu":
        flat = torch.cat([t.reshape(-1) for t in tensors]).to("cpu", torch.float64)
        parts = flat.split([t.numel() for t in tensors])
        tensors = [p.reshape(t.shape) for p, t in zip(parts, tensors)]
    return [_np(t.to(torch.float64, copy=True)) for t in tensors]


def _t(a: np.ndarray) -> torch.Tensor:
    """A writable torch copy of a (read-only) host array."""
    return torch.from_numpy(np.array(a, dtype=np.float64))


def _np(t: torch.Tensor) -> np.ndarray:
    a = t.detach().cpu().numpy()
    a.setflags(write=False)
    return a


def _none(v: float) -> float | None:
    return None if math.isnan(v) else v


def _host_power_terms(m: dict[str, np.ndarray], moved: bool, e: torch.Tensor | None, kind: str,
                      alpha: float) -> dict[str, float | None]:
    """UC-NFA, C-NFA, rho(AGOP^alpha, I) and their SEs for alpha != 1 (eigh per replicate, float64)."""
    t = {key: _t(m[key]) for key in _MATRICES}
    dw = t["W"] - t["W0"]
    out = {"uc_nfa": correlation(t["nfm"], matrix_power(t["agop"], alpha), kind),
           "agop_identity": float(_rho_identity(matrix_power(t["agop"], alpha), kind)),
           "c_nfa": correlation(t["centered_nfm"], matrix_power(t["centered_agop"], alpha), kind) if moved else None,
           "uc_nfa_se": None, "c_nfa_se": None}
    if e is not None:
        for key, v, nfm, a in (("uc_nfa_se", t["W"], t["nfm"], t["agop"]),
                               ("c_nfa_se", dw, t["centered_nfm"], t["centered_agop"])):
            if key == "c_nfa_se" and not moved:
                continue
            reps = torch.stack([_rho(nfm, matrix_power(a + v.T @ eg @ v, alpha), kind) for eg in e])
            out[key] = _none(float(jackknife.standard_error(reps)))
    return out


def layer_stats(layer: int, w: torch.Tensor, w0: torch.Tensor, k: torch.Tensor,
                correlation_kind: str = "pearson", alpha: float = 1.0,
                g_star: torch.Tensor | None = None, deltas: torch.Tensor | None = None) -> LayerStats:
    """Diagnostics of one layer from W, W0 and K (computed in their dtype, returned as float64).

    ``deltas`` (G, k, k): the jackknife's K_(-g) - K (core/jackknife.py); without it the SEs are None.
    """
    return _finish([(layer, *_device_terms(w.detach(), w0.detach(), k, deltas, correlation_kind, alpha), deltas)],
                   correlation_kind, alpha, g_star)[0]


def _finish(parts, kind: str, alpha: float, g_star: torch.Tensor | None, detailed: bool = True) -> list[LayerStats]:
    """Transfers every layer's device results at once and builds the LayerStats."""
    tensors = [t for _, mats, scal, _ in parts for t in (*(mats[key] for key in _MATRICES), scal)]
    host = iter(_to_host(tensors))
    g_pow = None
    if g_star is not None:
        g_pow = matrix_power(g_star.detach().to("cpu", torch.float64), alpha)
    stats = []
    for layer, _, _, deltas in parts:
        matrices = {key: next(host) for key in _MATRICES}
        values = dict(zip(_SCALARS, (float(v) for v in next(host))))
        moved = values.pop("moved") > 0
        if alpha != 1:
            e = None if deltas is None else deltas.to("cpu", torch.float64)
            values.update(_host_power_terms(matrices, moved, e, kind, alpha))
        for key in ("c_nfa", "uc_nfa_se", "c_nfa_se"):
            values[key] = None if values[key] is None else _none(values[key])
        fq = None
        if g_pow is not None and layer == 1:
            fq = correlation(_t(matrices["nfm"]), g_pow, kind)
        stats.append(LayerStats.build(layer, matrices, values, fq, detailed))
    return stats


def device_parts(model: MLP, w0s: list[torch.Tensor], x_measure: torch.Tensor, correlation_kind: str = "pearson",
                 alpha: float = 1.0, se_groups: int = SE_GROUPS,
                 init_grams: list[torch.Tensor] | None = None, outputs: list | None = None) -> list[tuple]:
    """The sweep and every layer's products and scalars, on the model's device, without host synchronisation.

    ``outputs``: a list that gets the model's outputs at x_measure (the sweep's forward pass).
    """
    sweep = ptk_sweep(model, x_measure, se_groups, outputs=outputs is not None)
    if outputs is not None:
        outputs.append(sweep.outputs)
    ks = sweep.covariances()
    inits = init_grams or [None] * len(ks)
    parts = []
    for i, (w, w0, k, sums, init) in enumerate(zip(model.weights(), w0s, ks, sweep.sums, inits)):
        deltas = jackknife.replicate_deltas(sums.to(torch.float64), sweep.counts) if len(sweep.counts) > 1 else None
        kept = deltas if alpha != 1 else None  # the host path (alpha != 1) needs them; else freed per layer
        parts.append((i + 1, *_device_terms(w.detach(), w0, k, deltas, correlation_kind, alpha, init), kept))
    return parts


def measure_model(model: MLP, w0s: list[torch.Tensor], x_measure: torch.Tensor,
                  correlation_kind: str = "pearson", alpha: float = 1.0,
                  g_star: torch.Tensor | None = None, se_groups: int = SE_GROUPS, detailed: bool = True,
                  init_grams: list[torch.Tensor] | None = None) -> list[LayerStats]:
    """All hidden layers' diagnostics for the model's current weights (one device-to-host transfer).

    ``detailed=False`` skips the jackknife (SEs None) and leaves ``diag_share`` out of
    ``scalars()``: the measurement costs little more than its K. ``init_grams``: each layer's
    ``init_gram(W0)``, kept by the caller across measurements.
    """
    return _measure(model, w0s, x_measure, correlation_kind, alpha, g_star, se_groups, detailed, init_grams, None)


def measure_with_outputs(model: MLP, w0s: list[torch.Tensor], x_measure: torch.Tensor,
                         correlation_kind: str = "pearson", alpha: float = 1.0,
                         g_star: torch.Tensor | None = None, se_groups: int = SE_GROUPS, detailed: bool = True,
                         init_grams: list[torch.Tensor] | None = None) -> tuple[list[LayerStats], torch.Tensor]:
    """``measure_model`` and the model's outputs at x_measure (n, c, on the device), from the sweep's forward pass."""
    outputs: list[torch.Tensor] = []
    stats = _measure(model, w0s, x_measure, correlation_kind, alpha, g_star, se_groups, detailed, init_grams, outputs)
    return stats, outputs[0]


def _measure(model, w0s, x_measure, kind, alpha, g_star, se_groups, detailed, init_grams, outputs) -> list[LayerStats]:
    parts = device_parts(model, w0s, x_measure, kind, alpha, se_groups if detailed else 1, init_grams, outputs)
    stats = _finish(parts, kind, alpha, g_star, detailed)
    if detailed:
        prefetch_alignment(stats)
    return stats


def prefetch_alignment(stats: list[LayerStats]) -> None:
    """Computes each layer's SVD alignment (``diag_share``'s eigendecomposition) now, one layer per thread.

    LAPACK's eigh of a k x k matrix runs best on one thread, so the layers run side by side,
    as many at once as torch has threads; the results are those of the lazy properties.
    """
    workers = min(len(stats), torch.get_num_threads())
    if workers < 2:
        return
    with single_thread(), ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda s: s._svd, stats))
