"""Identity baselines, jackknife standard errors and the K sweep's structure, against direct computations.

The jackknife reference recomputes K on each held-out subset with the slow per-sample
autograd reference (test_core_diagnostics.reference_K), then UC-NFA / C-NFA with numpy,
then the textbook delete-one-group formula. Nothing here uses core.jackknife.
"""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
import torch

from core import diagnostics, ksweep
from core.engine import Engine
from core.history import COLUMNS, History
from test_core_diagnostics import _moved_model, _params, _tiny, mpow, reference_K, rho


def _direct_se(params, act, xs, layer, w, w0, groups, kind, alpha):
    """Delete-one-group jackknife of UC-NFA and C-NFA with K recomputed per held-out subset."""
    dw = w - w0
    uc, c = [], []
    for start, stop in ksweep.group_bounds(len(xs), groups):
        rest = torch.cat([xs[:start], xs[stop:]])
        k = reference_K(params, act, rest, layer)
        uc.append(rho(w.T @ w, mpow(w.T @ k @ w, alpha), kind))
        c.append(rho(dw.T @ dw, mpow(dw.T @ k @ dw, alpha), kind))
    g = len(uc)
    return tuple(float(np.sqrt((g - 1) / g * np.sum((np.array(v) - np.mean(v)) ** 2))) for v in (uc, c))


@pytest.mark.parametrize("kind,alpha,groups,n", [("pearson", 1.0, 8, 29), ("cosine", 1.0, 5, 20),
                                                 ("pearson", 0.5, 4, 18)])
def test_jackknife_se_matches_held_out_recomputation(kind, alpha, groups, n):
    model, w0s = _moved_model(2, 6, 4, 3, "tanh", True, seed=4)
    xs = torch.randn(n, 4, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    params = _params(model)
    stats = diagnostics.measure_model(model, w0s, xs, kind, alpha, se_groups=groups)
    for s in stats:
        w, w0 = params[s.layer - 1][0].numpy(), w0s[s.layer - 1].numpy()
        uc_se, c_se = _direct_se(params, "tanh", xs, s.layer, w, w0, groups, kind, alpha)
        tol = 1e-10 if alpha == 1 else 1e-7
        assert uc_se > 1e-4 and c_se > 1e-4  # the check is not trivially zero
        assert s.uc_nfa_se == pytest.approx(uc_se, rel=tol, abs=1e-12)
        assert s.c_nfa_se == pytest.approx(c_se, rel=tol, abs=1e-12)


def test_se_undefined_without_groups_or_movement():
    model, w0s = _moved_model(2, 5, 3, 2, "relu", False, seed=2)
    xs = torch.randn(12, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for s in diagnostics.measure_model(model, w0s, xs, se_groups=1):
        assert s.uc_nfa_se is None and s.c_nfa_se is None
    fresh = [w.detach().clone() for w in model.weights()]  # dW = 0: C-NFA and its SE undefined
    for s in diagnostics.measure_model(model, fresh, xs):
        assert s.c_nfa is None and s.c_nfa_se is None
        assert s.uc_nfa_se is not None and s.uc_nfa_se > 0


@pytest.mark.parametrize("kind,alpha", itertools.product(("pearson", "cosine"), (1.0, 0.5)))
def test_identity_baselines_match_numpy(kind, alpha):
    model, w0s = _moved_model(3, 7, 5, 3, "gelu", False, seed=6)
    xs = torch.randn(25, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    for s in diagnostics.measure_model(model, w0s, xs, kind, alpha):
        eye = np.eye(s.nfm.shape[0])
        assert s.nfm_identity == pytest.approx(rho(s.nfm, eye, kind), abs=1e-12)
        assert s.agop_identity == pytest.approx(rho(mpow(s.agop, alpha), eye, kind), abs=1e-9)
        assert -1 <= s.nfm_identity <= 1


def test_identity_baseline_is_one_for_a_multiple_of_the_identity():
    w = 3 * torch.eye(4, dtype=torch.float64)
    s = diagnostics.layer_stats(1, w, w * 0.5, 2 * torch.eye(4, dtype=torch.float64))
    assert s.nfm_identity == pytest.approx(1.0, abs=1e-12)
    assert s.agop_identity == pytest.approx(1.0, abs=1e-12)


def test_float32_measurement_agrees_with_float64_reference():
    """Exact stays exact in float32: every matrix within 1e-5 relative of the float64 per-sample reference."""
    model, w0s = _moved_model(3, 24, 10, 4, "relu", False, seed=9)
    xs = torch.randn(60, 10, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    params = _params(model)
    model32 = model.to(torch.float32)
    stats = diagnostics.measure_model(model32, [w.float() for w in w0s], xs.float())
    for s in stats:
        k = reference_K(params, "relu", xs, s.layer)
        w = params[s.layer - 1][0].numpy()
        for got, want in ((s.K, k), (s.agop, w.T @ k @ w), (s.nfm, w.T @ w)):
            assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()
        assert s.uc_nfa == pytest.approx(rho(w.T @ w, w.T @ k @ w, "pearson"), abs=1e-5)


def test_float32_products_agree_with_float64_on_every_number():
    """The float32 path (products in float32, reductions in float64) against float64 on the same weights.

    A realistic layer (96 wide, 300 points), an NFM whose mean entry dominates (shifted
    weights, the case where Pearson centring in float32 would cancel digits) and a small
    movement (||dW|| / ||W|| about 1e-3, the start of a run, where C-NFA is most fragile).
    The float64 side gets the float32 weights exactly, so only the arithmetic differs.
    """
    gen = torch.Generator().manual_seed(11)
    model, _ = _moved_model(3, 96, 40, 10, "relu", False, seed=3)
    with torch.no_grad():
        for w in model.weights():
            w.add_(0.2)  # a large mean entry in every NFM
    w0s = [w.detach().clone().float().double() for w in model.weights()]
    with torch.no_grad():
        for w in model.weights():
            w.add_(1e-3 * w.abs().mean() * torch.randn(w.shape, generator=gen, dtype=torch.float64))
    model64 = model.float().double()  # float32-representable weights in both runs
    xs = torch.randn(300, 40, generator=torch.Generator().manual_seed(5)).double()
    want = diagnostics.measure_model(model64, w0s, xs)
    got = diagnostics.measure_model(copy.deepcopy(model64).float(), [w.float() for w in w0s], xs.float())
    for a, b in zip(got, want):
        assert 5e-4 < b.rel_movement < 5e-3 and abs(b.nfm.mean()) > 10 * b.nfm.std()
        for key in diagnostics._MATRICES:
            x, y = getattr(a, key), getattr(b, key)
            assert np.abs(x - y).max() <= 1e-5 * np.abs(y).max(), key
        for key in ("uc_nfa", "c_nfa", "uc_nfa_cosine", "nfm_identity", "agop_identity", "rel_movement"):
            assert getattr(a, key) == pytest.approx(getattr(b, key), rel=1e-5, abs=1e-6), key
        for key in ("uc_nfa_se", "c_nfa_se"):
            assert getattr(a, key) == pytest.approx(getattr(b, key), rel=1e-3, abs=1e-7), key  # SEs reach 1e-14 here
        np.testing.assert_allclose(a.nfm_shares, b.nfm_shares, rtol=1e-5, atol=1e-7)
        assert a.diag_share == pytest.approx(b.diag_share, rel=1e-5)


def test_triangle_gram_equals_full_product():
    f = torch.randn(40, 13, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    acc = torch.zeros(13, 13, dtype=torch.float64)
    ksweep.gram_upper_(acc, f, leaf=2)
    full = ksweep._symmetrize(acc)
    torch.testing.assert_close(full, f.T @ f, rtol=0, atol=1e-12)
    assert torch.count_nonzero(torch.tril(acc, -1)) < 13 * 12 / 2  # the lower triangle was not computed


def test_grouped_sweep_sums_to_the_whole(monkeypatch):
    model, _ = _moved_model(3, 6, 5, 3, "silu", True)
    xs = torch.randn(23, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    whole = ksweep.ptk_sweep(model, xs, groups=1)
    monkeypatch.setattr(ksweep, "CHUNK_ELEMENTS", 2 * 3 * 6)  # 2 points per chunk, groups of 4-5 points
    grouped = ksweep.ptk_sweep(model, xs, groups=5)
    assert grouped.counts == (5, 5, 5, 4, 4)
    params = _params(model)
    for l, (a, b) in enumerate(zip(whole.sums, grouped.sums), start=1):
        torch.testing.assert_close(b.sum(0), a[0], rtol=0, atol=1e-12)
        start = 0
        for g, count in enumerate(grouped.counts):  # each group's sum is that group's points' K times count
            ref = reference_K(params, "silu", xs[start:start + count], l) * count
            np.testing.assert_allclose(b[g].numpy(), ref, rtol=0, atol=1e-12)
            start += count


def test_metrics_csv_records_baselines_and_errors(tmp_path):
    engine = Engine(_tiny())
    engine.step(10)
    snap = engine.snapshot()
    for name in ("nfm_identity", "agop_identity", "uc_nfa_se", "c_nfa_se"):
        assert name in COLUMNS
    engine.history.write_csv(tmp_path / "m.csv")
    rows = History.read_csv(tmp_path / "m.csv").rows
    last = {r["layer"]: r for r in rows if r["step"] == 10}
    for s in snap.layers:
        for name in ("nfm_identity", "agop_identity", "uc_nfa_se", "c_nfa_se"):
            assert last[s.layer][name] == pytest.approx(getattr(s, name), rel=1e-15)
    first = [r for r in rows if r["step"] == 0]
    assert all(r["c_nfa_se"] is None and r["uc_nfa_se"] > 0 for r in first)


def _detail_run(every: int, steps: int = 60, until: int | None = None) -> Engine:
    cfg = _tiny()
    cfg.steps, cfg.measure.every, cfg.measure.detail_every = steps, 5, every
    engine = Engine(cfg)
    engine.step(steps if until is None else until)
    return engine


def test_detail_every_fills_extras_only_at_its_measurements():
    full, sparse = _detail_run(1), _detail_run(4)
    rows_full, rows_sparse = full.history.rows, sparse.history.rows
    assert len(rows_full) == len(rows_sparse)
    steps = sorted({r["step"] for r in rows_full})
    detailed = {s for i, s in enumerate(steps) if i % 4 == 0} | {0, 60}
    assert detailed == {0, 20, 40, 60}
    for a, b in zip(rows_full, rows_sparse):
        assert (a["step"], a["layer"]) == (b["step"], b["layer"])
        for key in ("uc_nfa", "c_nfa", "rel_movement", "train_loss", "nfm_identity", "init_share"):
            assert b[key] == pytest.approx(a[key], rel=1e-12, abs=1e-15), key
        extras = ("uc_nfa_se", "diag_share") + (("c_nfa_se",) if a["step"] else ())
        for key in extras:
            if b["step"] in detailed:
                assert b[key] == a[key], key  # the same computation: same bits
            else:
                assert b[key] is None and a[key] is not None, key


def test_detail_every_survives_save_and_load(tmp_path):
    whole = _detail_run(3)
    half = _detail_run(3, until=25)
    half.save(tmp_path / "run", measure=False)
    resumed = Engine.load(tmp_path / "run")
    resumed.step(35)
    assert resumed.history.to_csv_text() == whole.history.to_csv_text()


def test_engine_computes_each_layers_alignment_once_per_detailed_measurement(monkeypatch):
    """The engine's step norms are set on copies of the measured layers; the prefetched SVDs must come along."""
    calls = []
    real = diagnostics.left_singular
    monkeypatch.setattr(diagnostics, "left_singular", lambda *a: calls.append(1) or real(*a))
    engine = _detail_run(2, steps=20, until=10)  # measurements at 0, 5, 10: detailed at 0 and 10
    assert len(calls) == 2 * engine.config.model.depth
    last = [r for r in engine.history.rows if r["step"] == 10]
    assert all(r["diag_share"] is not None and r["step_norm"] is not None for r in last)
    assert [s.diag_share for s in engine.snapshot().layers] == [r["diag_share"] for r in last]
    assert len(calls) == 2 * engine.config.model.depth  # reading them again computed nothing


def test_prefetched_alignment_equals_the_lazy_one_and_keeps_threads():
    model, w0s = _moved_model(3, 24, 10, 4, "relu", False, seed=9)
    xs = torch.randn(60, 10, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        eager = diagnostics.measure_model(model, w0s, xs)  # two layers at once on two threads
        assert torch.get_num_threads() == 2
        lazy = diagnostics.measure_model(model, w0s, xs, detailed=False)
    finally:
        torch.set_num_threads(before)
    for a, b in zip(eager, lazy):
        assert "_svd" in a.__dict__ and "_svd" not in b.__dict__
        assert a.diag_share == pytest.approx(b.diag_share, rel=1e-12)  # one thread vs two: the last bits may differ
        np.testing.assert_allclose(a.utku, b.utku, rtol=1e-10, atol=1e-14 * np.abs(b.utku).max())
        assert a.scalars()["diag_share"] == a.diag_share and b.scalars()["diag_share"] is None
