"""The ``o`` config screen: every field of RunConfig, validated as the CLI validates it.

Fields, help lines and order come from the dataclass (``flat_items``, ``field_docs``);
values are parsed by ``set_dotted`` and checked by ``validate`` through
``RunConfig.replace``, so a bad value is refused in place with the config's own message.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from app.tui.widgets import KeyBar

from core.config import ConfigError, RunConfig, field_docs, flat_items
from core.engine import LIVE_PREFIXES


def value_text(value: Any) -> str:
    """A field's value as the user types it (JSON spelling for booleans)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def field_id(key: str) -> str:
    """A widget id for a dotted key: ``optim.slo.boost`` -> ``cfg-optim-slo-boost``."""
    return "cfg-" + key.replace(".", "-").replace("_", "-")


def section_of(key: str) -> str:
    """The heading a key sits under: its dotted prefix, or ``run`` for top-level keys."""
    return key.rpartition(".")[0] or "run"


def plain(doc: str) -> str:
    """A field docstring without its reStructuredText backticks."""
    return doc.replace("``", "")


def candidate(base: RunConfig, texts: dict[str, str]) -> RunConfig:
    """``base`` with every edited text applied and validated; raises ConfigError naming the key."""
    original = {k: value_text(v) for k, v in flat_items(base).items()}
    changes = {k: t for k, t in texts.items() if t != original.get(k)}
    return base.replace(**changes)


class ConfigScreen(ModalScreen[RunConfig | None]):
    """Edits a copy of the run's config; returns the new config, or None when cancelled."""

    BINDINGS = [
        Binding("escape", "cancel", "cancel"),
        Binding("ctrl+s", "apply", "apply"),
        Binding("tab", "app.focus_next", "next field"),
    ]

    def __init__(self, config: RunConfig) -> None:
        super().__init__()
        self.config = config
        self.keys = {field_id(k): k for k in flat_items(config)}
        self.error: ConfigError | None = None
        self.docs = {k: plain(v) for k, v in field_docs().items()}

    def compose(self) -> ComposeResult:
        with Vertical(id="config-box", classes="dialog"):
            yield Label("[b]Config[/b]  [dim]keys with * restart the run; the others apply live[/dim]")
            with VerticalScroll(id="config-fields"):
                section = None
                for key, value in flat_items(self.config).items():
                    if section_of(key) != section:
                        section = section_of(key)
                        yield Static(section, classes="config-section")
                    yield from self._field(key, value, self.docs.get(key, ""))
            yield Static("", id="config-help")
            yield Static("", id="config-error", classes="problem")
            with Horizontal(classes="buttons"):
                yield Button("Apply", variant="primary", id="config-apply", compact=True)
                yield Button("Cancel", id="config-cancel", compact=True)
        yield KeyBar()

    def _field(self, key: str, value: Any, doc: str) -> ComposeResult:
        live = key.startswith(LIVE_PREFIXES)
        with Horizontal(classes="config-field"):
            yield Label(key + ("" if live else " *"), classes="config-key")
            yield Input(value_text(value), id=field_id(key), compact=True)
        yield Static(doc, classes="config-doc", id=field_id(key) + "-doc")

    def on_mount(self) -> None:
        first = next(iter(self.keys))
        self.query_one(f"#{first}", Input).focus()

    def on_descendant_focus(self, event) -> None:
        key = self.keys.get(getattr(event.widget, "id", None) or "")
        if key is not None:
            self.query_one("#config-help", Static).update(f"[b]{key}[/b]: {self.docs.get(key, '')}")

    def texts(self) -> dict[str, str]:
        """The current text of every field, by dotted key."""
        return {key: self.query_one(f"#{fid}", Input).value.strip() for fid, key in self.keys.items()}

    def check(self) -> RunConfig | None:
        """Validates the form; marks the offending field and shows the message when it fails."""
        self._flag(None)
        try:
            cfg = candidate(self.config, self.texts())
        except ConfigError as err:
            self._flag(err)
            return None
        return cfg

    def _flag(self, err: ConfigError | None) -> None:
        """Shows ``err`` under its field and below the form (None clears the previous one)."""
        if self.error is not None and self.error.key in self.docs:
            self.query_one(f"#{field_id(self.error.key)}", Input).remove_class("-invalid")
            doc = self.query_one(f"#{field_id(self.error.key)}-doc", Static)
            doc.update(self.docs[self.error.key])
            doc.remove_class("problem")
        self.error = err
        self.query_one("#config-error", Static).update(str(err) if err else "")
        if err is not None and err.key in self.docs:
            self.query_one(f"#{field_id(err.key)}", Input).add_class("-invalid")
            doc = self.query_one(f"#{field_id(err.key)}-doc", Static)
            doc.update(str(err))
            doc.add_class("problem")

    def on_input_changed(self, event: Input.Changed) -> None:
        self.check()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_apply()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "config-apply":
            self.action_apply()
        else:
            self.dismiss(None)

    def action_apply(self) -> None:
        """Closes with the new config, or refuses (bell, focus on the bad field) when invalid."""
        cfg = self.check()
        if cfg is None:
            self.app.bell()
            if self.error is not None and self.error.key in self.docs:
                self.query_one(f"#{field_id(self.error.key)}", Input).focus()
            return
        self.dismiss(cfg)

    def action_cancel(self) -> None:
        self.dismiss(None)
