"""The Textual terminal app: ``python -m app.cli tui [--config F]``.

``make_app(cfg)`` builds the app (CLI and tests share it); ``main(cfg)`` runs it and
returns the exit status.
"""

from __future__ import annotations

from core.config import RunConfig


def make_app(cfg: RunConfig, engine=None):
    """The NfaApp on a new engine for ``cfg`` (or on ``engine``)."""
    from app.tui.app import make_app as _make_app

    return _make_app(cfg, engine)


def main(cfg: RunConfig) -> int:
    """Builds the engine (a bad config or data file raises ConfigError for the CLI), runs the app."""
    from app.tui.app import run

    return run(cfg)
