"""The ``[`` ``]`` ``c`` ``k`` actions, shared by the main screen and the compare screen."""

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
]
"""The keys of MatrixKeys' actions, for both screens' binding lists."""


class MatrixKeys:
    """Layer and matrix-view selection.

    A host keeps ``selected`` (1-based layer), ``view`` and ``centered``, and implements
    ``lead_snapshot()`` (the snapshot that decides the layer count and views) and ``redraw()``.
    """

    selected: int
    view: str
    centered: bool

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
