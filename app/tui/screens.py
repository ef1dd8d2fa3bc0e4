"""Modal screens: the ``?`` help and the ``e`` export prompt."""

from __future__ import annotations

from typing import Sequence

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from app.tui import render
from app.tui.driver import EXPORT_FILES
from app.tui.widgets import KeyBar

GLOSSARY = (
    ("NFM", "W^T W: the input directions the layer's weights amplify"),
    ("AGOP", "W^T K W: the input directions the output is sensitive to"),
    ("K", "covariance of the output's gradients w.r.t. the layer's pre-activations"),
    ("U^T K U", "K in the basis of W's left singular vectors: diagonal when aligned"),
    ("UC-NFA", "rho(NFM, AGOP^alpha): the neural feature ansatz"),
    ("C-NFA", "rho of the centered matrices dW^T dW and dW^T K dW (dW = W - W0)"),
    ("move", "relative movement ||dW||_F / ||W||_F"),
    ("quality", "rho(NFM_1, G*^alpha), G* the true AGOP of a synthetic target"),
    ("SLO", "speed-limited optimisation: every layer moves a fixed speed, the target layer boost times faster"),
)


class HelpScreen(ModalScreen[None]):
    """Every key and what it does, and what the numbers mean."""

    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "close")]

    def __init__(self, keys: Sequence[tuple[str, str]]) -> None:
        super().__init__()
        self.keys = list(keys)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static("[b]NFA Explorer[/b]: watch W^T W align with W^T K W while a network trains",
                         id="help-title")
            yield Static(render.help_rows(self.keys))
            yield Static("[b]What the numbers mean[/b]", classes="help-head")
            yield Static(render.help_rows(GLOSSARY))
            yield Static("[dim]escape or ? closes this screen[/dim]")
        yield KeyBar()


class ExportScreen(ModalScreen[str | None]):
    """Asks for the folder to export the run to; enter exports, escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, folder: str) -> None:
        super().__init__()
        self.folder = folder

    def compose(self) -> ComposeResult:
        with Vertical(id="export-box", classes="dialog"):
            yield Static("[b]Export the run[/b] to a folder (enter exports); the same files as the CLI:")
            yield Static(f"[dim]{', '.join(EXPORT_FILES)}[/dim]")
            yield Input(self.folder, id="export-folder")
            yield Static("", id="export-error", classes="problem")
            with Horizontal(classes="buttons"):
                yield Button("Export", variant="primary", id="export-ok", compact=True)
                yield Button("Cancel", id="export-cancel", compact=True)
        yield KeyBar()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "export-ok":
            self._submit()
        else:
            self.dismiss(None)

    def _submit(self) -> None:
        folder = self.query_one("#export-folder", Input).value.strip()
        if not folder:
            self.query_one("#export-error", Static).update("give a folder name")
            return
        self.dismiss(folder)

    def action_cancel(self) -> None:
        self.dismiss(None)
