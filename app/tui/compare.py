"""The compare view: a baseline and an SLO run from the same initialisation, side by side.

Both runs use the main run's config and data; the baseline has SLO off, the other SLO on
(target layer, speed and boost from the config), as ``python -m app.cli compare`` does.
"""

from __future__ import annotations

from rich.console import RenderableType
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Static

from app.headless import compare_configs
from app.tui import render, views
from app.tui.messages import FrameReady, Progress, WorkFailed
from app.tui.player import Player
from app.tui.selection import MATRIX_BINDINGS, MatrixKeys
from app.tui.widgets import CurvePlot, HeatmapView, KeyBar
from core.config import RunConfig
from core.data import Dataset
from core.engine import Engine, Snapshot


class CompareTable(Widget):
    """UC-NFA, C-NFA and quality per layer, baseline → SLO."""

    snapshots: reactive[tuple[Snapshot, ...]] = reactive((), always_update=True, layout=True)
    selected = reactive(1)

    def render(self) -> RenderableType:
        base, slo = self.snapshots if len(self.snapshots) == 2 else (None, None)
        return render.compare_table(base, slo, self.selected)


class CompareStatus(Widget):
    """Step, play state and what is compared."""

    snapshots: reactive[tuple[Snapshot, ...]] = reactive((), always_update=True, layout=True)
    state = reactive("paused")
    detail = reactive("", layout=True)

    def render(self) -> RenderableType:
        return render.compare_status(self.snapshots, self.state, self.detail) if self.snapshots else Text("")


class CompareScreen(MatrixKeys, Player, Screen):
    """Baseline and SLO trained in step in one worker; space, n, r, [ ], c, k as on the main screen."""

    BINDINGS = [
        Binding("space", "toggle_play", "play/pause", key_display="space"),
        Binding("n", "step", "step"),
        Binding("r", "reset", "reset both"),
        *MATRIX_BINDINGS,
        Binding("escape,v", "close", "back", key_display="esc"),
    ]

    def __init__(self, config: RunConfig, dataset: Dataset, selected: int = 1) -> None:
        super().__init__()
        base_cfg, slo_cfg = compare_configs(config)
        self.pair = [Engine(base_cfg, dataset=dataset), Engine(slo_cfg, dataset=dataset)]
        self.snaps = tuple(e.snapshot() for e in self.pair)
        self.selected, self.view, self.centered = selected, views.VIEWS[0], False
        self.state, self.detail = "paused", ""

    @property
    def engines(self) -> list[Engine]:
        return self.pair

    def compose(self) -> ComposeResult:
        yield CompareStatus(id="compare-status")
        with Horizontal(id="compare-top"):
            yield CompareTable()
            yield CurvePlot("compare", id="compare-curve")
        with Horizontal(id="compare-main"):
            for name in ("baseline", "slo"):
                with Vertical(classes="run-column"):
                    yield Static(classes="run-label", id=f"label-{name}")
                    yield HeatmapView(id=f"heat-{name}")
        yield KeyBar()

    def on_mount(self) -> None:
        self.show(self.snaps)

    def show(self, snaps: tuple[Snapshot, Snapshot]) -> None:
        """Hands both snapshots and the view settings to the widgets."""
        self.snaps = snaps
        status = self.query_one(CompareStatus)
        status.snapshots, status.state, status.detail = snaps, self.state, self.detail
        table = self.query_one(CompareTable)
        table.snapshots, table.selected = snaps, self.selected
        curve = self.query_one(CurvePlot)
        curve.snapshots, curve.selected = snaps, self.selected
        for name, snap in zip(("baseline", "slo"), snaps):
            self.query_one(f"#label-{name}", Static).update(render.run_label(name, snap))
            heat = self.query_one(f"#heat-{name}", HeatmapView)
            heat.snapshot, heat.selected, heat.view, heat.centered = snap, self.selected, self.view, self.centered

    def on_frame_ready(self, message: FrameReady) -> None:
        message.stop()
        if not self.accept(message):
            return
        self.state = message.end or ("playing" if self.playing else self.state)
        self.detail = message.snaps[1].message or message.snaps[0].message
        self.show(message.snaps)

    def on_progress(self, message: Progress) -> None:
        message.stop()

    def on_work_failed(self, message: WorkFailed) -> None:
        message.stop()
        if message.generation == self.generation:
            self.playing, self.state, self.detail = False, "error", message.text
            self.show(self.snaps)

    def action_toggle_play(self) -> None:
        """Space: play or pause both runs."""
        if self.playing:
            self.pause()
            self.state = "paused"
        elif any(s.diverged for s in self.snaps):
            self.detail = "a run diverged: r resets both"
        else:
            self.play()
            self.state = "playing"
        self.show(self.snaps)

    def action_step(self) -> None:
        """n: one step of each run."""
        self.step_once()
        self.state = "paused"
        self.show(self.snaps)

    def action_reset(self) -> None:
        """r: both runs back to their shared start."""
        self.reset_engines([None, None])
        self.state, self.detail = "working", "resetting both runs…"
        self.show(self.snaps)

    def lead_snapshot(self) -> Snapshot:
        return self.snaps[0]

    def redraw(self) -> None:
        self.show(self.snaps)

    def action_close(self) -> None:
        """Leaves the compare view (its training stops)."""
        self.pause()
        self.app.pop_screen()
