"""End to end: the launched app, two sessions at once through gradio_client, and file access."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

gradio_client = pytest.importorskip("gradio_client")

from app.web import WebApp, serve_in_background  # noqa: E402
from app.web.settings import WebSettings  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    settings = WebSettings(max_sessions=6, api_per_client=6, update_seconds=60)  # all callers share 127.0.0.1
    app = WebApp.create(settings, root=tmp_path_factory.mktemp("web") / "sessions")
    demo, url = serve_in_background(app)
    yield app, url, demo
    demo.close()
    app.close()


def client(url: str):
    return gradio_client.Client(url, verbose=False, download_files=False)


def step_of(status_html: str) -> int:
    return int(re.search(r'class="nfa-step">(\d+)<', status_html).group(1))


def steps_of_session(url: str, clicks: list[int]) -> tuple[str, list[int]]:
    """Clicks Step with each count in one new session; returns its hash and the step after each click."""
    c = client(url)
    seen = [step_of(c.predict(n, 1, False, api_name="/step")[0]) for n in clicks]
    return c.session_hash, seen


def test_two_sessions_at_once_do_not_see_each_other(server):
    app, url, _ = server
    with ThreadPoolExecutor(2) as pool:
        a = pool.submit(steps_of_session, url, [30, 30, 30])
        b = pool.submit(steps_of_session, url, [7, 7])
        (key_a, seen_a), (key_b, seen_b) = a.result(timeout=120), b.result(timeout=120)
    assert seen_a == [30, 60, 90] and seen_b == [7, 14]
    assert key_a != key_b
    assert app.store.get(key_a).run.engine.step_count == 90
    assert app.store.get(key_b).run.engine.step_count == 14


def fetch(url: str, path: str) -> int:
    """HTTP status of /gradio_api/file=<path>."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/gradio_api/file={urllib.parse.quote(path)}", timeout=30) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as err:
        return err.code


def test_file_route_serves_only_the_apps_own_outputs(server):
    app, url, _ = server
    c = client(url)
    c.predict(5, 1, False, api_name="/step")
    files = c.predict(1, False, api_name="/export")[-1]  # status, heat, 4 charts, files
    served = [f["url"] if isinstance(f, dict) else f for f in files]
    assert served and all("/gradio_api/file=" in u for u in served)
    with urllib.request.urlopen(served[0], timeout=30) as r:  # this session's own export
        assert r.status == 200 and r.read()
    session_file = next(app.store.get(c.session_hash).folder.rglob("config.json"))
    refused = ["/etc/passwd", str(REPO / "README.md"), "README.md", "../../../../etc/passwd",
               str(session_file), str(app.store.root), "/tmp/gradio/../../etc/passwd",
               str(REPO / "app" / "web" / "server.py")]
    for path in refused:
        assert fetch(url, path) in (403, 404), path


def test_launch_is_public_safe(server):
    app, url, demo = server
    with urllib.request.urlopen(f"{url.rstrip('/')}/config", timeout=30) as r:
        config = json.loads(r.read())
    assert config["analytics_enabled"] is False
    assert config["max_file_size"] == app.settings.max_upload_mb * 2**20
    assert demo.ssr_mode is False and demo.allowed_paths == []
