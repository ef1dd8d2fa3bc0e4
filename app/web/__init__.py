"""The Gradio web app: ``build_demo()`` makes the page, ``main()`` serves it.

One engine per browser session (``app.web.sessions``); event handlers are plain
functions (``app.web.handlers``, ``app.web.exports``) wired to the page in
``app.web.layout``; pictures are rendered straight from arrays (``app.web.views``,
``app.web.panels``; the curves are plotly charts, ``app.web.charts``). Caps come from environment variables
(``app.web.settings``).
"""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# Gradio's queue keeps a record of every event (about 330 bytes) for its monitoring dashboard,
# which this app never enables, up to 10,000 of them: 3.3 MB of server memory after an hour of
# one page playing (traced with tracemalloc, 7 Dec). A short tail is kept instead.
os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", "256")

from app.web.handlers import WebApp  # noqa: E402
from app.web.layout import build_demo  # noqa: E402
from app.web.server import launch_kwargs, main, queued, serve_in_background  # noqa: E402

__all__ = ["WebApp", "build_demo", "launch_kwargs", "main", "queued", "serve_in_background"]
