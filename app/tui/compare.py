"""The compare view: every arm of ``core.arms.make_arms`` from one initialisation, side by side.

The arms (baseline optimiser, SLO with boost 1 as the control, SLO) share the main run's
config, data, seed and so initial weights and batch order; they differ only in ``optim``,
as in ``python -m app.cli compare``. Arms are drawn in a loop: each gets its colour and
dash from ``core.arms.PALETTE``, and nothing here depends on an arm's name except the
text that labels it.
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

from app.tui import charts, render, views
from app.tui.messages import FrameReady, Progress, WorkFailed
from app.tui.player import Player
from app.tui.selection import MATRIX_BINDINGS, MatrixKeys
from app.tui.widgets import CurvePlot, HeatmapView, KeyBar
from core.arms import Arm, make_arms
from core.config import RunConfig
from core.data import Dataset
from core.engine import Engine, Snapshot


class CompareTable(Widget):
    """The selected layer's UC-NFA, C-NFA (with standard errors) and more, one row per arm."""

    snapshots: reactive[tuple[Snapshot, ...]] = reactive((), always_update=True, layout=True)
    selected = reactive(1)
    arms: tuple[Arm, ...] = ()

    def render(self) -> RenderableType:
        return render.compare_table(self.arms, self.snapshots, self.selected) if self.snapshots else Text("")


class CompareStatus(Widget):
    """Step, play state and the arms compared; then the message (always two lines)."""

    snapshots: reactive[tuple[Snapshot, ...]] = reactive((), always_update=True)
    state = reactive("paused")
    detail = reactive("")
    arms: tuple[Arm, ...] = ()

    def render(self) -> RenderableType:
        return render.compare_status(self.arms, self.snapshots, self.state, self.detail) if self.snapshots else Text("")


class RunLabel(Widget):
    """An arm's heading above its heatmaps, fitted to the column's width."""

    snapshot: reactive[Snapshot | None] = reactive(None, always_update=True)

    def __init__(self, arm: Arm, **kwargs) -> None:
        super().__init__(**kwargs)
        self.arm = arm

    def render(self) -> RenderableType:
        return render.run_label(self.arm, self.snapshot, self.size.width) if self.snapshot else Text("")


class CompareScreen(MatrixKeys, Player, Screen):
    """The arms trained in step in one worker; space, n, r, [ ], c, k, x, w as on the main screen."""

    BINDINGS = [
        Binding("space", "toggle_play", "play/pause", key_display="space"),
        Binding("n", "step", "step"),
        Binding("r", "reset", "reset all"),
        *MATRIX_BINDINGS,
        Binding("escape,v", "close", "back", key_display="esc"),
    ]

    def __init__(self, config: RunConfig, dataset: Dataset, selected: int = 1) -> None:
        super().__init__()
        self.arms = tuple(make_arms(config))
        self.runs = [Engine(arm.config, dataset=dataset) for arm in self.arms]
        self.history_views = [charts.new_view() for _ in self.arms]
        self.snaps = tuple(e.snapshot() for e in self.runs)
        self.selected, self.view, self.centered = selected, views.VIEWS[0], False
        self.state, self.detail = "paused", ""

    @property
    def engines(self) -> list[Engine]:
        return self.runs

    def compose(self) -> ComposeResult:
        yield CompareStatus(id="compare-status")
        with Horizontal(id="compare-top"):
            yield CompareTable()
            yield CurvePlot(id="compare-curve")
        with Horizontal(id="compare-main"):
            for i, arm in enumerate(self.arms):
                with Vertical(classes="run-column"):
                    yield RunLabel(arm, classes="run-label", id=f"label-{i}")
                    yield HeatmapView(id=f"heat-{i}")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one(CompareStatus).arms = self.arms
        self.query_one(CompareTable).arms = self.arms
        self.show(self.snaps)

    def show(self, snaps: tuple[Snapshot, ...]) -> None:
        """Hands every arm's snapshot and the view settings to the widgets."""
        self.snaps = snaps
        for view, snap in zip(self.history_views, snaps):
            view.update(snap.history)
        status = self.query_one(CompareStatus)
        status.snapshots, status.state, status.detail = snaps, self.state, self.detail
        table = self.query_one(CompareTable)
        table.snapshots, table.selected = snaps, self.selected
        self.query_one(CurvePlot).chart = charts.compare_chart(self.arms, self.history_views, self.selected,
                                                               recent=self.recent)
        for i, (arm, snap) in enumerate(zip(self.arms, snaps)):
            self.query_one(f"#label-{i}", RunLabel).snapshot = snap
            heat = self.query_one(f"#heat-{i}", HeatmapView)
            heat.snapshot, heat.selected, heat.view, heat.centered = snap, self.selected, self.view, self.centered
            heat.robust = self.robust

    def on_frame_ready(self, message: FrameReady) -> None:
        message.stop()
        if not self.accept(message):
            return
        self.state = message.end or ("playing" if self.playing else self.state)
        self.detail = next((s.message for s in reversed(message.snaps) if s.message), "")
        self.show(message.snaps)

    def on_progress(self, message: Progress) -> None:
        message.stop()

    def on_work_failed(self, message: WorkFailed) -> None:
        message.stop()
        if message.generation == self.generation:
            self.playing, self.state, self.detail = False, "error", message.text
            self.show(self.snaps)

    def action_toggle_play(self) -> None:
        """Space: play or pause every arm."""
        if self.playing:
            self.pause()
            self.state = "paused"
        elif any(s.stopped for s in self.snaps):
            self.detail = f"an arm stopped ({next(s.status for s in self.snaps if s.stopped)}): r resets them all"
        else:
            self.play()
            self.state = "playing"
        self.show(self.snaps)

    def action_step(self) -> None:
        """n: every arm to the next measurement."""
        self.step_once()
        self.state = "paused"
        self.show(self.snaps)

    def action_reset(self) -> None:
        """r: every arm back to the shared start."""
        self.reset_engines([None] * len(self.runs))
        self.state, self.detail = "working", "resetting every arm…"
        self.show(self.snaps)

    def lead_snapshot(self) -> Snapshot:
        return self.snaps[0]

    def redraw(self) -> None:
        self.show(self.snaps)

    def action_close(self) -> None:
        """Leaves the compare view (its training stops)."""
        self.pause()
        self.app.pop_screen()
