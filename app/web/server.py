"""Serving the page: queue, caps and the launch options a public deployment needs."""

from __future__ import annotations

import logging
import signal
import socket
import sys
from typing import Any

import gradio as gr
from starlette.middleware import Middleware

from app.web import texts
from app.web.control import CLICKS_HEAD
from app.web.guard import PAGE_HEAD, Guard
from app.web.handlers import WebApp
from app.web.layout import build_demo
from app.web.sessions import tune_malloc
from app.web.settings import WebSettings

GRADIO_STATES = 500
"""Session hashes Gradio keeps per-session component state for (its default: 10,000, at about
170 KiB each for this page). The app drops the state of pages that unloaded and of API
sessions it released (``layout.forget_gradio_state``); this caps the rest (callers that
were refused a session, pages swept after their time-out), oldest out first."""


def theme() -> gr.themes.Theme:
    """Soft, indigo, and system fonts only: the page makes no request to a font server."""
    system = ["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial",
              "sans-serif"]
    mono = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]
    return gr.themes.Default(primary_hue="indigo", secondary_hue="slate", neutral_hue="slate", radius_size="sm",
                             font=system, font_mono=mono)


def launch_kwargs(settings: WebSettings, app: WebApp | None = None) -> dict[str, Any]:
    """``launch()`` options: no SSR, nothing served beyond Gradio's own cache, upload cap, page style.

    ``allowed_paths`` stays empty: the app's outputs reach visitors only as Gradio's cached
    copies (unguessable URLs); its session folders and the repository are never served.
    Gradio's per-session state is kept for at most ``GRADIO_STATES`` session hashes.
    With ``app``, its ``Guard`` (security headers, page tokens, upload checks) wraps Gradio.
    """
    extra: dict[str, Any] = {}
    if app is not None:
        guard = Middleware(Guard, store=app.store, max_upload_bytes=settings.max_upload_mb * 2**20)
        extra = dict(app_kwargs={"middleware": [guard]}, head=CLICKS_HEAD + PAGE_HEAD)
    return dict(
        **extra,
        ssr_mode=False,
        allowed_paths=[],
        max_file_size=f"{settings.max_upload_mb}mb",
        show_error=False,
        enable_monitoring=False,
        state_session_capacity=GRADIO_STATES,
        mcp_server=False,
        pwa=False,
        css=texts.CSS,
        theme=theme(),
    )


def queued(demo: gr.Blocks, settings: WebSettings) -> gr.Blocks:
    """The queue with the deployment's caps.

    Gradio runs ``workers`` events at once; the training inside them takes turns in the
    app's ``TrainingGate`` (``concurrency`` at once, ``client_concurrency`` per client).
    """
    return demo.queue(max_size=settings.queue_size, default_concurrency_limit=settings.workers)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def serve_in_background(app: WebApp, host: str = "127.0.0.1", port: int | None = None) -> tuple[gr.Blocks, str]:
    """Launches the page without blocking (tests, screenshots); returns the demo and its URL.

    Close with ``demo.close()`` and ``app.close()``.
    """
    demo = queued(build_demo(app), app.settings)
    demo.launch(server_name=host, server_port=port or free_port(host), prevent_thread_lock=True, quiet=True,
                **launch_kwargs(app.settings, app))
    return demo, demo.local_url


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(host: str = "127.0.0.1", port: int = 7860) -> int:
    """``python -m app.cli web``: serves until interrupted (Ctrl+C or SIGTERM); returns the exit status.

    Session folders are removed on the way out.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own start-up probes
    signal.signal(signal.SIGTERM, _interrupt)
    tune_malloc()
    settings = WebSettings.from_env()
    app = WebApp.create(settings)
    try:
        demo = queued(build_demo(app), settings)
        print(f"NFA Explorer on http://{host}:{port} (sessions: at most {settings.max_sessions}, "
              f"idle timeout {settings.session_ttl:.0f} s)", flush=True)
        demo.launch(server_name=host, server_port=port, **launch_kwargs(settings, app))
    except OSError as err:  # port taken, host not resolvable: a user error, one line
        print(f"error: --host/--port: cannot serve on {host}:{port}: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    finally:
        app.close()
    return 0
