"""core.diagnostics against a slow, obvious per-sample autograd reference (float64).

The reference never uses core.diagnostics: it re-runs the forward pass by hand, makes
h_l (or a_{l-1}) a leaf, and takes d f_o / d h_l for every sample i and output o with
torch.autograd.grad. Every matrix and scalar of LayerStats is then rebuilt in numpy.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from core import diagnostics, ksweep
from core.config import ModelConfig, RunConfig
from core.engine import Engine
from core.model import MLP, activation_derivative

ACT = {
    "relu": torch.relu, "tanh": torch.tanh, "gelu": F.gelu, "linear": lambda h: h,
    "sigmoid": torch.sigmoid, "silu": F.silu,
}
ACTIVATIONS = tuple(ACT)
TOL = 1e-10


# -- the reference ------------------------------------------------------------------------

def _params(model: MLP) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    return [(lay.weight.detach().clone(), None if lay.bias is None else lay.bias.detach().clone())
            for lay in model.layers]


def _per_sample_grad(params, act: str, x: torch.Tensor, layer: int, wrt: str) -> torch.Tensor:
    """d f(x) / d h_layer (wrt='h') or d f(x) / d a_{layer-1} (wrt='a') for one sample: (c, k)."""
    phi = ACT[act]
    *hidden, (w_out, b_out) = params
    a, leaf = x, None
    for j, (w, b) in enumerate(hidden, start=1):
        if j == layer and wrt == "a":
            a = a.detach().clone().requires_grad_(True)
            leaf = a
        h = w @ a + (b if b is not None else 0.0)
        if j == layer and wrt == "h":
            h = h.detach().clone().requires_grad_(True)
            leaf = h
        a = phi(h)
    f = w_out @ a + (b_out if b_out is not None else 0.0)
    rows = [torch.autograd.grad(f[o], leaf, retain_graph=True)[0] for o in range(f.shape[0])]
    return torch.stack(rows)


def reference_K(params, act, xs, layer) -> np.ndarray:
    js = [_per_sample_grad(params, act, x, layer, "h") for x in xs]
    return (sum(j.T @ j for j in js) / len(js)).numpy()


def reference_agop_direct(params, act, xs, layer) -> np.ndarray:
    gs = [_per_sample_grad(params, act, x, layer, "a") for x in xs]
    return (sum(g.T @ g for g in gs) / len(gs)).numpy()


def rho(a: np.ndarray, b: np.ndarray, kind: str) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    if kind == "pearson":
        a, b = a - a.mean(), b - b.mean()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def mpow(m: np.ndarray, alpha: float) -> np.ndarray:
    if alpha == 1:
        return m
    vals, vecs = np.linalg.eigh((m + m.T) / 2)
    return (vecs * np.clip(vals, 0, None) ** alpha) @ vecs.T


def _close(actual, expected, tol=TOL):
    actual, expected = np.asarray(actual), np.asarray(expected)
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=tol * scale)


def _moved_model(depth, width, d, c, act, bias, seed=0) -> tuple[MLP, list[torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    model = MLP(d, c, ModelConfig(depth=depth, width=width, activation=act, bias=bias), gen, torch.float64)
    w0s = [w.detach().clone() for w in model.weights()]
    with torch.no_grad():
        for p in model.parameters():  # every parameter moves, so dW != 0
            p.add_(0.3 * torch.randn(p.shape, generator=gen, dtype=torch.float64) / p.shape[-1] ** 0.5)
    return model, w0s


CASES = [
    # (depth, width, d, c, activation, bias): every activation with and without bias, c in {1, 3},
    # depths 1-3, widths above and below d (both branches of the SVD helper)
    (1 + (i % 3), (5, 7, 3)[i % 3], (4, 3, 6)[(i // 3) % 3], c, act, bias)
    for i, (act, bias, c) in enumerate(itertools.product(ACTIVATIONS, (False, True), (1, 3)))
]


@pytest.mark.parametrize("depth,width,d,c,act,bias", CASES)
def test_measure_model_matches_per_sample_autograd(depth, width, d, c, act, bias):
    model, w0s = _moved_model(depth, width, d, c, act, bias, seed=depth * 100 + width)
    xs = torch.randn(30, d, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    params = _params(model)
    refs = {}
    for l in range(1, depth + 1):
        w, w0 = params[l - 1][0].numpy(), w0s[l - 1].numpy()
        k = reference_K(params, act, xs, l)
        dw = w - w0
        refs[l] = dict(W=w, W0=w0, K=k, nfm=w.T @ w, agop=w.T @ k @ w, centered_nfm=dw.T @ dw,
                       centered_agop=dw.T @ k @ dw,
                       agop_direct=reference_agop_direct(params, act, xs, l))
    for kind, alpha in itertools.product(("pearson", "cosine"), (1.0, 0.5)):
        stats = diagnostics.measure_model(model, w0s, xs, kind, alpha)
        assert len(stats) == depth
        for s in stats:
            r = refs[s.layer]
            for key in ("W", "W0", "K", "nfm", "agop", "centered_nfm", "centered_agop"):
                assert getattr(s, key).dtype == np.float64
                _close(getattr(s, key), r[key])
            _close(s.agop, r["agop_direct"])  # AGOP = W^T K W against autograd w.r.t. a_{l-1}
            # matrix powers of (near-)singular PSD matrices amplify rounding (sqrt of +-1e-17)
            tol = TOL if alpha == 1 else 1e-6
            assert s.uc_nfa == pytest.approx(rho(r["nfm"], mpow(r["agop"], alpha), kind), abs=tol)
            assert s.c_nfa == pytest.approx(rho(r["centered_nfm"], mpow(r["centered_agop"], alpha), kind), abs=tol)
            assert s.uc_nfa_cosine == pytest.approx(rho(r["nfm"], r["agop"], "cosine"), abs=TOL)
            dw = r["W"] - r["W0"]
            assert s.rel_movement == pytest.approx(np.linalg.norm(dw) / np.linalg.norm(r["W"]), rel=TOL)
            u, sv, _ = np.linalg.svd(r["W"], full_matrices=False)
            utku = u.T @ r["K"] @ u
            _close(s.singular_values, sv)
            _close(np.abs(s.utku), np.abs(utku), 1e-8)  # columns of U are defined up to sign
            assert s.diag_share == pytest.approx(np.linalg.norm(np.diag(utku)) / np.linalg.norm(utku), abs=1e-9)
            assert s.feature_quality is None


def test_reference_detects_a_wrong_K():
    """The comparison above can fail: a K from the wrong layer or a wrong derivative is caught."""
    model, w0s = _moved_model(2, 5, 4, 3, "tanh", True)
    xs = torch.randn(20, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    params = _params(model)
    k1 = reference_K(params, "tanh", xs, 1)
    k2 = reference_K(params, "tanh", xs, 2)
    ks = diagnostics.ptk_covariances(model, xs)
    _close(ks[0].numpy(), k1)
    _close(ks[1].numpy(), k2)
    assert np.abs(k1 - k2).max() > 1e-3
    assert np.abs(reference_K(params, "sigmoid", xs, 1) - k1).max() > 1e-3


def test_chunked_K_equals_one_chunk(monkeypatch):
    model, _ = _moved_model(3, 6, 5, 3, "gelu", True)
    xs = torch.randn(50, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    whole = diagnostics.ptk_covariances(model, xs)
    monkeypatch.setattr(ksweep, "CHUNK_ELEMENTS", 7 * 3 * 6)  # chunks of 7 points (50 = 7*7 + 1)
    chunked = diagnostics.ptk_covariances(model, xs)
    for a, b in zip(whole, chunked):
        _close(b.numpy(), a.numpy(), 1e-13)


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_activation_derivative_matches_autograd(act):
    h = torch.linspace(-4, 4, 101, dtype=torch.float64).requires_grad_(True)
    (grad,) = torch.autograd.grad(ACT[act](h).sum(), h)
    _close(activation_derivative(act, h.detach()).numpy(), grad.numpy(), 1e-12)


# -- engine level: the snapshot of a trained float64 run ------------------------------------

def _tiny(**over) -> RunConfig:
    raw = {"data": {"kind": "synthetic", "d": 4, "target": "x0*x1 + sin(x2)", "n_train": 64, "n_test": 16},
           "model": {"depth": 2, "width": 6, "activation": "tanh", "bias": True},
           "optim": {"name": "sgd", "lr": 0.2, "batch_size": 16},
           "measure": {"every": 5, "n_points": 40}, "steps": 10, "seed": 3, "device": "cpu", "dtype": "float64"}
    cfg = RunConfig.from_dict(raw)
    return cfg.replace(**over) if over else cfg


@pytest.mark.parametrize("kind,alpha", [("pearson", 1.0), ("cosine", 0.5)])
def test_engine_snapshot_matches_reference(kind, alpha):
    cfg = _tiny(**{"measure.correlation": kind, "measure.alpha": alpha})
    w0_engine = Engine(cfg)
    engine = Engine(cfg)
    engine.step(10)
    snap = engine.snapshot()
    assert snap.step == 10 and snap.measured_step == 10
    params = _params(engine.model)
    xs = engine.dataset.x_measure
    assert xs.shape == (40, 4) and xs.dtype == torch.float64
    for l in (1, 2):
        s = snap.layer(l)
        np.testing.assert_array_equal(s.W0, w0_engine.snapshot().layer(l).W)
        assert np.abs(s.W - s.W0).max() > 1e-4  # training moved the weights
        k = reference_K(params, "tanh", xs, l)
        _close(s.K, k)
        _close(s.agop, reference_agop_direct(params, "tanh", xs, l))
        dw = s.W - s.W0
        assert s.uc_nfa == pytest.approx(rho(s.W.T @ s.W, mpow(s.W.T @ k @ s.W, alpha), kind), abs=1e-9)
        assert s.c_nfa == pytest.approx(rho(dw.T @ dw, mpow(dw.T @ k @ dw, alpha), kind), abs=1e-9)
    g = snap.g_star
    assert g is not None and g.shape == (4, 4)
    assert snap.layer(1).feature_quality == pytest.approx(rho(snap.layer(1).nfm, mpow(g, alpha), kind), abs=1e-9)
    assert snap.layer(2).feature_quality is None


def test_c_nfa_undefined_at_initialisation():
    snap = Engine(_tiny()).snapshot()
    assert snap.step == 0
    for s in snap.layers:
        assert s.c_nfa is None
        assert s.rel_movement == 0.0
        assert np.all(s.centered_nfm == 0) and np.all(s.centered_agop == 0)
        assert s.nfm_shares == pytest.approx((1.0, 0.0, 0.0))
        assert np.isfinite(s.uc_nfa)


# -- identities and invariants --------------------------------------------------------------

def _stats_for(depth, width, d, c, act, alpha=1.0, kind="pearson"):
    model, w0s = _moved_model(depth, width, d, c, act, False, seed=11)
    xs = torch.randn(25, d, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    return diagnostics.measure_model(model, w0s, xs, kind, alpha)


@pytest.mark.parametrize("width,d", [(9, 4), (4, 9), (6, 6)])
def test_alignment_identity_with_cosine(width, d):
    """rho(NFM, AGOP) == rho(S^2, S U^T K U S) for cosine rho, both SVD branches."""
    for s in _stats_for(2, width, d, 3, "relu"):
        assert s.alignment_cosine == pytest.approx(s.uc_nfa_cosine, abs=1e-10)
        sv = s.singular_values
        assert np.all(np.diff(sv) <= 1e-12)  # descending
        direct = rho(np.diag(sv ** 2), sv[:, None] * s.utku * sv[None, :], "cosine")
        assert s.alignment_cosine == pytest.approx(direct, abs=1e-12)
        assert s.uc_nfa_cosine == pytest.approx(rho(s.nfm, s.agop, "cosine"), abs=1e-12)
        off = s.utku - np.diag(np.diag(s.utku))
        share = np.linalg.norm(np.diag(s.utku)) / np.sqrt(np.linalg.norm(np.diag(s.utku)) ** 2 + np.linalg.norm(off) ** 2)
        assert s.diag_share == pytest.approx(share, abs=1e-12)
        assert 0 < s.diag_share <= 1


def test_diag_share_is_one_when_U_diagonalises_K():
    """With K diagonal in U's basis the alignment is perfect: diag_share 1 and UC-NFA (cosine) 1 when K = I."""
    gen = torch.Generator().manual_seed(5)
    w = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    u, _, _ = torch.linalg.svd(w, full_matrices=False)
    k_aligned = u @ torch.diag(torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64)) @ u.T
    s = diagnostics.layer_stats(1, w, w * 0.5, k_aligned, "cosine", 1.0)
    assert s.diag_share == pytest.approx(1.0, abs=1e-12)
    s_id = diagnostics.layer_stats(1, w, w * 0.5, torch.eye(5, dtype=torch.float64), "cosine", 1.0)
    assert s_id.uc_nfa == pytest.approx(1.0, abs=1e-12)
    k_rand = torch.randn(5, 5, generator=gen, dtype=torch.float64)
    s_rand = diagnostics.layer_stats(1, w, w * 0.5, k_rand @ k_rand.T, "cosine", 1.0)
    assert s_rand.diag_share < 0.999


@pytest.mark.parametrize("act", ["relu", "linear", "silu"])
def test_symmetric_psd_and_decomposition(act):
    for s in _stats_for(3, 7, 5, 3, act):
        for name in ("nfm", "K", "agop", "centered_nfm", "centered_agop"):
            m = getattr(s, name)
            np.testing.assert_allclose(m, m.T, rtol=0, atol=1e-12 * max(1.0, np.abs(m).max()))
            eig = np.linalg.eigvalsh(m)
            assert eig.min() >= -1e-10 * max(1.0, eig.max()), name
            assert not m.flags.writeable
        w0, dw, k = s.W0, s.W - s.W0, s.K
        nfm_terms = (w0.T @ w0, w0.T @ dw + dw.T @ w0, dw.T @ dw)
        agop_terms = (w0.T @ k @ w0, w0.T @ k @ dw + dw.T @ k @ w0, dw.T @ k @ dw)
        _close(sum(nfm_terms), s.nfm, 1e-12)
        _close(sum(agop_terms), s.agop, 1e-12)
        _close(nfm_terms[2], s.centered_nfm, 1e-12)
        _close(agop_terms[2], s.centered_agop, 1e-12)
        for shares, terms in ((s.nfm_shares, nfm_terms), (s.agop_shares, agop_terms)):
            norms = np.array([np.linalg.norm(t) for t in terms])
            assert sum(shares) == pytest.approx(1.0, abs=1e-12)
            np.testing.assert_allclose(shares, norms / norms.sum(), rtol=1e-10)
            assert all(v > 0 for v in shares)
        row = s.scalars()
        assert (row["init_share"], row["cross_share"], row["centered_share"]) == s.nfm_shares


def test_correlation_and_matrix_power_helpers():
    gen = torch.Generator().manual_seed(9)
    a = torch.randn(6, 6, generator=gen, dtype=torch.float64)
    b = torch.randn(6, 6, generator=gen, dtype=torch.float64)
    for kind in ("pearson", "cosine"):
        assert diagnostics.correlation(a, b, kind) == pytest.approx(rho(a.numpy(), b.numpy(), kind), abs=1e-14)
    # pearson ignores a constant shift; cosine does not
    assert diagnostics.correlation(a + 5, b, "pearson") == pytest.approx(diagnostics.correlation(a, b, "pearson"), abs=1e-14)
    assert diagnostics.correlation(a + 5, b, "cosine") != pytest.approx(diagnostics.correlation(a, b, "cosine"), abs=1e-3)
    assert np.isnan(diagnostics.correlation(torch.zeros(3, 3), a[:3, :3]))
    psd = a @ a.T
    root = diagnostics.matrix_power(psd, 0.5).numpy()
    _close(root @ root, psd.numpy(), 1e-12)
    _close(root, mpow(psd.numpy(), 0.5), 1e-12)
    assert diagnostics.matrix_power(psd, 1.0) is psd
    # negative eigenvalues are clipped to zero
    sym = (a + a.T).numpy()
    vals, vecs = np.linalg.eigh(sym)
    assert vals.min() < 0
    _close(diagnostics.matrix_power(torch.from_numpy(sym), 0.5).numpy(),
           (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T, 1e-12)


def test_diagnostics_leave_model_mode_and_grads_alone():
    cfg = _tiny()
    engine = Engine(cfg)
    engine.step(3)
    engine.model.train()
    for p in engine.model.parameters():
        p.grad = torch.full_like(p, 7.0)
    engine.measure()
    assert engine.model.training
    assert all(torch.all(p.grad == 7.0) for p in engine.model.parameters())
