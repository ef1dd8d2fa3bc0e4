"""The paper's settings: standardisation kinds, all-point K, warm-up, weight decay, epoch
measurements, step norms, biases in final.npz, and the paper presets."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from core import data
from core.config import PRESETS, RunConfig, preset_config
from core.diagnostics import layer_stats, ptk_covariances
from core.engine import Engine
from core.history import History
from core.iofiles import read_npz


def _cfg(**over) -> RunConfig:
    raw = {"data": {"kind": "synthetic", "d": 5, "target": "x0*x1", "n_train": 64, "n_test": 32},
           "model": {"depth": 3, "width": 8, "activation": "relu", "bias": False},
           "optim": {"name": "sgd", "lr": 0.05, "batch_size": 64},
           "measure": {"every": 10, "n_points": 32}, "steps": 60, "seed": 0, "device": "cpu", "dtype": "float64"}
    cfg = RunConfig.from_dict(raw)
    return cfg.replace(**over) if over else cfg


def _params(engine: Engine) -> list[torch.Tensor]:
    return [p.detach().clone() for p in engine.model.parameters()]


def _grads(engine: Engine) -> list[torch.Tensor]:
    """Full-batch gradient (batch_size = n_train in these configs)."""
    ds = engine.dataset
    loss = F.mse_loss(engine.model(ds.x_train), ds.y_train)
    return [g.detach().clone() for g in torch.autograd.grad(loss, list(engine.model.parameters()))]


# -- standardisation ----------------------------------------------------------------------------

def _indexed_file(tmp_path, rng) -> tuple[str, np.ndarray]:
    """An NPZ whose label is the row number, so every loaded row can be traced back."""
    x = rng.normal(3.0, 2.0, size=(40, 6)) * np.array([1, 10, 0.1, 5, 1, 2]) + np.arange(6)
    x[:, 4] = 7.0  # a constant feature: its std is 0
    path = tmp_path / "rows.npz"
    np.savez(path, X=x, y=np.arange(40, dtype=np.float64))
    return str(path), x


@pytest.mark.parametrize("kind", ["per_feature", "per_channel", "none"])
def test_standardisation_kinds_match_numpy(tmp_path, kind):
    path, x = _indexed_file(tmp_path, np.random.default_rng(0))
    cfg = RunConfig.from_dict({"data": {"kind": "file", "path": path, "n_train": 30, "n_test": 10,
                                        "task": "regression", "standardize": kind},
                               "model": {"depth": 1, "width": 4}, "device": "cpu", "dtype": "float64"})
    ds = data.load_dataset(cfg)
    train_rows = ds.y_train[:, 0].numpy().astype(int)
    test_rows = ds.y_test[:, 0].numpy().astype(int)
    raw_train = x[train_rows]
    if kind == "per_feature":
        mean, std = raw_train.mean(0), raw_train.std(0, ddof=1)
        std = np.where(std > 1e-12, std, 1.0)
    elif kind == "per_channel":
        mean, std = raw_train.mean(), raw_train.std(ddof=1)
    else:
        mean, std = 0.0, 1.0
    np.testing.assert_allclose(ds.x_train.numpy(), (raw_train - mean) / std, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ds.x_test.numpy(), (x[test_rows] - mean) / std, rtol=1e-12, atol=1e-12)
    if kind == "per_channel":  # one mean and std for all entries: the whole training block is standard
        assert abs(ds.x_train.numpy().mean()) < 1e-12 and ds.x_train.numpy().std(ddof=1) == pytest.approx(1.0)


def test_per_channel_digits_and_synthetic_ground_truth():
    cfg = preset_config("paper-digits").replace(**{"device": "cpu", "dtype": "float64"})
    flat = data.load_dataset(cfg).x_train.numpy()
    # one affine map for every pixel: the 17 raw grey levels 0..16 stay 17 values
    assert len(np.unique(np.round(flat, 9))) <= 17
    assert abs(flat.mean()) < 1e-12 and flat.std(ddof=1) == pytest.approx(1.0)
    per_feature = data.load_dataset(cfg.replace(**{"data.standardize": "per_feature"})).x_train.numpy()
    assert len(np.unique(np.round(per_feature, 9))) > 100  # each pixel its own scale
    # synthetic: G* is taken w.r.t. the standardised input whatever the kind
    for kind in ("per_channel", "none"):
        syn = data.load_dataset(_cfg(**{"data.standardize": kind}))
        assert syn.g_star is not None and torch.isfinite(syn.g_star).all()
    raw = data.load_dataset(_cfg(**{"data.standardize": "none", "data.target": "x0*x1"}))
    x = raw.x_train[raw.measure_index].to(torch.float64)
    g = torch.stack([x[:, 1], x[:, 0]] + [torch.zeros_like(x[:, 0])] * 3, 1)  # grad of x0*x1
    torch.testing.assert_close(raw.g_star, g.T @ g / x.shape[0])


# -- all training points ------------------------------------------------------------------------

def test_all_point_k_equals_the_subset_path_over_every_point():
    engine_all = Engine(_cfg(**{"measure.n_points": 0}))
    ds = engine_all.dataset
    assert ds.measures_all and ds.x_measure.data_ptr() == ds.x_train.data_ptr()  # no copy of the data
    engine_sub = Engine(_cfg(**{"measure.n_points": 64}))  # the subset path, drawing all 64 points
    engine_small = Engine(_cfg(**{"measure.n_points": 32}))
    for e in (engine_all, engine_sub, engine_small):
        e.step(7)
    snaps = [e.snapshot() for e in (engine_all, engine_sub, engine_small)]
    shuffled = ds.x_train[torch.randperm(64, generator=torch.Generator().manual_seed(1))]
    direct = ptk_covariances(engine_all.model, shuffled)  # the mean over every point, in another order
    for s_all, s_sub, s_small, k in zip(*(s.layers for s in snaps), direct):
        np.testing.assert_allclose(s_all.K, k.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(s_all.K, s_sub.K, rtol=1e-10, atol=1e-12)
        assert s_all.uc_nfa == pytest.approx(s_sub.uc_nfa, abs=1e-10)
        assert not np.allclose(s_all.K, s_small.K)  # 32 of 64 points measure something else


def test_all_points_is_capped_by_the_point_limit():
    from core.config import ConfigError, Limits, validate

    cfg = _cfg(**{"measure.n_points": 0, "data.n_train": 3000})
    with pytest.raises(ConfigError, match="measure.n_points"):
        validate(cfg, Limits(max_points=2000))
    validate(cfg, Limits(max_points=3000))


# -- warm-up and weight decay -------------------------------------------------------------------

@pytest.mark.parametrize("rule", ["sgd", "adam", "slo"])
def test_warmup_steps_are_plain_sgd_then_the_optimiser(rule):
    over = {"optim.warmup_steps": 2, "optim.warmup_lr": 1e-3, "optim.weight_decay": 0.1,
            "optim.name": "adam" if rule == "adam" else "sgd", "optim.momentum": 0.9 if rule == "sgd" else 0.0,
            "optim.slo.enabled": rule == "slo"}
    engine = Engine(_cfg(**over))
    for _ in range(2):
        before, grads = _params(engine), _grads(engine)
        engine.step(1)
        for p0, g, p1 in zip(before, grads, _params(engine)):
            torch.testing.assert_close(p1, p0 - 1e-3 * (g + 0.1 * p0), rtol=0, atol=1e-15)
    before, grads = _params(engine), _grads(engine)
    engine.step(1)  # the optimiser proper, with fresh state
    moved = [float(torch.linalg.vector_norm(p1 - p0)) for p0, p1 in zip(before, _params(engine))]
    small = [float(torch.linalg.vector_norm(1e-3 * (g + 0.1 * p0))) for p0, g in zip(before, grads)]
    assert all(m > 5 * s for m, s in zip(moved, small))


def test_arms_leave_warmup_with_the_same_weights():
    from core.arms import make_arms

    cfg = _cfg(**{"optim.warmup_steps": 3, "optim.batch_size": 16, "optim.slo.boost": 4.0})
    engines = [Engine(arm.config) for arm in make_arms(cfg)]
    assert len(engines) == 3
    for e in engines:
        e.step(3)
    ref = _params(engines[0])
    for e in engines[1:]:
        for a, b in zip(ref, _params(e)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    for e in engines:
        e.step(1)
    assert not torch.equal(_params(engines[0])[0], _params(engines[2])[0])


def test_weight_decay_in_sgd_update_by_hand():
    engine = Engine(_cfg(**{"optim.lr": 0.1, "optim.weight_decay": 0.3, "model.bias": True}))
    before, grads = _params(engine), _grads(engine)
    engine.step(1)
    for p0, g, p1 in zip(before, grads, _params(engine)):
        torch.testing.assert_close(p1, p0 - 0.1 * (g + 0.3 * p0), rtol=0, atol=1e-15)


def test_weight_decay_in_adam_update_by_hand():
    engine = Engine(_cfg(**{"optim.name": "adam", "optim.lr": 0.01, "optim.weight_decay": 0.5}))
    before, grads = _params(engine), _grads(engine)
    engine.step(1)
    for p0, g, p1 in zip(before, grads, _params(engine)):
        gd = g + 0.5 * p0  # first Adam step: m_hat = gd, v_hat = gd^2
        torch.testing.assert_close(p1, p0 - 0.01 * gd / (gd.abs() + 1e-8), rtol=0, atol=1e-12)


def test_weight_decay_in_slo_update_by_hand_keeps_the_speed():
    engine = Engine(_cfg(**{"optim.slo.enabled": True, "optim.slo.speed": 0.02, "optim.slo.boost": 3.0,
                            "optim.weight_decay": 0.2}))
    layer_of = [i for i, layer in enumerate(engine.model.layers, start=1) for _ in layer.parameters()]
    before, grads = _params(engine), _grads(engine)
    engine.step(1)
    for layer, p0, g, p1 in zip(layer_of, before, grads, _params(engine)):
        eta = 0.06 if layer == 1 else 0.02
        gd = g + 0.2 * p0
        torch.testing.assert_close(p1, p0 - eta * gd / (torch.linalg.vector_norm(gd) + 1e-12), rtol=0, atol=1e-15)
        assert float(torch.linalg.vector_norm(p1 - p0)) == pytest.approx(eta, rel=1e-9)
    snap = engine.snapshot()
    assert [s.step_norm for s in snap.layers] == pytest.approx([0.06, 0.02, 0.02], rel=1e-9)


def test_weight_decay_changes_live():
    engine = Engine(_cfg(**{"optim.lr": 0.1}))
    engine.configure(engine.config.replace(**{"optim.weight_decay": 0.4}))
    before, grads = _params(engine), _grads(engine)
    engine.step(1)
    for p0, g, p1 in zip(before, grads, _params(engine)):
        torch.testing.assert_close(p1, p0 - 0.1 * (g + 0.4 * p0), rtol=0, atol=1e-15)


# -- measuring every epoch, step norms ----------------------------------------------------------

def test_every_epochs_measures_at_epoch_ends():
    # 64 points at batch 24: epochs of 3 steps (24, 24, 16); every 2 epochs: steps 6, 12, ...
    engine = Engine(_cfg(**{"optim.batch_size": 24, "measure.every_epochs": 2, "measure.every": 5}))
    assert engine.steps_to_next_measure() == 6
    engine.step(4)
    assert engine.steps_to_next_measure() == 2
    engine.run(9)  # to step 13: measures 6 and 12, then the last step
    steps = sorted({r["step"] for r in engine.history.rows})
    assert steps == [0, 6, 12, 13]
    assert engine.steps_to_next_measure() == 5  # step 13 began epoch 5; epoch 6 ends at step 18


def test_step_norm_is_the_last_update_before_each_measurement(tmp_path):
    engine = Engine(_cfg(**{"optim.batch_size": 16, "measure.every": 5}))
    engine.step(4)
    w_before = [w.detach().clone() for w in engine.model.weights()]
    engine.step(1)  # a scheduled measurement at step 5
    expected = [float(torch.linalg.matrix_norm(w.detach() - b)) for w, b in zip(engine.model.weights(), w_before)]
    rows = [r for r in engine.history.rows if r["step"] == 5]
    assert [r["step_norm"] for r in rows] == pytest.approx(expected, rel=1e-12)
    assert all(r["step_norm"] is None for r in engine.history.rows if r["step"] == 0)
    engine.step(2)  # an off-schedule stop: the last step of a call is kept too
    w_before = [w.detach().clone() for w in engine.model.weights()]
    engine.step(1)
    snap = engine.snapshot()
    expected = [float(torch.linalg.matrix_norm(w.detach() - b)) for w, b in zip(engine.model.weights(), w_before)]
    assert snap.step == 8 and [s.step_norm for s in snap.layers] == pytest.approx(expected, rel=1e-12)
    engine.save(tmp_path / "r")
    text = (tmp_path / "r" / "metrics.csv").read_text().splitlines()
    head = text[0].split(",")
    col = head.index("step_norm")
    assert text[1].split(",")[col] == ""  # step 0: no step yet
    back = History.read_csv(tmp_path / "r" / "metrics.csv")
    assert [r["step_norm"] for r in back.rows if r["step"] == 8] == pytest.approx(expected, rel=1e-12)
    again = Engine.load(tmp_path / "r")
    assert [s.step_norm for s in again.snapshot().layers] == pytest.approx(expected, rel=1e-12)


# -- final.npz rebuilds the network -------------------------------------------------------------

def test_final_npz_alone_rebuilds_the_network(tmp_path):
    cfg = _cfg(**{"model.bias": True, "measure.n_points": 0, "optim.batch_size": 16, "model.activation": "tanh"})
    engine = Engine(cfg)
    engine.step(9)
    snap = engine.snapshot()
    engine.save(tmp_path / "r")
    final = read_npz(tmp_path / "r" / "final.npz")
    depth = cfg.model.depth
    assert {f"layer{l}.b" for l in range(1, depth + 1)} | {"out.b"} <= set(final)
    # a network built from final.npz alone (no config, no engine)
    x, y = torch.from_numpy(final["X_measure"]), torch.from_numpy(final["Y_measure"])
    ws = [torch.from_numpy(final[f"layer{l}.W"]) for l in range(1, depth + 1)]
    bs = [torch.from_numpy(final[f"layer{l}.b"]) for l in range(1, depth + 1)]
    a = x
    for w, b in zip(ws, bs):
        a = torch.tanh(a @ w.T + b)
    out = a @ torch.from_numpy(final["out.W"]).T + torch.from_numpy(final["out.b"])
    assert float(F.mse_loss(out, y)) == pytest.approx(snap.train_loss, rel=1e-12)  # measured set = training set
    rebuilt = _mlp_from(final, depth, "tanh")
    for s, k in zip(snap.layers, ptk_covariances(rebuilt, x)):
        np.testing.assert_allclose(k.numpy(), s.K, rtol=1e-10, atol=1e-14)
        again = layer_stats(s.layer, torch.from_numpy(final[f"layer{s.layer}.W"]),
                            torch.from_numpy(final[f"layer{s.layer}.W0"]), k)
        assert again.uc_nfa == pytest.approx(s.uc_nfa, abs=1e-12)
        assert again.c_nfa == pytest.approx(s.c_nfa, abs=1e-12)


def _mlp_from(final: dict, depth: int, activation: str):
    from core.config import ModelConfig
    from core.model import MLP

    w1, out_w = final["layer1.W"], final["out.W"]
    model = MLP(w1.shape[1], out_w.shape[0], ModelConfig(depth=depth, width=w1.shape[0], activation=activation,
                                                         bias=True), torch.Generator(), torch.float64)
    with torch.no_grad():
        for l, layer in enumerate(model.hidden, start=1):
            layer.weight.copy_(torch.from_numpy(final[f"layer{l}.W"]))
            layer.bias.copy_(torch.from_numpy(final[f"layer{l}.b"]))
        model.out.weight.copy_(torch.from_numpy(out_w))
        model.out.bias.copy_(torch.from_numpy(final["out.b"]))
    return model


def test_bias_free_final_npz_has_no_bias_keys(tmp_path):
    engine = Engine(_cfg())
    engine.step(2)
    engine.save(tmp_path / "r")
    assert not any(k.endswith(".b") for k in read_npz(tmp_path / "r" / "final.npz"))


# -- presets ------------------------------------------------------------------------------------

def test_paper_digits_preset_follows_the_authors_recipe():
    cfg = preset_config("paper-digits")
    m, o, me, d = cfg.model, cfg.optim, cfg.measure, cfg.data
    assert (m.depth, m.width, m.activation, m.bias, m.init_scale) == (5, 256, "relu", False, 1.0)
    assert (o.name, o.lr, o.momentum, o.batch_size, o.weight_decay) == ("sgd", 2.0, 0.0, 128, 0.0)
    assert (d.kind, d.standardize, me.n_points, me.every_epochs) == ("digits", "per_channel", 0, 1)
    epoch = math.ceil(d.n_train / o.batch_size)
    assert (o.warmup_steps, o.warmup_lr) == (epoch, 1e-4)  # one warm-up epoch at lr 1e-4
    assert cfg.steps == 151 * epoch  # the warm-up epoch + 150 epochs
    assert d.n_train + d.n_test == 1797  # all of scikit-learn's digits


def test_paper_synthetic_input_exceeds_width():
    cfg = preset_config("paper-synthetic")
    assert cfg.data.d > cfg.model.width and cfg.data.kind == "synthetic"
    assert cfg.measure.n_points == 0 and cfg.measure.every_epochs == 1 and cfg.optim.warmup_steps > 0


def test_no_preset_note_calls_itself_the_papers():
    from core.presets import PRESET_NOTES

    assert set(PRESET_NOTES) == set(PRESETS)
    assert not any("paper's" in note.lower() for note in PRESET_NOTES.values())


def test_paper_digits_measures_after_the_warmup_epoch():
    cfg = preset_config("paper-digits").replace(**{"device": "cpu", "steps": 24, "model.width": 16})
    engine = Engine(cfg)
    w0 = _params(engine)
    engine.run()
    steps = sorted({r["step"] for r in engine.history.rows})
    assert steps == [0, 12, 24]  # every epoch; the first after the warm-up epoch
    rows = [r for r in engine.history.rows if r["step"] == 12]
    assert all(r["step_norm"] < 1e-3 for r in rows)  # lr 1e-4 steps
    assert all(r["c_nfa"] is not None for r in rows)  # the weights moved: C-NFA is defined
    assert any(not torch.equal(a, b) for a, b in zip(w0, _params(engine)))
