"""The ``[`` ``]`` ``c`` ``k`` ``x`` ``w`` actions, shared by the main screen and the compare screen."""

from __future__ import annotations

from textual.binding import Binding

from core.engine import Snapshot

from app.tui import views

LAYER = Binding.Group("layer", compact=True)

MATRIX_BINDINGS = [
    Binding("left_square_bracket", "layer(-1)", "previous layer", key_display="[", group=LAYER),
    Binding("right_square_bracket", "layer(1)", "next layer", key_display="]", group=LAYER),
    Binding("c", "toggle_centered", "centered"),
    Binding("k", "cycle_view", "matrices"),
    Binding("x", "toggle_scale", "scale"),
    Binding("w", "toggle_window", "window"),
]
"""The keys of MatrixKeys' actions, for both screens' binding lists."""


class MatrixKeys:
    """Layer and matrix-view selection.

    A host keeps ``selected`` (1-based layer), ``view``, ``centered``, ``robust`` (heatmap
    colour scale at the 99th percentile instead of the maximum) and ``recent`` (curves show
    the recent window instead of the whole run), and implements
    ``lead_snapshot()`` (the snapshot that decides the layer count and views) and ``redraw()``.
    """

    selected: int
    view: str
    centered: bool
    robust: bool = False
    recent: bool = False

    def lead_snapshot(self) -> Snapshot:
        raise NotImplementedError

    def redraw(self) -> None:
        raise NotImplementedError

    def action_layer(self, delta: int) -> None:
        """[ and ]: previous or next layer (wrapping)."""
        count = len(self.lead_snapshot().layers)
        self.selected = (self.selected - 1 + delta) % count + 1
        self.redraw()

    def action_toggle_centered(self) -> None:
        """c: centered or plain NFM and AGOP (switches to that view)."""
        self.centered = not self.centered if self.view == "nfm-agop" else True
        self.view = "nfm-agop"
        self.redraw()

    def action_cycle_view(self) -> None:
        """k: the next matrix view."""
        self.view = views.next_view(self.lead_snapshot(), self.view)
        self.redraw()

    def action_toggle_scale(self) -> None:
        """x: heatmap colours scaled at the maximum, or at the 99th percentile (larger values clip)."""
        self.robust = not self.robust
        self.redraw()

    def action_toggle_window(self) -> None:
        """w: curves over the whole run, or the recent window (raw measurements)."""
        self.recent = not self.recent
        self.redraw()
