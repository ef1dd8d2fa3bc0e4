"""core.config: round trips, one-line errors naming the dotted key, limits from the environment."""

from __future__ import annotations

import json

import pytest

from core.config import (PRESETS, ConfigError, Limits, RunConfig, default_config, field_docs, flat_items,
                         load_config, parse_scalar, preset_config, set_dotted)


def _one_line_error(raw, key: str, limits=None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        RunConfig.from_dict(raw, limits)
    err = info.value
    msg = str(err)
    assert "\n" not in msg and "\r" not in msg
    assert err.key == key, msg
    assert msg.startswith(key + ": ")
    assert len(msg) < 400
    return err


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip(name):
    cfg = preset_config(name)
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    assert RunConfig.from_dict(json.loads(cfg.to_json())) == cfg
    assert RunConfig.from_dict({"preset": name}) == cfg
    for key, value in PRESETS[name].get("model", {}).items():
        assert getattr(cfg.model, key) == value
    assert set(flat_items(cfg)) == set(flat_items(RunConfig()))


def test_default_is_quickstart_and_defaults_match_contract():
    assert default_config() == preset_config("quickstart")
    c = RunConfig()
    assert (c.data.kind, c.data.d, c.data.target, c.data.n_train, c.data.n_test, c.data.noise) == \
        ("synthetic", 20, "x0*x1", 2000, 1000, 0.0)
    assert (c.model.depth, c.model.width, c.model.activation, c.model.bias, c.model.init_scale) == (3, 128, "relu", False, 1.0)
    assert (c.optim.name, c.optim.lr, c.optim.momentum, c.optim.batch_size) == ("sgd", 0.05, 0.0, 128)
    s = c.optim.slo
    assert (s.enabled, s.target_layer, s.speed, s.boost) == (False, 1, 0.01, 10.0)
    m = c.measure
    assert (m.every, m.n_points, m.correlation, m.alpha) == (100, 1000, "pearson", 1.0)
    assert (c.steps, c.seed, c.device) == (2000, 0, "auto")


def test_partial_dict_overrides_preset():
    cfg = RunConfig.from_dict({"preset": "chain", "model": {"width": 16}, "optim": {"slo": {"boost": 3}}})
    assert cfg.model.width == 16 and cfg.optim.slo.boost == 3.0 and isinstance(cfg.optim.slo.boost, float)
    assert cfg.data.target == "x0*x1*x2" and cfg.optim.slo.speed == 0.02
    _one_line_error({"preset": "nope"}, "preset")


@pytest.mark.parametrize("raw,key", [
    ({"bogus": 1}, "bogus"),
    ({"data": {"dd": 3}}, "data.dd"),
    ({"optim": {"slo": {"enable": True}}}, "optim.slo.enable"),
    ({"measure": {"every": 10, "evry": 3}}, "measure.evry"),
])
def test_unknown_keys(raw, key):
    err = _one_line_error(raw, key)
    assert "unknown key" in str(err) and "allowed" in str(err)


@pytest.mark.parametrize("raw,key", [
    ({"model": {"depth": True}}, "model.depth"),
    ({"model": {"width": "64"}}, "model.width"),
    ({"model": {"width": 64.5}}, "model.width"),
    ({"optim": {"lr": "0.1"}}, "optim.lr"),
    ({"optim": {"lr": False}}, "optim.lr"),
    ({"optim": {"lr": None}}, "optim.lr"),
    ({"optim": {"lr": [0.1]}}, "optim.lr"),
    ({"model": {"bias": 1}}, "model.bias"),
    ({"model": {"bias": "true"}}, "model.bias"),
    ({"optim": {"slo": {"enabled": 0}}}, "optim.slo.enabled"),
    ({"data": {"target": 5}}, "data.target"),
    ({"model": {"activation": ["relu"]}}, "model.activation"),
    ({"steps": "100"}, "steps"),
    ({"seed": 1.5}, "seed"),
    ({"optim": 0.1}, "optim"),
    ({"optim": {"slo": True}}, "optim.slo"),
    ({"data": "digits"}, "data"),
])
def test_wrong_types(raw, key):
    err = _one_line_error(raw, key)
    assert "must be" in str(err)


@pytest.mark.parametrize("raw,key", [
    ({"model": {"depth": 0}}, "model.depth"),
    ({"model": {"depth": 13}}, "model.depth"),
    ({"model": {"width": 0}}, "model.width"),
    ({"model": {"activation": "swish"}}, "model.activation"),
    ({"model": {"init_scale": 0}}, "model.init_scale"),
    ({"optim": {"lr": 0}}, "optim.lr"),
    ({"optim": {"lr": -0.1}}, "optim.lr"),
    ({"optim": {"lr": float("nan")}}, "optim.lr"),
    ({"optim": {"lr": float("inf")}}, "optim.lr"),
    ({"optim": {"momentum": 1.0}}, "optim.momentum"),
    ({"optim": {"momentum": -0.1}}, "optim.momentum"),
    ({"optim": {"name": "rmsprop"}}, "optim.name"),
    ({"optim": {"batch_size": 0}}, "optim.batch_size"),
    ({"optim": {"slo": {"boost": 0.5}}}, "optim.slo.boost"),
    ({"optim": {"slo": {"speed": 0}}}, "optim.slo.speed"),
    ({"optim": {"slo": {"target_layer": 4}}}, "optim.slo.target_layer"),
    ({"model": {"depth": 2}, "optim": {"slo": {"target_layer": 3}}}, "optim.slo.target_layer"),
    ({"optim": {"slo": {"target_layer": 0}}}, "optim.slo.target_layer"),
    ({"measure": {"alpha": 0.7}}, "measure.alpha"),
    ({"measure": {"correlation": "spearman"}}, "measure.correlation"),
    ({"measure": {"every": 0}}, "measure.every"),
    ({"measure": {"n_points": -1}}, "measure.n_points"),
    ({"measure": {"n_points": 0}, "data": {"n_train": 10_001}}, "measure.n_points"),
    ({"measure": {"every_epochs": -1}}, "measure.every_epochs"),
    ({"data": {"standardize": "per_pixel"}}, "data.standardize"),
    ({"optim": {"weight_decay": -0.1}}, "optim.weight_decay"),
    ({"optim": {"weight_decay": float("nan")}}, "optim.weight_decay"),
    ({"optim": {"warmup_steps": -1}}, "optim.warmup_steps"),
    ({"optim": {"warmup_lr": 0}}, "optim.warmup_lr"),
    ({"measure": {"n_points": 10_001}}, "measure.n_points"),
    ({"data": {"kind": "mnist"}}, "data.kind"),
    ({"data": {"d": 0}}, "data.d"),
    ({"data": {"n_train": 1}}, "data.n_train"),
    ({"data": {"noise": -1}}, "data.noise"),
    ({"data": {"task": "ranking"}}, "data.task"),
    ({"data": {"kind": "file"}}, "data.path"),
    ({"data": {"target": "x0.real"}}, "data.target"),
    ({"data": {"d": 2, "target": "x2"}}, "data.target"),
    ({"steps": -1}, "steps"),
    ({"seed": -1}, "seed"),
    ({"seed": 2**31}, "seed"),
    ({"device": "tpu"}, "device"),
    ({"dtype": "float16"}, "dtype"),
])
def test_out_of_range(raw, key):
    _one_line_error(raw, key)


def test_not_an_object():
    _one_line_error([1, 2], "config")
    _one_line_error("quickstart", "config")


def test_control_characters_in_keys_stay_on_one_line():
    for bad in ("ta\nrget", "ta\rrget", "x\u2028y"):
        with pytest.raises(ConfigError) as info:
            RunConfig.from_dict({"data": {bad: 1}})
        msg = str(info.value)
        assert info.value.key == "data." + bad
        assert len(msg.splitlines()) == 1 and "\n" not in msg and "\r" not in msg
        assert msg.startswith("data.ta") or msg.startswith("data.x")


def test_coercions_accepted():
    cfg = RunConfig.from_dict({"optim": {"lr": 1}, "steps": 100.0, "data": {"kind": "file", "path": "a.csv",
                                                                           "label_column": 3}})
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    assert cfg.steps == 100 and isinstance(cfg.steps, int)
    assert cfg.data.label_column == "3"
    assert RunConfig.from_dict({"measure": {"alpha": 0.5}}).measure.alpha == 0.5


def test_limits_from_env_tighten_caps(monkeypatch):
    raw = {"model": {"width": 64, "depth": 3}, "steps": 500, "measure": {"n_points": 300},
           "data": {"d": 20, "n_train": 500}}
    RunConfig.from_dict(raw)
    for env, value, key in (("NFA_MAX_WIDTH", "32", "model.width"), ("NFA_MAX_DEPTH", "2", "model.depth"),
                            ("NFA_MAX_STEPS", "100", "steps"), ("NFA_MAX_POINTS", "100", "measure.n_points"),
                            ("NFA_MAX_D", "10", "data.d"), ("NFA_MAX_N", "400", "data.n_train")):
        monkeypatch.setenv(env, value)
        assert getattr(Limits.from_env(), env[4:].lower()) == int(value)
        err = _one_line_error(raw, key)
        assert value in str(err)
        monkeypatch.delenv(env)
    assert Limits.from_env() == Limits()
    monkeypatch.setenv("NFA_MAX_WIDTH", "32")
    with pytest.raises(ConfigError) as info:
        RunConfig().replace(**{"model.width": 64})  # replace() reads the environment's limits too
    assert info.value.key == "model.width"
    assert RunConfig().replace(**{"model.width": 32}).model.width == 32
    monkeypatch.setenv("NFA_MAX_WIDTH", "lots")
    with pytest.raises(ConfigError) as info:
        Limits.from_env()
    assert info.value.key == "NFA_MAX_WIDTH" and "\n" not in str(info.value)


def test_explicit_limits_argument():
    tight = Limits(max_width=8)
    _one_line_error({"model": {"width": 9}}, "model.width", tight)
    assert RunConfig.from_dict({"model": {"width": 8}}, tight).model.width == 8


def test_set_dotted_parsing():
    cfg = RunConfig()
    set_dotted(cfg, "optim.slo.enabled", "true")
    set_dotted(cfg, "optim.lr", "0.1")
    set_dotted(cfg, "model.depth", "2")
    set_dotted(cfg, "steps", "1e3")
    set_dotted(cfg, "data.target", "x0+x1")
    set_dotted(cfg, "data.label_column", "3")
    set_dotted(cfg, "measure.correlation", "cosine")
    set_dotted(cfg, "optim.slo", {"boost": 2})
    assert cfg.optim.slo.enabled is True and cfg.optim.lr == 0.1 and cfg.model.depth == 2
    assert cfg.steps == 1000 and cfg.data.target == "x0+x1" and cfg.data.label_column == "3"
    assert cfg.measure.correlation == "cosine" and cfg.optim.slo.boost == 2.0
    for key, value, bad_key in (("optim.lr", "abc", "optim.lr"), ("optim.slo.enabled", "1", "optim.slo.enabled"),
                                ("optim.slo.enabled", "True", "optim.slo.enabled"), ("model.depth", "2.5", "model.depth"),
                                ("optim.nope", "1", "optim.nope"), ("nope", "1", "nope"), ("", "1", ""),
                                ("optim.slo.x.y", "1", "optim.slo.x"), ("steps.x", "1", "steps"),
                                ("optim.slo", "x", "optim.slo")):
        with pytest.raises(ConfigError) as info:
            set_dotted(cfg, key, value)
        assert info.value.key == bad_key and "\n" not in str(info.value)
    assert parse_scalar("true") is True and parse_scalar("3") == 3 and parse_scalar("x0*x1") == "x0*x1"


def test_replace_validates_and_copies():
    cfg = RunConfig()
    new = cfg.replace(**{"optim.lr": 0.2, "model.width": 8})
    assert new.optim.lr == 0.2 and cfg.optim.lr == 0.05 and cfg.model.width == 128
    with pytest.raises(ConfigError) as info:
        cfg.replace(**{"optim.lr": 0})
    assert info.value.key == "optim.lr"
    with pytest.raises(ConfigError) as info:
        cfg.replace(**{"model.depth": 2, "optim.slo.target_layer": 3})
    assert info.value.key == "optim.slo.target_layer"


def test_load_config(tmp_path):
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"model": {"width": 16}}))
    assert load_config(p).model.width == 16
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(json.dumps({"steps": 7}))
    assert load_config(tmp_path / "run").steps == 7
    assert load_config("lowrank") == preset_config("lowrank")
    for path, content, match in ((tmp_path / "missing.json", None, "cannot read"),
                                 (tmp_path / "bad.json", "{not json", "not valid JSON (line 1"),
                                 (tmp_path / "bin.json", b"\xff\xfe\x00\x81binary", "JSON"),
                                 (tmp_path / "empty", None, "cannot read")):
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif content is not None:
            path.write_text(content)
        elif path.name == "empty":
            path.mkdir()
        with pytest.raises(ConfigError) as info:
            load_config(path)
        assert info.value.key == "--config" and match in str(info.value) and "\n" not in str(info.value)


def test_field_docs_cover_every_key():
    docs = field_docs()
    keys = [k for k in flat_items(RunConfig())]
    missing = [k for k in keys if not docs.get(k)]
    assert missing == []
