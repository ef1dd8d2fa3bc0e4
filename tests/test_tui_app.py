"""The terminal app driven key by key through Textual's Pilot (App.run_test)."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from rich.console import Console
from textual.widgets import Input

from app.tui import make_app
from app.tui.compare import CompareScreen
from app.tui.config_screen import ConfigScreen, field_id
from app.tui.driver import EXPORT_FILES
from app.tui.messages import FrameReady
from app.tui.screens import ExportScreen, HelpScreen
from app.tui.views import panels
from app.tui.widgets import HeatmapView, KeyBar, LayerTable, StatusBar
from core.config import preset_config
from tui_helpers import one_torch_thread, run, settle, tiny_config, wait_until


@pytest.fixture(autouse=True)
def _one_thread():
    with one_torch_thread():
        yield


def status(app) -> str:
    """The status bar's text as shown."""
    bar = app.query_one(StatusBar)
    return str(bar.render())


def plain(renderable) -> str:
    """A renderable as plain text, 100 columns wide."""
    console = Console(width=100, record=True, color_system=None, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def heat_titles(app) -> str:
    view = app.query_one(HeatmapView)
    return " ".join(p.title for p in panels(view.snapshot, view.selected, view.view, view.centered))


def test_space_plays_then_pauses():
    async def body():
        app = make_app(tiny_config(steps=100_000))
        async with app.run_test() as pilot:
            await pilot.press("space")
            await wait_until(pilot, lambda: app.snapshot.step >= 20)
            assert app.playing and "playing" in status(app)
            await pilot.press("space")
            await settle(app, pilot)
            paused_at = app.engine.step_count
            assert not app.playing and "paused" in status(app)
            await pilot.pause(0.2)
            assert app.engine.step_count == paused_at
    run(body)


def test_play_pauses_at_steps_and_table_follows():
    async def body():
        app = make_app(tiny_config(steps=40))
        async with app.run_test() as pilot:
            await pilot.press("space")
            await wait_until(pilot, lambda: app.state == "finished")
            snap = app.snapshot
            assert snap.step == 40 and "finished" in status(app)
            assert app.query_one(LayerTable).snapshot is snap
            steps, _ = snap.history.series("uc_nfa", 1)
            assert list(steps) == [0, 10, 20, 30, 40]  # the config's measurement grid
    run(body)


def test_n_steps_once():
    async def body():
        app = make_app(tiny_config())
        async with app.run_test() as pilot:
            await pilot.press("n")
            await settle(app, pilot)
            await pilot.press("n")
            await settle(app, pilot)
            assert app.snapshot.step == 2 and app.snapshot.measured_step == 2
            assert not app.playing
    run(body)


def test_r_resets_to_the_same_start():
    async def body():
        app = make_app(tiny_config())
        async with app.run_test() as pilot:
            start = app.snapshot.layer(1).W.copy()
            await pilot.press("n", "n")
            await settle(app, pilot)
            await pilot.press("r")
            await settle(app, pilot)
            assert app.snapshot.step == 0 and app.state == "paused"
            np.testing.assert_array_equal(app.snapshot.layer(1).W, start)
    run(body)


def test_s_toggles_slo_live():
    async def body():
        app = make_app(tiny_config())
        async with app.run_test() as pilot:
            await pilot.press("n", "s")
            await settle(app, pilot)
            assert app.engine.config.optim.slo.enabled
            assert "SLO on (layer 1, boost 10)" in status(app)
            assert app.snapshot.step == 1  # live: no reset
            await pilot.press("s")
            await settle(app, pilot)
            assert "SLO off" in status(app)
    run(body)


def test_brackets_select_layers_and_wrap():
    async def body():
        app = make_app(tiny_config(**{"model.depth": 3}))
        async with app.run_test() as pilot:
            await pilot.press("right_square_bracket")
            assert app.selected == 2 and app.query_one(LayerTable).selected == 2
            assert "L2 NFM" in heat_titles(app)
            await pilot.press("right_square_bracket", "right_square_bracket")
            assert app.selected == 1
            await pilot.press("left_square_bracket")
            assert app.selected == 3
    run(body)


def test_c_centers_and_k_cycles_views():
    async def body():
        app = make_app(tiny_config())
        async with app.run_test() as pilot:
            await pilot.press("n")
            await settle(app, pilot)
            await pilot.press("c")
            assert app.centered and "centered NFM" in heat_titles(app)
            await pilot.press("c")
            assert not app.centered and "centered" not in heat_titles(app)
            await pilot.press("k")
            assert app.view == "k-utku" and "U^T K U" in heat_titles(app)
            await pilot.press("k")
            assert app.view == "ground-truth" and "G*" in heat_titles(app)
            await pilot.press("k")
            assert app.view == "nfm-agop"
    run(body)


def test_e_exports_the_cli_files(tmp_path):
    async def body():
        app = make_app(tiny_config())
        async with app.run_test() as pilot:
            await pilot.press("n", "e")
            await pilot.pause()
            assert isinstance(app.screen, ExportScreen)
            app.screen.query_one(Input).value = str(tmp_path / "run")
            await pilot.press("enter")
            await settle(app, pilot)
            assert app.last_export == tmp_path / "run"
        for name in EXPORT_FILES:
            assert (tmp_path / "run" / name).is_file(), name
        assert "step,layer,uc_nfa" in (tmp_path / "run" / "metrics.csv").read_text()
    run(body)


def test_e_then_escape_exports_nothing(tmp_path):
    async def body():
        app = make_app(tiny_config())
        async with app.run_test() as pilot:
            await pilot.press("e", "escape")
            await settle(app, pilot)
            assert not isinstance(app.screen, ExportScreen) and app.last_export is None
    run(body)


async def edit_config(app, pilot, **values) -> ConfigScreen:
    """Opens the config screen and types ``values`` (dotted keys) into their fields."""
    await pilot.press("o")
    await pilot.pause()
    screen = app.screen
    assert isinstance(screen, ConfigScreen)
    for key, text in values.items():
        screen.query_one(f"#{field_id(key.replace('__', '.'))}", Input).value = text
    await pilot.pause()
    return screen


def test_o_applies_live_keys_without_reset():
    async def body():
        app = make_app(tiny_config())
        async with app.run_test() as pilot:
            await pilot.press("n")
            await settle(app, pilot)
            await edit_config(app, pilot, optim__lr="0.2", measure__every="5")
            await pilot.press("ctrl+s")
            await settle(app, pilot)
            assert not isinstance(app.screen, ConfigScreen)
            assert app.engine.config.optim.lr == 0.2 and app.engine.config.measure.every == 5
            assert app.snapshot.step == 1
    run(body)


def test_o_restarts_for_model_keys():
    async def body():
        app = make_app(tiny_config())
        async with app.run_test() as pilot:
            await pilot.press("n")
            await settle(app, pilot)
            await edit_config(app, pilot, model__width="16", model__depth="3")
            await pilot.press("ctrl+s")
            await settle(app, pilot)
            snap = app.snapshot
            assert snap.step == 0 and len(snap.layers) == 3 and snap.layer(1).shape == (16, 20)
    run(body)


@pytest.mark.parametrize("key, text, message", [
    ("optim.lr", "fast", "optim.lr: must be a number"),
    ("model.width", "0", "model.width: must be in [1,"),
    ("optim.slo.target_layer", "7", "optim.slo.target_layer: must be in [1, 2]"),
    ("data.target", "__import__('os')", "data.target"),
])
def test_o_refuses_bad_values_in_place(key, text, message):
    async def body():
        app = make_app(tiny_config())
        before = app.engine.config
        async with app.run_test() as pilot:
            screen = await edit_config(app, pilot, **{key.replace(".", "__"): text})
            field = screen.query_one(f"#{field_id(key)}", Input)
            assert field.has_class("-invalid")
            assert message in str(screen.query_one(f"#{field_id(key)}-doc").render())
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert app.screen is screen and message in str(screen.query_one("#config-error").render())
            await pilot.press("escape")
            await settle(app, pilot)
            assert app.engine.config == before and app.snapshot.step == 0
    run(body)


def test_question_mark_lists_every_key():
    async def body():
        app = make_app(tiny_config())
        async with app.run_test(size=(100, 50)) as pilot:
            await pilot.press("question_mark")
            await pilot.pause()
            assert isinstance(app.screen, HelpScreen)
            shown = "\n".join(plain(w.content) for w in app.screen.query("Static"))
            keys = {line.split()[0] for line in shown.splitlines() if line.strip()}
            assert {"space", "n", "r", "s", "[", "]", "c", "k", "v", "e", "o", "?", "q"} <= keys
            for word in ("UC-NFA", "C-NFA", "AGOP", "SLO"):
                assert word in shown
            await pilot.press("escape")
            assert not isinstance(app.screen, HelpScreen)
    run(body)


def test_v_compares_baseline_and_slo_from_one_start():
    async def body():
        app = make_app(tiny_config())
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.press("v")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, CompareScreen)
            base, slo = screen.engines
            assert not base.config.optim.slo.enabled and slo.config.optim.slo.enabled
            await pilot.press("space")
            await wait_until(pilot, lambda: screen.state == "finished")
            b, s = screen.snaps
            assert b.step == s.step == 40
            np.testing.assert_array_equal(b.layer(1).W0, s.layer(1).W0)
            assert not np.array_equal(b.layer(1).W, s.layer(1).W)
            await pilot.press("s")  # main-run keys are off here
            assert not app.engine.config.optim.slo.enabled
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, CompareScreen)
    run(body)


def test_divergence_is_a_status_not_a_crash():
    async def body():
        app = make_app(preset_config("quickstart").replace(**{"optim.lr": 50.0}))
        async with app.run_test() as pilot:
            await pilot.press("space")
            await wait_until(pilot, lambda: app.state == "diverged")
            assert app.snapshot.diverged and not app.playing
            assert "diverged at step" in status(app) and "lower optim.lr" in status(app)
            await pilot.press("space")
            assert "r resets" in status(app)
            await pilot.press("r")
            await settle(app, pilot)
            assert not app.snapshot.diverged and app.snapshot.step == 0
    run(body)


def test_worker_error_becomes_status(monkeypatch):
    async def body():
        app = make_app(tiny_config())

        def broken(*args, **kwargs):
            raise RuntimeError("boom")

        monkeypatch.setattr(app.engine, "step", broken)
        async with app.run_test() as pilot:
            await pilot.press("space")
            await settle(app, pilot)
            assert app.state == "error" and "RuntimeError: boom" in status(app)
            assert app.is_running and not app.playing
    run(body)


def test_stale_frames_from_before_a_reset_are_ignored():
    async def body():
        app = make_app(tiny_config())
        async with app.run_test() as pilot:
            await pilot.press("n")
            await settle(app, pilot)
            old = app.snapshot
            await pilot.press("r")
            await settle(app, pilot)
            app.post_message(FrameReady((old,), app.generation - 1))
            await pilot.pause()
            assert app.snapshot.step == 0
    run(body)


def test_q_quits_promptly_while_playing():
    async def body():
        app = make_app(tiny_config(steps=10_000_000, **{"measure.every": 1000}))
        async with app.run_test() as pilot:
            await pilot.press("space")
            await wait_until(pilot, lambda: app.engine.step_count > 0)
            start = time.monotonic()
            await pilot.press("q")
            await pilot.pause()
        assert time.monotonic() - start < 3.0
        assert app.return_code == 0
    run(body)


@pytest.mark.parametrize("size, cls", [((60, 20), "-small"), ((80, 24), "-narrow"), ((160, 50), "-wide")])
def test_layout_at_sizes(size, cls):
    async def body():
        app = make_app(tiny_config())
        async with app.run_test(size=size) as pilot:
            await pilot.press("n")
            await settle(app, pilot)
            assert app.screen.has_class(cls)
            heat = app.query_one(HeatmapView)
            assert heat.size.width > 0 and heat.size.height > 0
    run(body)


def test_long_frames_report_their_step_count():
    async def body():
        app = make_app(tiny_config(steps=10_000_000, **{"measure.every": 1_000_000}))
        async with app.run_test() as pilot:
            await pilot.press("space")
            await wait_until(pilot, lambda: app.query_one(StatusBar).step > 0)
            assert app.snapshot.step == 0  # not measured yet, but the status bar counts
            assert f"step {app.query_one(StatusBar).step}" in status(app)
            await pilot.press("space")
            await settle(app, pilot)
    run(body)


def test_frames_keep_coming_under_a_dialog():
    async def body():
        app = make_app(tiny_config(steps=400))
        async with app.run_test() as pilot:
            await pilot.press("space", "o")
            await wait_until(pilot, lambda: app.state == "finished")
            assert isinstance(app.screen, ConfigScreen)
            await pilot.press("escape")
            await pilot.pause()
            assert app.query_one(LayerTable).snapshot.step == 400
    run(body)


def test_mouse_clicks_on_key_bar_and_table_rows():
    async def body():
        app = make_app(tiny_config(**{"model.depth": 3}))
        async with app.run_test() as pilot:
            await pilot.click(KeyBar, offset=(20, 0))  # "n step"
            await settle(app, pilot)
            assert app.snapshot.step == 1
            await pilot.click(LayerTable, offset=(5, 4))  # header, rule, then layers 1, 2, 3
            await pilot.pause()
            assert app.selected == 3
    run(body)
