"""Widgets of the main and compare screens: each holds snapshots and calls a pure renderer."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.text import Text
from textual import events
from textual.app import App
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

from app.tui import charts, render, views
from app.tui.plotting import chart_text
from core.engine import Snapshot


class StatusBar(Widget):
    """Step, losses, play state, optimiser and SLO, then the latest message."""

    snapshot: reactive[Snapshot | None] = reactive(None, always_update=True, layout=True)
    state = reactive("paused")
    detail = reactive("", layout=True)
    step = reactive(0)

    def render(self) -> RenderableType:
        return render.status_text(self.snapshot, self.state, self.detail, self.step)


class LayerTable(Widget):
    """The per-layer table; a click on a row selects that layer."""

    snapshot: reactive[Snapshot | None] = reactive(None, always_update=True, layout=True)
    selected = reactive(1)

    class Selected(Message):
        """The user clicked a layer's row."""

        def __init__(self, layer: int) -> None:
            super().__init__()
            self.layer = layer

    def render(self) -> RenderableType:
        table = render.layer_table(self.snapshot, self.selected, self.size.width)
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

    def render(self) -> RenderableType:
        if self.snapshot is None:
            return Text("waiting for the first measurement…", style="dim")
        pair = views.panels(self.snapshot, min(self.selected, len(self.snapshot.layers)), self.view, self.centered)
        return render.heatmap_pair(pair, self.size.width, self.size.height)


class CurvePlot(Widget):
    """A plotext chart: ``loss``, ``nfa`` (selected layer) or ``compare`` (baseline vs SLO)."""

    snapshots: reactive[tuple[Snapshot, ...]] = reactive((), always_update=True)
    selected = reactive(1)

    def __init__(self, kind: str, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.kind = kind

    def chart(self) -> charts.Chart | None:
        """The chart for the current snapshots, or None before the first one."""
        if not self.snapshots:
            return None
        layer = min(self.selected, len(self.snapshots[0].layers))
        if self.kind == "loss":
            return charts.loss_chart(self.snapshots[0])
        if self.kind == "compare" and len(self.snapshots) == 2:
            return charts.compare_chart(*self.snapshots, layer)
        return charts.nfa_chart(self.snapshots[0], layer)

    def render(self) -> RenderableType:
        chart = self.chart()
        if chart is None:
            return Text("")
        return chart_text(chart.title, chart.curves, self.size.width, self.size.height, chart.log, chart.ylim)


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
