"""The paper's settings in every front end: the web form (controls, handlers, URL) and the
TUI config screen (built from the dataclass)."""

from __future__ import annotations

import pytest
import torch
from textual.widgets import Input

from app.web import handlers
from app.web.form import FORM_KEYS, form_values
from app.web.handlers import WebApp
from app.web.settings import WebSettings
from core.config import flat_items, preset_config

NEW_KEYS = ("data.standardize", "optim.weight_decay", "optim.warmup_steps", "optim.warmup_lr",
            "measure.every_epochs", "measure.n_points")

SMALL = {"data.n_train": "300", "data.n_test": "100", "model.width": "16", "measure.n_points": "100",
         "measure.every": "10", "steps": "40"}


@pytest.fixture
def app(tmp_path):
    web = WebApp.create(WebSettings(max_sessions=2, session_ttl=600, max_unzip_mb=2, update_seconds=60),
                        root=tmp_path / "sessions")
    yield web
    web.close()


def _form(app, **changes) -> list:
    values = dict(zip(FORM_KEYS, form_values(app.store.get("a").runs()[0].engine.config)))
    values.update({k.replace("__", "."): v for k, v in changes.items()})
    return [values[k] for k in FORM_KEYS]


def test_web_page_has_a_control_for_every_new_setting():
    from app.web.layout import build_demo

    assert set(NEW_KEYS) <= set(FORM_KEYS)
    demo = build_demo(WebApp.create(WebSettings(max_sessions=1, session_ttl=60, max_unzip_mb=1, update_seconds=5)))
    labels = {getattr(b, "label", None) for b in demo.blocks.values()}
    for label in ("Standardise inputs", "Weight decay λ", "Warm-up steps (plain SGD)", "Warm-up lr",
                  "…or every N epochs (0: off)", "Measurement points (0: all)"):
        assert label in labels


def test_web_form_sets_the_new_settings(app):
    out = handlers.load_page(app, "a", SMALL)
    assert "warning" not in out
    handlers.step(app, "a", 5, 1, False)
    out = handlers.change_settings(app, "a", _form(app, optim__weight_decay=0.25, optim__warmup_steps=2,
                                                   optim__warmup_lr=0.001, measure__every_epochs=1))
    engine = app.store.get("a").runs()[0].engine
    o = engine.config.optim
    assert (o.weight_decay, o.warmup_steps, o.warmup_lr, engine.config.measure.every_epochs) == (0.25, 2, 0.001, 1)
    assert engine.step_count == 5 and "warning" not in out  # live: no reset
    assert "optim.weight_decay=0.25" in out["share"]
    out = handlers.reset(app, "a", _form(app, data__standardize="per_channel", measure__n_points=0))
    engine = app.store.get("a").runs()[0].engine
    assert engine.config.data.standardize == "per_channel" and engine.dataset.measures_all
    x = engine.dataset.x_train
    assert abs(float(x.mean())) < 1e-5 and float(x.std()) == pytest.approx(1.0, abs=1e-4)
    bad = handlers.change_settings(app, "a", _form(app, data__standardize="per_pixel"))
    assert "data.standardize" in bad["warning"]


def test_web_link_carries_the_new_settings(app):
    out = handlers.load_page(app, "a", {**SMALL, "optim.warmup_steps": "3", "data.standardize": "none"})
    engine = app.store.get("a").runs()[0].engine
    assert engine.config.optim.warmup_steps == 3 and engine.config.data.standardize == "none"
    assert "optim.warmup_steps=3" in out["share"]


def test_tui_config_screen_edits_the_new_settings():
    from app.tui import make_app
    from app.tui.config_screen import ConfigScreen, field_id
    from tui_helpers import one_torch_thread, run, settle, tiny_config

    assert set(NEW_KEYS) <= set(flat_items(preset_config("quickstart")))

    async def body():
        app = make_app(tiny_config())
        async with app.run_test() as pilot:
            await pilot.press("o")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, ConfigScreen)
            for key, text in {"optim.weight_decay": "0.1", "optim.warmup_steps": "4",
                              "measure.every_epochs": "1", "data.standardize": "per_channel",
                              "measure.n_points": "0"}.items():
                screen.query_one(f"#{field_id(key)}", Input).value = text
            await pilot.pause()
            await pilot.press("ctrl+s")
            await settle(app, pilot)
            cfg = app.engine.config
            assert (cfg.optim.weight_decay, cfg.optim.warmup_steps, cfg.measure.every_epochs) == (0.1, 4, 1)
            assert cfg.data.standardize == "per_channel" and app.engine.dataset.measures_all

    with one_torch_thread():
        torch.manual_seed(0)
        run(body)


def test_tui_frames_follow_the_epoch_schedule():
    from app.tui.driver import advance
    from core.engine import Engine

    cfg = preset_config("quickstart").replace(**{"data.n_train": 100, "data.n_test": 20, "model.width": 8,
                                                   "optim.batch_size": 32, "measure.every": 7,
                                                   "measure.every_epochs": 1, "measure.n_points": 0,
                                                   "device": "cpu"})
    engine = Engine(cfg)
    frame = advance([engine], None, lambda: False)
    assert frame.snaps[0].step == 4 and engine.history.last_step == 4  # one epoch: 32+32+32+4 points
    frame = advance([engine], 6, lambda: False)
    assert frame.snaps[0].step == 6 and frame.done
