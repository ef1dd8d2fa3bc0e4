"""The terminal app driven key by key through Textual's Pilot (App.run_test)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from rich.console import Console
from textual.widgets import Input

from app.tui import charts, make_app, render
from app.tui.compare import CompareScreen
from app.tui.config_screen import ConfigScreen, field_id
from app.tui.driver import EXPORT_FILES
from app.tui.messages import FrameReady
from app.tui.screens import ExportScreen, HelpScreen
from app.tui.views import panels
from app.tui.widgets import CurvePlot, HeatmapView, KeyBar, LayerTable, StatusBar
from core.arms import make_arms
from core.config import preset_config
from tui_helpers import one_torch_thread, run, settle, tiny_config, wait_until


@pytest.fixture(autouse=True)
def _one_thread():
    with one_torch_thread():
        yield


def status(app) -> str:
    """The status bar's text as shown."""
    bar = app.query_one(StatusBar)
    console = Console(width=200, record=True, color_system=None, file=io.StringIO())
    console.print(bar.render())
    return "\n".join(line.rstrip() for line in console.export_text().rstrip("\n").split("\n"))


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


def test_play_goes_past_steps_until_the_play_limit_and_table_follows():
    async def body():
        app = make_app(tiny_config(steps=20))
        app.play_limit = 40  # the real limit is 10,000,000 steps
        async with app.run_test() as pilot:
            await pilot.press("space")
            await wait_until(pilot, lambda: app.state == "finished")
            snap = app.snapshot
            assert snap.step == 40 and "finished" in status(app)
            assert app.query_one(LayerTable).snapshot is snap
            steps, _ = snap.history.series("uc_nfa", 1)
            assert list(steps) == [0, 10, 20, 30, 40]  # the config's measurement grid
    run(body)


def test_n_trains_to_the_next_measurement():
    async def body():
        app = make_app(tiny_config(**{"measure.every": 7}))
        async with app.run_test() as pilot:
            await pilot.press("n")
            await settle(app, pilot)
            assert app.snapshot.step == 7 and app.snapshot.measured_step == 7
            await pilot.press("n")
            await settle(app, pilot)
            assert app.snapshot.step == 14 and app.snapshot.measured_step == 14
            assert not app.playing and app.state == "paused"
            steps, _ = app.history_view.series("uc_nfa", 1)
            assert list(steps) == [0, 7, 14]
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
            assert app.snapshot.step == 10  # live: no reset
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
            assert app.snapshot.step == 10
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


def test_v_compares_every_arm_from_one_start():
    async def body():
        app = make_app(tiny_config())
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.press("v")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, CompareScreen)
            assert [a.name for a in screen.arms] == [a.name for a in make_arms(app.engine.config)]
            assert [e.config for e in screen.engines] == [a.config for a in screen.arms]
            screen.play_limit = 40
            await pilot.press("space")
            await wait_until(pilot, lambda: screen.state == "finished")
            snaps = screen.snaps
            assert [s.step for s in snaps] == [40] * len(screen.arms) == [40, 40, 40]
            for s in snaps[1:]:
                np.testing.assert_array_equal(snaps[0].layer(1).W0, s.layer(1).W0)
            assert not np.array_equal(snaps[0].layer(1).W, snaps[2].layer(1).W)
            assert not np.array_equal(snaps[1].layer(1).W, snaps[2].layer(1).W)
            chart = screen.query_one(CurvePlot).chart
            assert [c.label for c in chart.curves] == [a.name for a in screen.arms]
            for curve, snap in zip(chart.curves, snaps):  # each arm's curve is its own history
                np.testing.assert_array_equal(curve.values, snap.history.series("uc_nfa", 1)[1])
            assert len({(c.colour, c.dash) for c in chart.curves}) == 3  # one style per arm
            shown = plain(render.compare_table(screen.arms, snaps, 1))
            for arm, snap in zip(screen.arms, snaps):
                line = next(l for l in shown.splitlines() if l.startswith(arm.name))
                assert f"{snap.layer(1).uc_nfa:.3f}" in line and f"{snap.layer(1).c_nfa:.3f}" in line
            labels = [render.run_label(arm, snap, 200).plain for arm, snap in zip(screen.arms, snaps)]
            assert [l.split("  test")[0] for l in labels] == [a.label.replace(", ", "  ") for a in screen.arms]
            for arm, snap in zip(screen.arms, snaps):  # at any width: whole parts only
                for width in (10, 25, 40):
                    shown = render.run_label(arm, snap, width).plain
                    assert len(shown) <= width
                    assert all(p in arm.label.split(", ") or p.startswith("test ") for p in shown.split("  ") if p)
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
            at_quit = app.engine.step_count
            await pilot.press("q")
            await pilot.pause()
        assert app.return_code == 0
        # the worker stops at its next cancellation check: within one frame's steps, not the run's 10^7
        assert app.engine.step_count - at_quit <= 1000
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
            assert f"step {app.query_one(StatusBar).step:>9,}" in status(app)
            await pilot.press("space")
            await settle(app, pilot)
    run(body)


def test_frames_keep_coming_under_a_dialog():
    async def body():
        app = make_app(tiny_config())
        app.play_limit = 400
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
            assert app.snapshot.step == 10
            await pilot.click(LayerTable, offset=(5, 4))  # header, rule, then layers 1, 2, 3
            await pilot.pause()
            assert app.selected == 3
    run(body)


def widget_lines(widget) -> list[str]:
    """What a widget shows, as plain lines at its own size."""
    console = Console(width=widget.size.width, record=True, color_system=None, file=io.StringIO())
    console.print(widget.render())
    return console.export_text().rstrip("\n").split("\n")


def test_plot_labels_at_80x24_are_named_round_and_apart():
    async def body():
        app = make_app(tiny_config())
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("n", "n", "n")
            await settle(app, pilot)
            for plot_id, name in (("#loss", "loss"), ("#nfa", "correlation")):
                plot = app.query_one(plot_id, CurvePlot)
                assert plot.size.width >= 30 and plot.size.height >= 5, plot.size
                lines = widget_lines(plot)
                assert lines[0].startswith(name) and lines[-1].rstrip().endswith(" step")
                labelled = [(r, line.split("┤")[0].strip()) for r, line in enumerate(lines) if "┤" in line]
                assert len(labelled) >= 2
                rows = [r for r, _ in labelled]
                assert all(b - a >= 2 for a, b in zip(rows, rows[1:]))
                values = [float(v) for _, v in labelled]
                assert values == sorted(values, reverse=True) and len(set(values)) == len(values)
                assert all(len(v) <= 5 for _, v in labelled)
            ticks = [t for t in widget_lines(app.query_one("#nfa", CurvePlot))[-1].split() if t[0].isdigit()]
            assert ticks[0] == "0" and ticks[-1] in ("30", "20")
            await pilot.press("w")
            await pilot.pause()
            assert widget_lines(app.query_one("#loss", CurvePlot))[0].startswith(f"loss (log) last {charts.RECENT}")
    run(body)


def test_divergence_screen_shows_the_losses_of_the_step_it_names():
    async def body():
        app = make_app(preset_config("quickstart").replace(**{"optim.lr": 50.0}))
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.press("space")
            await wait_until(pilot, lambda: app.state == "diverged")
            snap = app.snapshot
            step = int(snap.message.split("diverged at step ")[1].split(":")[0])
            first, second = status(app).split("\n")
            assert first.startswith(f"step {step:>9,}") and snap.step == step
            assert "diverged" in first and second.startswith(f"diverged at step {step}:")
            shown_loss = first.split(" loss")[1].split(" test")[0].strip()
            shown_test = first.split(" test")[1].split()[0]
            if snap.measured_step != step:  # never the losses of an earlier measurement
                assert (shown_loss, shown_test) == ("n/a", "n/a")
                assert "loss is" in second
            else:
                assert shown_loss == render.fmt_loss(snap.train_loss).strip()
            caption = plain(app.query_one(LayerTable).render())
            assert f"measured at step {snap.measured_step}" in caption
    run(body)


def test_export_notice_gives_the_absolute_folder_and_every_file_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    async def body():
        app = make_app(tiny_config())
        notices = []
        app.notify = lambda message, **kw: notices.append(message)
        async with app.run_test() as pilot:
            await pilot.press("n", "e")
            await pilot.pause()
            app.screen.query_one(Input).value = "out/run1"
            await pilot.press("enter")
            await settle(app, pilot)
        folder = (tmp_path / "out" / "run1").resolve()
        done = [n for n in notices if n.startswith("exported to ")]
        assert len(done) == 1
        where, files = done[0][len("exported to "):].split(": ")
        assert where == str(folder)
        assert files.split(", ") == sorted(p.name for p in folder.iterdir()) == sorted(EXPORT_FILES)
    run(body)


def test_resize_relayouts_at_once():
    async def body():
        app = make_app(tiny_config())
        async with app.run_test(size=(200, 60)) as pilot:
            await pilot.press("n")
            await settle(app, pilot)
            assert app.screen.has_class("-wide")
            await pilot.resize_terminal(80, 24)
            await pilot.pause()
            assert app.screen.has_class("-narrow") and not app.screen.has_class("-wide")
            curves = app.query_one("#curves")
            heat = app.query_one(HeatmapView)
            assert curves.region.right <= 80 and heat.region.right <= curves.region.x
            assert app.query_one(StatusBar).size.height == 2
    run(body)
