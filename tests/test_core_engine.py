"""core.engine: SLO updates, live reconfiguration, determinism, divergence, save/load/resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from core import optim as optim_lib
from core.config import ConfigError, RunConfig
from core.engine import Engine, needs_reset
from core.history import COLUMNS, History

REPO = Path(__file__).resolve().parents[1]


def _cfg(**over) -> RunConfig:
    raw = {"data": {"kind": "synthetic", "d": 5, "target": "x0*x1", "n_train": 64, "n_test": 32},
           "model": {"depth": 3, "width": 8, "activation": "relu", "bias": False},
           "optim": {"name": "sgd", "lr": 0.05, "batch_size": 16},
           "measure": {"every": 10, "n_points": 32}, "steps": 60, "seed": 0, "device": "cpu"}
    cfg = RunConfig.from_dict(raw)
    return cfg.replace(**over) if over else cfg


def _full_batch_cfg(**over) -> RunConfig:
    base = {"dtype": "float64", "optim.batch_size": 64, "model.bias": True, "model.activation": "tanh"}
    base.update(over)
    return _cfg(**base)


def _full_batch_grads(engine: Engine) -> list[torch.Tensor]:
    """The gradient of the MSE over the whole training set (= the minibatch when batch_size >= n_train)."""
    model = engine.model
    params = list(model.parameters())
    ds = engine.dataset
    loss = F.mse_loss(model(ds.x_train), ds.y_train)
    return [g.detach().clone() for g in torch.autograd.grad(loss, params)]


def _layer_of_params(engine: Engine) -> list[int]:
    """1-based layer number of each parameter (hidden layers 1..L, output L+1)."""
    out = []
    for i, layer in enumerate(engine.model.layers, start=1):
        out += [i] * len(list(layer.parameters()))
    return out


def _params(engine: Engine) -> list[torch.Tensor]:
    return [p.detach().clone() for p in engine.model.parameters()]


# -- SLO ---------------------------------------------------------------------------------------

def test_slo_step_equals_formula_and_speeds():
    cfg = _full_batch_cfg(**{"optim.slo.enabled": True, "optim.slo.speed": 0.01, "optim.slo.boost": 5.0,
                             "optim.slo.target_layer": 2})
    engine = Engine(cfg)
    layers = _layer_of_params(engine)
    assert len(layers) == 8  # 4 weights + 4 biases
    for _ in range(3):
        before, grads = _params(engine), _full_batch_grads(engine)
        engine.step(1)
        after = _params(engine)
        for layer, p0, g, p1 in zip(layers, before, grads, after):
            eta = 0.01 * 5.0 if layer == 2 else 0.01
            expected = p0 - eta * g / (torch.linalg.vector_norm(g) + 1e-12)
            torch.testing.assert_close(p1, expected, rtol=0, atol=1e-14)
            assert float(torch.linalg.vector_norm(p1 - p0)) == pytest.approx(eta, rel=1e-9)


def test_slo_speed_does_not_depend_on_gradient_size():
    opt_params = [torch.nn.Parameter(torch.zeros(3, 3, dtype=torch.float64)) for _ in range(2)]
    opt = optim_lib.SLO([{"params": [opt_params[0]], "layer": 1}, {"params": [opt_params[1]], "layer": 2}],
                        speed=0.1, boost=3.0, target_layer=1)
    opt_params[0].grad = torch.full((3, 3), 1e-6, dtype=torch.float64)
    opt_params[1].grad = torch.full((3, 3), 1e6, dtype=torch.float64)
    opt.step()
    assert float(opt_params[0].detach().norm()) == pytest.approx(0.3, rel=1e-6)
    assert float(opt_params[1].detach().norm()) == pytest.approx(0.1, rel=1e-12)
    opt.set_rates(0.2, 1.0, 2)
    opt_params[0].grad = torch.ones(3, 3, dtype=torch.float64)
    before = opt_params[0].detach().clone()
    opt.step()
    assert float((opt_params[0].detach() - before).norm()) == pytest.approx(0.2, rel=1e-12)


def _step_norms(engine: Engine) -> dict[int, list[float]]:
    before = _params(engine)
    engine.step(1)
    norms: dict[int, list[float]] = {}
    for layer, p0, p1 in zip(_layer_of_params(engine), before, _params(engine)):
        norms.setdefault(layer, []).append(float(torch.linalg.vector_norm(p1 - p0)))
    return norms


def test_configure_switches_live_without_reset():
    engine = Engine(_full_batch_cfg(**{"optim.slo.enabled": True, "optim.slo.speed": 0.01,
                                       "optim.slo.boost": 4.0, "optim.slo.target_layer": 1}))
    norms = _step_norms(engine)
    assert norms[1] == pytest.approx([0.04, 0.04], rel=1e-9)
    assert norms[2] == pytest.approx([0.01, 0.01], rel=1e-9) and norms[4] == pytest.approx([0.01, 0.01], rel=1e-9)
    engine.step(9)
    assert engine.step_count == 10 and len(engine.history) == 6  # steps 0 and 10, three layers each
    rows_before = engine.history.rows

    # target layer, boost and speed change mid-run
    new = engine.config.replace(**{"optim.slo.target_layer": 3, "optim.slo.boost": 2.0, "optim.slo.speed": 0.02})
    assert engine.configure(new) == []
    norms = _step_norms(engine)
    assert norms[3] == pytest.approx([0.04, 0.04], rel=1e-9)
    assert norms[1] == pytest.approx([0.02, 0.02], rel=1e-9)
    assert engine.step_count == 11 and engine.history.rows[:6] == rows_before
    assert engine.snapshot().optimizer == "SLO on (layer 3, boost 2, speed 0.02)"

    # slo -> sgd: W <- W - lr * G
    sgd = engine.config.replace(**{"optim.slo.enabled": False, "optim.name": "sgd", "optim.lr": 0.3})
    assert engine.configure(sgd) == []
    before, grads = _params(engine), _full_batch_grads(engine)
    engine.step(1)
    for p0, g, p1 in zip(before, grads, _params(engine)):
        torch.testing.assert_close(p1, p0 - 0.3 * g, rtol=0, atol=1e-14)

    # sgd lr change applies in place
    assert engine.configure(engine.config.replace(**{"optim.lr": 0.1})) == []
    before, grads = _params(engine), _full_batch_grads(engine)
    engine.step(1)
    for p0, g, p1 in zip(before, grads, _params(engine)):
        torch.testing.assert_close(p1, p0 - 0.1 * g, rtol=0, atol=1e-14)

    # sgd -> adam: a fresh Adam's first step moves each entry by about lr
    assert engine.configure(engine.config.replace(**{"optim.name": "adam", "optim.lr": 1e-3})) == []
    before, grads = _params(engine), _full_batch_grads(engine)
    engine.step(1)
    for p0, g, p1 in zip(before, grads, _params(engine)):
        big = g.abs() > 1e-5
        np.testing.assert_allclose((p0 - p1)[big].numpy(), 1e-3 * torch.sign(g[big]).numpy(), rtol=1e-2)

    # adam -> sgd: plain gradient steps again
    assert engine.configure(engine.config.replace(**{"optim.name": "sgd", "optim.lr": 0.1})) == []
    before, grads = _params(engine), _full_batch_grads(engine)
    engine.step(1)
    for p0, g, p1 in zip(before, grads, _params(engine)):
        torch.testing.assert_close(p1, p0 - 0.1 * g, rtol=0, atol=1e-14)

    # sgd -> slo again, with the SLO settings chosen earlier
    assert engine.configure(engine.config.replace(**{"optim.slo.enabled": True})) == []
    norms = _step_norms(engine)
    assert norms[3] == pytest.approx([0.04, 0.04], rel=1e-9)
    assert engine.step_count == 16
    assert engine.history.rows[:6] == rows_before
    assert engine.status == "running"


def test_configure_reports_keys_that_need_reset():
    engine = Engine(_cfg())
    engine.step(3)
    w_before = engine.snapshot().layer(1).W.copy()
    new = engine.config.replace(**{"model.width": 4, "seed": 5, "optim.lr": 0.01, "measure.every": 2,
                                   "measure.n_points": 16, "data.target": "x0+x1"})
    pending = engine.configure(new)
    assert sorted(pending) == ["data.target", "measure.n_points", "model.width", "seed"]
    assert engine.config.model.width == 8 and engine.config.seed == 0 and engine.config.measure.n_points == 32
    assert engine.config.optim.lr == 0.01 and engine.config.measure.every == 2
    assert engine.step_count == 3
    np.testing.assert_array_equal(engine.snapshot().layer(1).W, w_before)
    engine.step(1)
    assert engine.snapshot().layer(1).W.shape == (8, 5)
    assert engine.history.last_step == 4  # measure.every=2 applied live
    assert needs_reset(_cfg(), _cfg(**{"optim.momentum": 0.5, "steps": 9})) == []
    snap = engine.reset(new)
    assert snap.step == 0 and snap.layer(1).W.shape == (4, 5) and len(snap.history) == 3


def test_configure_measure_settings_remeasure():
    engine = Engine(_cfg())
    engine.step(5)
    pearson = engine.snapshot().layer(1).uc_nfa
    engine.configure(engine.config.replace(**{"measure.correlation": "cosine", "measure.alpha": 0.5}))
    snap = engine.snapshot()
    assert snap.step == 5 and snap.config.measure.correlation == "cosine"
    assert snap.layer(1).uc_nfa != pytest.approx(pearson, abs=1e-6)


# -- determinism ---------------------------------------------------------------------------

def _assert_snapshots_equal(a, b):
    assert (a.step, a.train_loss, a.test_loss) == (b.step, b.train_loss, b.test_loss)
    for la, lb in zip(a.layers, b.layers):
        for key in ("W", "W0", "K", "nfm", "agop", "centered_nfm", "centered_agop", "utku", "singular_values"):
            np.testing.assert_array_equal(getattr(la, key), getattr(lb, key))
        assert la.scalars() == lb.scalars()
    np.testing.assert_array_equal(a.out_weight, b.out_weight)
    assert a.history == b.history


def test_same_seed_same_snapshot_different_seed_differs():
    cfg = _cfg(**{"optim.name": "adam", "optim.lr": 0.01})
    a, b = Engine(cfg), Engine(cfg)
    a.step(25)
    b.step(25)
    _assert_snapshots_equal(a.snapshot(), b.snapshot())
    c = Engine(_cfg(**{"optim.name": "adam", "optim.lr": 0.01, "seed": 1}))
    c.step(25)
    assert not np.array_equal(c.snapshot().layer(1).W0, a.snapshot().layer(1).W0)
    assert not np.array_equal(c.snapshot().layer(1).W, a.snapshot().layer(1).W)
    assert c.snapshot().train_loss != a.snapshot().train_loss


def test_reset_same_seed_same_start():
    cfg = _cfg()
    engine = Engine(cfg)
    first = engine.snapshot()
    engine.step(20)
    again = engine.reset()
    _assert_snapshots_equal(first, again)
    engine.step(20)
    other = Engine(cfg)
    other.step(20)
    _assert_snapshots_equal(engine.snapshot(), other.snapshot())


def test_reset_with_unloadable_data_leaves_the_run_as_it_was(tmp_path):
    engine = Engine(_cfg())
    engine.step(20)
    before = _params(engine)
    bad = _cfg(**{"data.kind": "file", "data.path": str(tmp_path / "missing.csv")})
    with pytest.raises(ConfigError, match="data.path"):
        engine.reset(bad)
    assert engine.config.data.kind == "synthetic"
    assert engine.step_count == 20
    assert all(torch.equal(a, b) for a, b in zip(before, _params(engine)))
    assert engine.step(5) == 5


def test_reset_with_new_width_rebuilds_the_network():
    engine = Engine(_cfg())
    engine.step(10)
    snap = engine.reset(_cfg(**{"model.width": 6}))
    assert snap.step == 0 and snap.layer(1).shape == (6, 5)


def test_snapshot_is_frozen_and_detached():
    engine = Engine(_cfg())
    snap = engine.snapshot()
    w = snap.layer(1).W.copy()
    with pytest.raises(ValueError):
        snap.layer(1).W[0, 0] = 1.0
    with pytest.raises(Exception):
        snap.step = 3  # type: ignore[misc]
    engine.step(10)
    np.testing.assert_array_equal(snap.layer(1).W, w)
    assert snap.step == 0 and engine.snapshot().step == 10
    assert len(snap.history) == 3 and len(engine.snapshot().history) == 6


def test_history_rows_and_series():
    engine = Engine(_cfg(**{"measure.every": 7}))
    snap = engine.run(20)
    hist = snap.history
    assert sorted({r["step"] for r in hist.rows}) == [0, 7, 14, 20]
    assert hist.layers() == [1, 2, 3]
    steps, c = hist.series("c_nfa", 2)
    assert list(steps) == [0, 7, 14, 20] and np.isnan(c[0]) and np.all(np.isfinite(c[1:]))
    for row in hist.rows:
        assert set(row) == set(COLUMNS)
    assert History.read_csv  # round trip in the save/load tests


# -- divergence ----------------------------------------------------------------------------

@pytest.mark.parametrize("over", [{"optim.lr": 50.0},
                                  {"optim.lr": 3.0, "optim.momentum": 0.9, "model.activation": "linear"}])
def test_divergence_stops_and_keeps_history(over):
    """Huge steps: the run stops at the step whose loss is non-finite, with everything measured before it."""
    engine = Engine(_cfg(**{"measure.every": 1, **over}))
    done = engine.step(200)
    snap = engine.snapshot()
    assert engine.status == "diverged" and snap.status == "diverged" and snap.diverged
    assert done < 200
    n = engine.step_count
    assert f"diverged at step {n}" in snap.message and "lower optim.lr" in snap.message and "reset" in snap.message
    assert snap.step == n and snap.measured_step < n
    steps = sorted({r["step"] for r in snap.history.rows})
    assert steps[0] == 0 and steps[-1] == snap.measured_step and steps == list(range(snap.measured_step + 1))
    assert all(np.isfinite(r["train_loss"]) for r in snap.history.rows)
    assert engine.step(5) == 0 and engine.step_count == n
    assert engine.run(5).status == "diverged"
    assert engine.measure().status == "diverged"


def test_divergence_between_measurements():
    engine = Engine(_cfg(**{"optim.lr": 50.0, "measure.every": 10}))
    engine.step(100)
    snap = engine.snapshot()
    assert snap.diverged and snap.measured_step == 0 and 0 < snap.step < 10
    assert snap.message.startswith(f"diverged at step {snap.step}: ")
    assert [r["step"] for r in snap.history.rows] == [0, 0, 0]


def test_divergence_of_slo_suggests_speed(tmp_path):
    engine = Engine(_cfg(**{"optim.slo.enabled": True, "measure.every": 5}))
    engine.step(7)
    with torch.no_grad():
        engine.model.hidden[1].weight[0, 0] = float("inf")  # whatever the cause, a non-finite loss stops the run
    engine.step(10)
    snap = engine.snapshot()
    assert engine.status == "diverged" and engine.step_count == 8
    assert snap.message.startswith("diverged at step 8: ") and "optim.slo.speed" in snap.message
    assert snap.measured_step == 5 and snap.history.last_step == 5
    engine.save(tmp_path / "d")
    with np.load(tmp_path / "d" / "final.npz") as npz:  # the last measured (finite) weights
        assert int(npz["step"]) == 5 and np.isfinite(npz["layer2.W"]).all()
    again = Engine.load(tmp_path / "d")
    assert again.status == "diverged" and again.step_count == 8
    loaded = again.snapshot()
    assert (loaded.status, loaded.message, loaded.step, loaded.measured_step) == ("diverged", snap.message, 8, 5)
    assert (loaded.train_loss, loaded.test_loss) == (snap.train_loss, snap.test_loss)
    assert loaded.history == snap.history == again.history
    for a, b in zip(loaded.layers, snap.layers):  # the last measured state, not a fresh network
        for key in ("W", "W0", "K", "nfm", "agop", "utku"):
            np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
        assert a.scalars() == b.scalars()
    np.testing.assert_array_equal(loaded.out_weight, snap.out_weight)
    assert again.step(3) == 0 and again.measure().measured_step == 5


# -- save / load / resume -----------------------------------------------------------------------

@pytest.mark.parametrize("over", [
    {"optim.name": "sgd", "optim.momentum": 0.9},
    {"optim.name": "adam", "optim.lr": 0.01},
    {"optim.slo.enabled": True, "optim.slo.target_layer": 2},
    {"optim.name": "sgd", "optim.momentum": 0.5, "model.bias": True, "dtype": "float64"},
], ids=["sgd-momentum", "adam", "slo", "sgd-bias-float64"])
def test_resume_is_bit_for_bit(tmp_path, over):
    cfg = _cfg(**over)
    straight = Engine(cfg)
    straight.step(60)
    first = Engine(cfg)
    first.step(30)
    first.save(tmp_path / "half", figures=False)
    resumed = Engine.load(tmp_path / "half")
    assert resumed.step_count == 30 and resumed.config == cfg
    resumed.step(30)
    for p, q in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(p, q)
    assert straight.history.rows == resumed.history.rows
    _assert_snapshots_equal(straight.snapshot(), resumed.snapshot())


def test_resume_needs_the_optimizer_state(tmp_path):
    """The resume test above can fail: without the momentum buffer the weights differ."""
    cfg = _cfg(**{"optim.momentum": 0.9})
    straight = Engine(cfg)
    straight.step(60)
    first = Engine(cfg)
    first.step(30)
    first.save(tmp_path / "half")
    with np.load(tmp_path / "half" / "state.npz") as npz:
        kept = {k: npz[k] for k in npz.files if not k.startswith("optim.")}
        assert len(kept) < len(npz.files)
    np.savez(tmp_path / "half" / "state.npz", **kept)
    resumed = Engine.load(tmp_path / "half")
    resumed.step(30)
    assert not all(torch.equal(p, q) for p, q in zip(straight.model.parameters(), resumed.model.parameters()))


def test_save_writes_contract_files(tmp_path):
    engine = Engine(_cfg(**{"measure.every": 4}))
    engine.step(10)
    out = engine.save(tmp_path / "run", figures=True)
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "metrics.csv", "final.npz", "state.npz", "state.json", "nfa.png", "heatmaps.png"} <= names
    assert not [n for n in names if n.endswith(".tmp") or n.startswith(".")]
    assert RunConfig.from_dict(json.loads((out / "config.json").read_text())) == engine.config
    with np.load(out / "final.npz", allow_pickle=False) as npz:
        assert int(npz["step"]) == 10
        for l in (1, 2, 3):
            np.testing.assert_array_equal(npz[f"layer{l}.W"], engine.snapshot().layer(l).W)
    hist = History.read_csv(out / "metrics.csv")
    assert sorted({r["step"] for r in hist.rows}) == [0, 4, 8, 10]


def _saved(tmp_path) -> Path:
    engine = Engine(_cfg())
    engine.step(12)
    return engine.save(tmp_path / "run")


def _damage(folder: Path, name: str, how: str) -> None:
    p = folder / name
    if how == "delete":
        p.unlink()
    elif how == "empty":
        p.write_bytes(b"")
    elif how == "truncate":
        p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])
    elif how == "garbage":
        p.write_bytes(b"\x00\xffgarbage\n" * 10)
    elif how == "list":
        p.write_text("[1, 2]")
    elif how == "text":
        p.write_text("step,layer\nabc,1\n")
    elif how == "version":
        meta = json.loads(p.read_text())
        meta["version"] = 99
        p.write_text(json.dumps(meta))
    elif how == "width":
        cfg = json.loads(p.read_text())
        cfg["model"]["width"] = 6
        p.write_text(json.dumps(cfg))
    else:
        raise AssertionError(how)


@pytest.mark.parametrize("name,how", [
    ("config.json", "delete"), ("state.npz", "delete"), ("state.json", "delete"), ("metrics.csv", "delete"),
    ("state.npz", "empty"), ("state.npz", "truncate"), ("state.npz", "garbage"),
    ("state.json", "empty"), ("state.json", "garbage"), ("state.json", "list"), ("state.json", "version"),
    ("config.json", "garbage"), ("config.json", "width"), ("config.json", "list"),
    ("metrics.csv", "text"), ("metrics.csv", "garbage"),
])
def test_load_refuses_damaged_folders(tmp_path, name, how):
    folder = _saved(tmp_path)
    Engine.load(folder)  # intact: loads
    _damage(folder, name, how)
    with pytest.raises(ConfigError) as info:
        Engine.load(folder)
    msg = str(info.value)
    assert "\n" not in msg and len(msg) < 400


def test_load_refuses_missing_folder(tmp_path):
    with pytest.raises(ConfigError) as info:
        Engine.load(tmp_path / "nothing")
    assert "not a folder" in str(info.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError) as info:
        Engine.load(tmp_path / "empty")
    assert "missing" in str(info.value)


# -- core stays free of UI libraries ---------------------------------------------------------

def test_core_imports_no_ui_library():
    code = ("import core.engine, core.plots, core.persist, core.data, core.diagnostics, core.expr, core.history, "
            "core.iofiles, core.model, core.optim, core.config, app.headless, app.cli; import sys; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('gradio', 'textual')]; "
            "assert not bad, bad; print('clean')")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "clean"


# -- run loop, threads, live settings that must not disturb state ------------------------------

def test_run_calls_back_at_measurements_and_stops():
    engine = Engine(_cfg(**{"measure.every": 10}))
    seen = []
    snap = engine.run(25, on_measure=lambda s: seen.append((s.step, s.measured_step)))
    assert seen == [(10, 10), (20, 20), (25, 25)] and snap.step == 25 and engine.step_count == 25
    calls = []
    engine.run(100, should_stop=lambda: len(calls) > 0, on_measure=calls.append)
    assert engine.step_count == 30 and len(calls) == 1  # stopped at the next chunk boundary
    assert engine.run().step == 30 + engine.config.steps


def test_snapshots_from_another_thread_while_stepping():
    import threading

    engine = Engine(_cfg(**{"measure.every": 3}))
    errors: list[BaseException] = []

    def work():
        try:
            for _ in range(20):
                engine.step(2)
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    t = threading.Thread(target=work)
    t.start()
    snaps = []
    while t.is_alive():
        snaps.append(engine.snapshot())
    t.join()
    assert not errors
    for s in snaps + [engine.snapshot()]:
        assert s.measured_step == s.step and len(s.layers) == 3
        assert np.isfinite(s.layer(1).uc_nfa)
        assert s.history.last_step == s.step
    assert engine.step_count == 40


def test_momentum_setting_does_not_reset_adam():
    cfg = _cfg(**{"optim.name": "adam", "optim.lr": 0.01})
    a, b = Engine(cfg), Engine(cfg)
    a.step(10)
    a.configure(a.config.replace(**{"optim.momentum": 0.5}))
    a.step(10)
    b.step(20)
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))


def test_sgd_momentum_switch_rebuilds_and_lr_change_keeps_buffer():
    cfg = _cfg(**{"optim.momentum": 0.9})
    a, b = Engine(cfg), Engine(cfg)
    a.step(5)
    b.step(5)
    a.configure(a.config.replace(**{"optim.lr": 0.02}))  # an lr change keeps the momentum buffer ...
    a.configure(a.config.replace(**{"optim.lr": 0.05}))  # ... so going back gives the same run
    a.step(5)
    b.step(5)
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised where no CUDA device exists")
def test_cuda_without_a_device_is_a_config_error():
    with pytest.raises(ConfigError) as info:
        Engine(_cfg(device="cuda"))
    assert info.value.key == "device"


def test_divergence_at_step_zero(tmp_path):
    """An initialisation so large that the float32 loss overflows: diverged at step 0, no exception, still saved.

    (Labels that overflow float32 are a data error instead: see test_hostile.py.)
    """
    with pytest.raises(ConfigError, match="data.target: the target values reach .* too large for float32"):
        Engine(_cfg(**{"data.target": "exp(x0)*1e30"}))
    engine = Engine(_cfg(**{"model.init_scale": 100.0, "model.depth": 10, "model.activation": "linear"}))
    snap = engine.snapshot()
    assert engine.status == "diverged" and snap.step == 0 and snap.message.startswith("diverged at step 0: ")
    assert engine.step(5) == 0
    engine.save(tmp_path / "z", figures=True)
    assert Engine.load(tmp_path / "z").status == "diverged"


def test_heatmap_rgb():
    from core.plots import downsample, heatmap_rgb

    m = np.zeros((300, 130))
    m[0, 0], m[-1, -1] = 2.0, -2.0
    img = heatmap_rgb(m)
    assert img.dtype == np.uint8 and img.shape == (100, 65, 3)
    mid = heatmap_rgb(np.array([[1.0, 0.0, -1.0]]))
    red, white, blue = (mid[0, i].astype(int) for i in range(3))
    assert red[0] > red[2] and blue[2] > blue[0] and white.min() > 200  # diverging, symmetric about 0
    np.testing.assert_array_equal(heatmap_rgb(np.array([[5.0, 0.0, -5.0]])), mid)  # own max-abs scale
    np.testing.assert_allclose(downsample(np.arange(16.0).reshape(4, 4), 2), [[2.5, 4.5], [10.5, 12.5]])
    assert heatmap_rgb(np.zeros((3, 3))).shape == (3, 3, 3)


def test_history_views_are_immutable_and_csv_round_trips(tmp_path):
    row = {c: None for c in COLUMNS}
    a = {**row, "step": 0, "layer": 1, "uc_nfa": 0.1 + 0.2, "correlation": "pearson", "alpha": 1.0}
    b = {**row, "step": 5, "layer": 1, "uc_nfa": 1 / 3, "c_nfa": -0.25, "correlation": "cosine", "alpha": 0.5}
    c = {**row, "step": 7, "layer": 1, "uc_nfa": 2 / 3, "correlation": "pearson", "alpha": 1.0}
    base = History().extend([a])
    left, right = base.extend([b]), base.extend([c])
    assert base.rows == (a,) and left.rows == (a, b) and right.rows == (a, c)
    assert left.until(4).rows == (a,) and left.last_step == 5 and History().last_step is None
    left.write_csv(tmp_path / "m.csv")
    back = History.read_csv(tmp_path / "m.csv")
    assert back == left and back.rows[0]["uc_nfa"] == 0.1 + 0.2 and back.rows[1]["c_nfa"] == -0.25
    steps, values = back.series("c_nfa", 1)
    assert list(steps) == [0, 5] and np.isnan(values[0]) and values[1] == -0.25
    assert (tmp_path / "m.csv").read_text().splitlines()[0].split(",")[:8] == [
        "step", "layer", "uc_nfa", "c_nfa", "rel_movement", "train_loss", "test_loss", "feature_quality"]


@pytest.mark.parametrize("n_points,dtype,bias", [(32, "float64", True), (0, "float64", False), (40, "float32", False),
                                                 (7, "float32", True)])
def test_losses_equal_a_plain_forward_pass_over_every_point(n_points, dtype, bias):
    """The training loss reuses the K sweep's outputs for the measured points (a subset, or every point)."""
    engine = Engine(_cfg(**{"measure.n_points": n_points, "dtype": dtype, "model.bias": bias, "data.n_train": 50}))
    engine.step(20)
    snap = engine.snapshot()
    ds, model = engine.dataset, engine.model
    with torch.no_grad():
        train = float(F.mse_loss(model(ds.x_train).double(), ds.y_train.double()))
        test = float(F.mse_loss(model(ds.x_test).double(), ds.y_test.double()))
    tol = 1e-12 if dtype == "float64" else 1e-6
    assert ds.measure_index.shape[0] == (n_points or 50)
    assert snap.train_loss == pytest.approx(train, rel=tol) and snap.test_loss == pytest.approx(test, rel=tol)
    assert engine.history.rows[-1]["train_loss"] == snap.train_loss


def test_the_sweep_outputs_are_the_models_outputs():
    from core.ksweep import ptk_sweep

    engine = Engine(_cfg(**{"dtype": "float64", "model.bias": True, "model.activation": "gelu"}))
    x = engine.dataset.x_train
    with torch.no_grad():
        want = engine.model(x)
    for groups in (1, 5):
        got = ptk_sweep(engine.model, x, groups, outputs=True).outputs
        torch.testing.assert_close(got, want, rtol=1e-13, atol=1e-15)
    assert ptk_sweep(engine.model, x).outputs is None
