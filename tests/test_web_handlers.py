"""The web app's event handlers, called as plain functions (no server, no browser)."""

from __future__ import annotations

import io
import json
import re
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest

from app.web import exports, handlers
from app.web.form import FORM_KEYS, form_values
from app.web.handlers import WebApp
from app.web.sessions import SessionStore
from app.web.settings import WebSettings, web_limits
from core.config import ConfigError, preset_config

SMALL = {"data.n_train": "300", "data.n_test": "100", "model.width": "16", "measure.n_points": "100",
         "measure.every": "10", "steps": "40"}
"""URL parameters of a quick run (quickstart, smaller)."""


@pytest.fixture
def app(tmp_path):
    # the handler tests open several API-kind sessions from one test "client": no per-address cap here
    settings = WebSettings(max_sessions=4, session_ttl=600, max_unzip_mb=2, update_seconds=60, api_per_client=4)
    web = WebApp.create(settings, root=tmp_path / "sessions")
    yield web
    web.close()


def step_of(out: dict) -> int:
    return int(re.search(r'class="nfa-step">(\d+)<', out["status"]).group(1))


def open_small(app: WebApp, key: str = "a", **extra: str) -> dict:
    out = handlers.load_page(app, key, {**SMALL, **extra})
    assert "warning" not in out, out.get("warning")
    return out


def form(app: WebApp, key: str = "a", **changes) -> list:
    """The form's values for the session's current config, with dotted-key changes."""
    engine = app.store.get(key).runs()[0].engine
    values = dict(zip(FORM_KEYS, form_values(engine.config)))
    values.update({k.replace("__", "."): v for k, v in changes.items()})
    return [values[k] for k in FORM_KEYS]


def engine_of(app: WebApp, key: str = "a"):
    return app.store.get(key).run.engine


# -- load, play, tick, pause, step --------------------------------------------------------

def test_load_page_defaults_to_quickstart(app):
    out = handlers.load_page(app, "a", {})
    assert out["preset"] == "quickstart"
    web_default = preset_config("quickstart")
    web_default.steps = app.limits.max_steps  # the web's run plays until paused (or this documented cap)
    assert out["form"] == form_values(web_default)
    assert step_of(out) == 0 and "paused" in out["status"] and f"of {app.limits.max_steps}" in out["status"]
    assert out["heat"].count('<canvas class="nfa-img"') == 5
    assert len(out["curves"]) == 4 and all(c.type == "plotly" for c in out["curves"])
    assert out["timer"].active is False
    assert out["share"] == f"preset=quickstart&steps={app.limits.max_steps}"


def test_link_reproduces_setup_and_refuses_bad_keys(app):
    out = open_small(app, "a", **{"model.width": "24"})
    assert "model.width=24" in out["share"]
    cfg = engine_of(app).config
    assert cfg.model.width == 24 and cfg.data.n_train == 300
    bad = handlers.load_page(app, "b", {"model.width": "999999", "data.path": "/etc/passwd", "data.kind": "file",
                                        "data.target": "__import__('os').system('x')", "nope": "1"})
    assert "ignored" in bad["warning"]
    for word in ("model.width", "data.path", "data.kind", "data.target"):
        assert word in bad["warning"]
    assert "nope" not in bad["warning"] and "nope" in bad["status"]  # not a setting: named, never a toast
    quiet = handlers.load_page(app, "c", {"utm_source": "mail", "fbclid": "x"})
    assert "warning" not in quiet and "utm_source" in quiet["status"]
    cfg = engine_of(app, "b").config
    assert cfg.model.width == 128 and cfg.data.kind == "synthetic" and cfg.data.path == ""


def test_play_tick_pause(app):
    open_small(app)
    assert handlers.play(app, "a")["timer"].active is True
    out = handlers.tick(app, "a", 7, 1, False)
    assert step_of(out) == 7 and "running" in out["status"]
    out = handlers.pause(app, "a")
    assert out["timer"].active is False and "paused" in out["status"]
    out = handlers.tick(app, "a", 7, 1, False)  # a stray tick after pause does not train
    assert step_of(out) == 7 and out["timer"].active is False


def pause_mark(out: dict) -> int:
    return int(re.search(r'class="nfa-status [^"]*" data-pause="(\d+)"', out["status"]).group(1))


def test_every_running_line_is_older_than_the_pause_after_it(app):
    """The page keeps the newest pause mark's line (app.web.pagejs): a tick answer rendered before a
    Pause carries an older mark than the Pause's answer, and no line with the newer mark says running."""
    open_small(app)
    handlers.play(app, "a")
    before = handlers.tick(app, "a", 5, 1, False)
    paused = handlers.pause(app, "a")
    assert "running" in before["status"] and "paused" in paused["status"]
    assert pause_mark(before) < pause_mark(paused)
    assert pause_mark(handlers.sync_status(app, "a")) == pause_mark(paused)
    handlers.play(app, "a")
    after = handlers.tick(app, "a", 5, 1, False)  # playing again: the same mark, so the page shows it
    assert "running" in after["status"] and pause_mark(after) == pause_mark(paused)
    assert pause_mark(handlers.pause(app, "a")) > pause_mark(after)


def test_step_moves_by_the_chosen_steps_and_measures(app):
    open_small(app)
    out = handlers.step(app, "a", 12, 2, True)
    assert step_of(out) == 12
    assert "Layer 2" in out["heat"] and "centered NFM" in out["heat"]
    assert engine_of(app).snapshot().measured_step == 12


def test_play_stops_at_run_length(app):
    open_small(app)
    handlers.play(app, "a")
    out = handlers.tick(app, "a", 30, 1, False)
    assert out.get("timer") is None or out["timer"].active is not False
    out = handlers.tick(app, "a", 30, 1, False)
    assert step_of(out) == 40 and out["timer"].active is False and "finished" in out["status"]
    assert "run length" in handlers.play(app, "a")["warning"]
    assert step_of(handlers.step(app, "a", 5, 1, False)) == 45  # Step goes past the run length


def test_divergence_is_reported_with_what_to_change(app):
    open_small(app, **{"optim.lr": "90"})
    handlers.play(app, "a")
    out = {}
    for _ in range(10):
        out = handlers.tick(app, "a", 20, 1, False)
        if out.get("timer") is not None and out["timer"].active is False:
            break
    assert "diverged at step" in out["status"] and "optim.lr" in out["status"]
    assert out["timer"].active is False
    assert "diverged" in handlers.play(app, "a")["warning"]


# -- settings: live vs reset ------------------------------------------------------------

def test_live_settings_apply_mid_run_and_others_wait_for_reset(app):
    open_small(app)
    handlers.step(app, "a", 10, 1, False)
    out = handlers.change_settings(app, "a", form(app, optim__lr=0.01, model__width=32))
    engine = engine_of(app)
    assert engine.config.optim.lr == 0.01 and engine.step_count == 10
    assert engine.config.model.width == 16
    assert "Waiting for Reset: model.width" in out["status"]
    assert "model.width=32" in out["share"]
    out = handlers.reset(app, "a", form(app, model__width=32))
    engine = engine_of(app)
    assert engine.config.model.width == 32 and engine.step_count == 0
    assert "Waiting" not in out["status"]


def test_toggle_slo_live_keeps_the_run(app):
    open_small(app)
    handlers.step(app, "a", 10, 1, False)
    out = handlers.change_settings(app, "a", form(app, optim__slo__enabled=True, optim__slo__boost=20.0))
    assert "SLO on (layer 1, boost 20" in out["status"]
    assert step_of(out) == 10
    w_before = engine_of(app).snapshot().layer(1).W.copy()
    handlers.step(app, "a", 1, 1, False)
    moved = np.linalg.norm(engine_of(app).snapshot().layer(1).W - w_before)
    assert moved == pytest.approx(engine_of(app).config.optim.slo.speed * 20, rel=1e-3)


def test_preset_fills_the_form_and_waits_for_reset(app):
    open_small(app)
    out = handlers.choose_preset(app, "a", "digits")
    assert out["preset"] == "digits" and out["form"][FORM_KEYS.index("data.kind")] == "digits"
    assert "Waiting for Reset" in out["status"] and "data.kind" in out["status"]


@pytest.mark.parametrize("change, word", [
    ({"data__target": "__import__('os').system('ls')"}, "data.target"),
    ({"data__target": "x0 * x99"}, "data.target"),
    ({"model__width": 100000}, "model.width"),
    ({"optim__lr": None}, "optim.lr"),
    ({"optim__lr": "fast"}, "optim.lr"),
])
def test_bad_form_values_become_warnings(app, change, word):
    open_small(app)
    handlers.step(app, "a", 5, 1, False)
    for fn in (handlers.change_settings, handlers.reset):
        out = fn(app, "a", form(app, **change))
        assert word in out["warning"] and word in out["status"]
    assert engine_of(app).step_count == 5


def test_choosing_data_set_file_asks_for_an_upload_without_a_warning(app):
    open_small(app)
    out = handlers.change_settings(app, "a", form(app, data__kind="file"))
    assert "warning" not in out and "upload a CSV or NPZ" in out["status"] and "nfa-notice error" not in out["status"]
    out = handlers.reset(app, "a", form(app, data__kind="file"))  # Reset without a file is wrong: now it says so
    assert "upload" in out["warning"] and "upload" in out["status"]


# -- compare ----------------------------------------------------------------------------

def test_compare_runs_every_arm_from_the_same_weights(app):
    open_small(app)
    handlers.step(app, "a", 10, 1, False)
    out = handlers.toggle_compare(app, "a", form(app))
    session = app.store.get("a")
    arms = [r.arm for r in session.compare]
    assert [a.name for a in arms] == ["baseline", "control", "slo"]
    base, control, slo = (r.engine for r in session.compare)
    assert base.step_count == control.step_count == slo.step_count == 0
    assert not base.config.optim.slo.enabled and slo.config.optim.slo.enabled
    assert control.config.optim.slo.enabled and control.config.optim.slo.boost == 1.0
    np.testing.assert_array_equal(base.snapshot().layer(1).W0, slo.snapshot().layer(1).W0)
    np.testing.assert_array_equal(base.snapshot().layer(1).W0, control.snapshot().layer(1).W0)
    assert "Stop" in out["compare_button"].value
    assert out["timer"].active and session.playing  # the comparison plays at once
    out = handlers.step(app, "a", 8, 1, False)
    assert base.step_count == control.step_count == slo.step_count == 8
    assert out["heat"].count('<canvas class="nfa-img"') == 6  # NFM and AGOP of each arm
    for arm, engine in zip(arms, (base, control, slo)):
        assert f">{arm.name}<" in out["heat"] and arm.label in out["heat"]
        assert f"{arm.name}: test" in out["status"]
    for plot in out["curves"]:  # every chart: one line per arm, in the arm's style, under its label
        fig = json.loads(plot.plot)
        assert [t["name"] for t in fig["data"]] == [a.label for a in arms]
        assert [(t["line"]["color"], t["line"]["dash"]) for t in fig["data"]] == [(a.color, a.dash) for a in arms]
    fig = json.loads(out["curves"][0].plot)
    for trace, engine in zip(fig["data"], (base, control, slo)):
        steps, values = engine.history.series("uc_nfa", 1)
        assert trace["x"] == list(steps) and np.allclose(trace["y"], values, rtol=1e-5)
    out = handlers.toggle_compare(app, "a", form(app))
    assert session.compare is None and step_of(out) == 10


# -- export, load, upload -----------------------------------------------------------------

def test_export_writes_the_contract_files(app):
    open_small(app)
    handlers.step(app, "a", 10, 1, False)
    files = {Path(p).name: Path(p) for p in exports.export(app, "a", 1, False)["files"]}
    assert set(files) == {"view.png", "config.json", "metrics.csv", "final.npz", "run.zip"}
    assert json.loads(files["config.json"].read_text())["model"]["width"] == 16
    assert files["metrics.csv"].read_text().startswith("step,layer,uc_nfa,c_nfa")
    with np.load(files["final.npz"], allow_pickle=False) as npz:
        assert npz["layer1.W"].shape == (16, 20)
    assert files["view.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with zipfile.ZipFile(files["run.zip"]) as zf:
        assert {"run/config.json", "run/state.npz", "run/state.json", "run/metrics.csv"} <= set(zf.namelist())
        assert "run/final.npz" not in zf.namelist()
    for f in files.values():
        assert app.store.get("a").folder in f.parents


def test_load_continues_an_exported_run_exactly(app):
    open_small(app)
    handlers.step(app, "a", 10, 1, False)
    zipped = next(p for p in exports.export(app, "a")["files"] if p.endswith(".zip"))
    open_small(app, "b")
    out = exports.load_run(app, "b", zipped)
    assert "warning" not in out and step_of(out) == 10
    handlers.step(app, "a", 5, 1, False)
    handlers.step(app, "b", 5, 1, False)
    np.testing.assert_array_equal(engine_of(app, "a").snapshot().layer(1).W, engine_of(app, "b").snapshot().layer(1).W)


def test_load_takes_a_zipped_cli_run_folder(app, tmp_path):
    from core.engine import Engine

    engine = Engine(preset_config("quickstart").replace(**{"data.n_train": 300, "model.width": 16,
                                                          "measure.n_points": 100, "model.depth": 3}))
    engine.step(20)
    engine.save(tmp_path / "runs" / "qs", figures=True)
    archive = tmp_path / "qs.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in (tmp_path / "runs" / "qs").iterdir():
            zf.write(f, arcname=f"runs/qs/{f.name}")
    open_small(app)
    out = exports.load_run(app, "a", str(archive))
    assert "warning" not in out and step_of(out) == 20
    assert [value for _, value in out["layer"].choices] == [1, 2, 3]


def _zip(path: Path, members: dict[str, bytes]) -> str:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return str(path)


def test_load_refuses_unsafe_archives(app, tmp_path):
    open_small(app)
    cfg = json.dumps({"preset": "quickstart"}).encode()
    cases = {
        "parent": ({"../config.json": cfg}, "outside"),
        "absolute": ({"/tmp/config.json": cfg}, "absolute"),
        "suffix": ({"run/evil.py": b"print(1)"}, "only"),
        "bomb": ({"run/config.json": b"{" + b" " * (20 << 20) + b"}"}, "zip bomb"),
        "large": ({"run/metrics.csv": np.random.default_rng(0).bytes(3 << 20)}, "more than 2 MiB"),
        "empty": ({"run/metrics.csv": b"step\n"}, "no config.json"),
        "too_big": ({"run/config.json": json.dumps({"model": {"width": 100000}}).encode()}, "model.width"),
        "server_file": ({"run/config.json": json.dumps({"data": {"kind": "file", "path": "/etc/passwd"}}).encode()},
                        "not in the zip"),
    }
    for name, (members, word) in cases.items():
        out = exports.load_run(app, "a", _zip(tmp_path / f"{name}.zip", members))
        assert word in out["warning"], (name, out["warning"])
    link = zipfile.ZipInfo("run/config.json")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(tmp_path / "link.zip", "w") as zf:
        zf.writestr(link, "/etc/passwd")
    assert "link" in exports.load_run(app, "a", str(tmp_path / "link.zip"))["warning"]
    (tmp_path / "x.txt").write_text("hi")
    assert ".zip" in exports.load_run(app, "a", str(tmp_path / "x.txt"))["warning"]
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    assert "not a readable" in exports.load_run(app, "a", str(tmp_path / "junk.zip"))["warning"]
    assert engine_of(app).step_count == 0


def test_upload_csv_then_reset_trains_on_it(app, tmp_path):
    open_small(app)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    text = "a,b,c,y\n" + "\n".join(",".join(f"{v:.4f}" for v in row) + f",{row[0] * row[1]:.4f}" for row in x)
    (tmp_path / "mine.csv").write_text(text)
    out = exports.upload_data(app, "a", str(tmp_path / "mine.csv"), "")
    assert out["data_kind"] == "file" and "60 rows, 3 features" in out["status"]
    handlers.reset(app, "a", form(app, data__kind="file"))
    engine = engine_of(app)
    assert engine.config.data.kind == "file" and engine.snapshot().layer(1).shape == (16, 3)
    assert Path(engine.config.data.path).parent.parent == app.store.get("a").folder
    zipped = next(p for p in exports.export(app, "a")["files"] if p.endswith(".zip"))
    out = exports.load_run(app, "a", zipped)  # the data file travels inside the zip
    assert "warning" not in out and engine_of(app).config.data.kind == "file"


def test_bad_uploads_become_warnings(app, tmp_path):
    open_small(app)
    (tmp_path / "bad.csv").write_text("a,b\n1,x\n2,3\n4,5\n")
    assert "non-numeric" in exports.upload_data(app, "a", str(tmp_path / "bad.csv"))["warning"]
    (tmp_path / "evil.npz").write_bytes(_npz_with_object())
    assert "pickle" in exports.upload_data(app, "a", str(tmp_path / "evil.npz"))["warning"]
    (tmp_path / "data.exe").write_bytes(b"MZ")
    assert ".csv" in exports.upload_data(app, "a", str(tmp_path / "data.exe"))["warning"]
    assert "no file" in exports.upload_data(app, "a", None)["warning"]
    assert app.store.get("a").data_file == ""


def _npz_with_object() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, X=np.array([[1.0], [2.0], [3.0]]), y=np.array([object(), 1, 2], dtype=object))
    return buf.getvalue()


# -- sessions ---------------------------------------------------------------------------

def test_sessions_are_separate_and_released(app):
    open_small(app, "a")
    open_small(app, "b")
    handlers.step(app, "a", 9, 1, False)
    assert engine_of(app, "b").step_count == 0
    folder = app.store.get("a").folder
    handlers.unload(app, "a")
    assert app.store.get("a") is None and not folder.exists()
    out = handlers.step(app, "a", 3, 1, False)  # a late event starts over, and says so
    assert step_of(out) == 3 and "idle and released" in out["status"]


def test_store_caps_sessions_and_expires_idle_ones(tmp_path):
    now = [0.0]
    store = SessionStore(tmp_path, max_sessions=2, ttl=100, clock=lambda: now[0])
    base = preset_config("quickstart")
    store.open("a", base)
    store.open("b", base)
    with pytest.raises(Exception, match="slots"):
        store.open("c", base)
    now[0] = 50
    store.get("a")
    now[0] = 120
    assert store.sweep() == ["b"] and store.get("a") is not None
    store.open("c", base)
    store.close_all()
    assert not tmp_path.exists()


def test_a_full_server_says_so(tmp_path):
    web = WebApp.create(WebSettings(max_sessions=1), root=tmp_path / "s")
    try:
        open_small(web, "a")
        out = handlers.load_page(web, "b", SMALL)
        assert "busy" in out["warning"]
    finally:
        web.close()


def test_a_bug_is_a_message_not_a_crash(app, monkeypatch):
    open_small(app)
    monkeypatch.setattr(handlers, "render", lambda *a, **k: 1 / 0)
    out = handlers.step(app, "a", 1, 1, False)
    assert "ZeroDivisionError" in out["warning"] and "Traceback" not in out["warning"]


def test_web_limits_read_the_environment():
    assert web_limits({}).max_width == 512
    assert web_limits({"NFA_MAX_WIDTH": "64"}).max_width == 64
    with pytest.raises(ConfigError, match="NFA_MAX_DEPTH"):
        web_limits({"NFA_MAX_DEPTH": "many"})
    settings = WebSettings.from_env({"NFA_WEB_MAX_SESSIONS": "3", "NFA_WEB_MAX_UPLOAD_MB": "5"})
    assert settings.max_sessions == 3 and settings.max_upload_mb == 5


def test_an_update_has_a_time_budget(tmp_path):
    web = WebApp.create(WebSettings(update_seconds=0.0), root=tmp_path / "s")
    try:
        open_small(web, "a")
        out = handlers.step(web, "a", 50, 1, False)
        assert step_of(out) == 1 and "1 of 50 steps" in out["status"]
    finally:
        web.close()
