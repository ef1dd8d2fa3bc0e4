"""SVG snapshots of the terminal app (pytest-textual-snapshot) at a fixed seed and size.

Training is done synchronously before each snapshot, so the pictures hold no timing.
Update after an intended change with ``python -m pytest tests/test_tui_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

import pytest
from textual.widgets import Input

from app.tui import make_app
from app.tui.config_screen import field_id
from core.engine import Engine
from tui_helpers import one_torch_thread, tiny_config


@pytest.fixture(autouse=True)
def _one_thread():
    with one_torch_thread():
        yield


def trained_app(steps: int = 30, **changes):
    """The app on an engine already trained ``steps`` steps."""
    cfg = tiny_config(**changes)
    engine = Engine(cfg)
    engine.step(steps)
    return make_app(cfg, engine)


def test_main_screen_80x24(snap_compare):
    assert snap_compare(trained_app(), terminal_size=(80, 24))


def test_main_screen_centered_layer_2_120x36(snap_compare):
    app = trained_app(**{"model.depth": 3, "optim.slo.enabled": True})
    assert snap_compare(app, press=["right_square_bracket", "c"], terminal_size=(120, 36))


def test_config_screen_refuses_a_bad_value(snap_compare):
    async def type_bad_lr(pilot):
        await pilot.press("o")
        await pilot.pause()
        for field in pilot.app.screen.query(Input):
            field.cursor_blink = False
        pilot.app.screen.query_one(f"#{field_id('optim.lr')}", Input).value = "fast"
        await pilot.press("ctrl+s")

    assert snap_compare(trained_app(), run_before=type_bad_lr, terminal_size=(80, 24))


def test_compare_screen(snap_compare):
    async def compare_20_steps(pilot):
        await pilot.press("v")
        await pilot.pause()
        screen = pilot.app.screen
        for engine in screen.engines:
            engine.step(20)
        screen.show(tuple(engine.snapshot() for engine in screen.engines))

    assert snap_compare(trained_app(), run_before=compare_20_steps, terminal_size=(100, 30))
