"""Widgets of the main and compare screens: each holds snapshots and calls a pure renderer."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.text import Text
from textual import events
from textual.app import App
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

from app.tui import heatmaps, render, views
from app.tui.plotting import Chart, chart_text
from core.engine import Snapshot
from core.series import HistoryView


class StatusBar(Widget):
    """Step, losses, play state, optimiser and SLO, then the latest message (always two lines)."""

    snapshot: reactive[Snapshot | None] = reactive(None, always_update=True)
    state = reactive("paused")
    detail = reactive("")
    step = reactive(0)

    def render(self) -> RenderableType:
        return render.status_text(self.snapshot, self.state, self.detail, self.step)


class LayerTable(Widget):
    """The per-layer table; a click on a row selects that layer."""

    snapshot: reactive[Snapshot | None] = reactive(None, always_update=True, layout=True)
    selected = reactive(1)
    view: HistoryView | None = None
    """The run's bounded history view (the sparklines draw its recent window)."""

    class Selected(Message):
        """The user clicked a layer's row."""

        def __init__(self, layer: int) -> None:
            super().__init__()
            self.layer = layer

    def render(self) -> RenderableType:
        table = render.layer_table(self.snapshot, self.selected, self.size.width, self.view)
        if self.snapshot is None:
            return table
        return Group(table, Text(render.measure_caption(self.snapshot), style="dim", no_wrap=True,
                                 overflow="ellipsis"))

    def on_click(self, event: events.Click) -> None:
        row = event.y - 2
        if self.snapshot is not None and 0 <= row < len(self.snapshot.layers):
            self.post_message(self.Selected(row + 1))


class HeatmapView(Widget):
    """Two heatmaps of the selected layer side by side (which two: ``view`` and ``centered``)."""

    snapshot: reactive[Snapshot | None] = reactive(None, always_update=True)
    selected = reactive(1)
    view = reactive(views.VIEWS[0])
    centered = reactive(False)
    robust = reactive(False)

    def render(self) -> RenderableType:
        if self.snapshot is None:
            return Text("waiting for the first measurement…", style="dim")
        pair = views.panels(self.snapshot, min(self.selected, len(self.snapshot.layers)), self.view, self.centered)
        return heatmaps.heatmap_pair(pair, self.size.width, self.size.height, self.robust)


class CurvePlot(Widget):
    """A line chart (``charts.loss_chart``, ``nfa_chart`` or ``compare_chart``) fitted to its size."""

    chart: reactive[Chart | None] = reactive(None, always_update=True)

    def render(self) -> RenderableType:
        if self.chart is None:
            return Text("")
        return chart_text(self.chart, self.size.width, self.size.height)


class KeyBar(Widget):
    """The footer: every active key with what it does, wrapped onto a second line when narrow."""

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, lambda _screen: self.refresh(layout=True))

    def entries(self) -> list[tuple[str, str, str]]:
        """(keys, description, click action) per shown action; a group's keys share one entry."""
        seen: dict[object, list] = {}
        for node, binding, enabled, _tip in self.screen.active_bindings.values():
            if not binding.show or not enabled:
                continue
            owner = "app" if isinstance(node, App) else "screen"
            key = binding.group or binding.action
            display = self.app.get_key_display(binding)
            if key in seen:
                if binding.group and display not in seen[key][0]:
                    seen[key][0] += " " + display
                continue
            text = binding.group.description if binding.group else binding.description
            seen[key] = [display, text, f"{owner}.{binding.action}"]
        return [tuple(e) for e in seen.values()]

    def render(self) -> RenderableType:
        return render.key_bar(self.entries(), self.size.width or 80)
