"""A crowd against the launched app (gradio_client and plain HTTP): API-only callers cannot
lock out a page, uploads need a live session and a type the app reads, every response
carries the CSP that the Space embed allows."""

from __future__ import annotations

import http.client
import re
import threading
import time
import urllib.parse
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

gradio_client = pytest.importorskip("gradio_client")

from app.web import WebApp, serve_in_background  # noqa: E402
from app.web.settings import WebSettings  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
CROWD = 20


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    settings = WebSettings(max_sessions=12, max_api_sessions=6, api_per_client=2, max_upload_mb=1,
                           update_seconds=60)
    app = WebApp.create(settings, root=tmp_path_factory.mktemp("web") / "sessions")
    demo, url = serve_in_background(app)
    yield app, url.rstrip("/")
    demo.close()
    app.close()


def status_of(result) -> str:
    return result[0] if isinstance(result, (list, tuple)) else str(result)


def page_client(url: str):
    """What a browser page does at the protocol level: load the HTML, send its token with every event."""
    with urllib.request.urlopen(url + "/", timeout=60) as r:
        token = re.search(rb'<meta name="nfa-page" content="([^"]+)">', r.read()).group(1).decode()
    client = gradio_client.Client(url, verbose=False, download_files=False, httpx_kwargs={"timeout": 300})
    client.headers.update({"X-NFA-Page": token, "X-NFA-Session": client.session_hash})
    return client


def test_twenty_api_clients_cannot_lock_out_a_page(server):
    app, url = server
    stop, seen = threading.Event(), []

    def api_caller(c) -> None:
        while not stop.is_set():
            seen.append(status_of(c.predict(1, 1, False, api_name="/step")))
        c.close()

    clients = [gradio_client.Client(url, verbose=False, download_files=False, httpx_kwargs={"timeout": 300},
                                    headers={"X-Forwarded-For": f"10.9.{i // 2}.1"})  # two callers per address
               for i in range(CROWD)]
    with ThreadPoolExecutor(CROWD) as pool:
        crowd = [pool.submit(api_caller, c) for c in clients]
        deadline = time.monotonic() + 120
        while len(seen) < 2 * CROWD and time.monotonic() < deadline:
            time.sleep(0.2)
        api_sessions = len(app.store)
        page = page_client(url)
        started = time.monotonic()
        first = status_of(page.predict(5, 1, False, api_name="/step"))
        second = status_of(page.predict(5, 1, False, api_name="/step"))
        page_seconds = time.monotonic() - started
        stop.set()
        for f in crowd:
            f.result(timeout=120)
    busy = sum("busy" in s for s in seen)
    print(f"crowd calls {len(seen)}, refused busy {busy}, API sessions {api_sessions}, "
          f"page's two Step calls {page_seconds:.1f} s")
    assert api_sessions <= 6 and busy > 0  # the crowd filled its share and was refused beyond it
    assert "busy" not in first and "busy" not in second
    assert re.search(r'class="nfa-step">10<', second)
    assert app.store.is_page(page.session_hash) and not app.store.is_page(page.session_hash + "x")
    page.close()


def post_upload(url: str, name: str, data: bytes, session: str | None, length: int | None = None) -> tuple[int, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    if session:
        headers["X-NFA-Session"] = session
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.putrequest("POST", "/gradio_api/upload")
        for key, value in {**headers, "Content-Length": str(len(body))}.items():
            conn.putheader(key, value)
        conn.endheaders()
        try:
            for start in range(0, len(body), 1 << 16):
                conn.send(body[start:start + (1 << 16)])
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server refused early (a body over the cap) and closed: its answer is still there to read
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def test_uploads_need_a_live_session_and_a_type_the_app_reads(server, tmp_path):
    app, url = server
    assert post_upload(url, "x.csv", b"1,2\n", None)[0] == 403
    assert post_upload(url, "x.csv", b"1,2\n", "no-such-session")[0] == 403
    c = page_client(url)
    c.predict(1, 1, False, api_name="/step")
    key = c.session_hash
    code, text = post_upload(url, "evil.html", b"<script>alert(1)</script>", key)
    assert code == 415 and "csv" in text
    assert post_upload(url, "big.csv", b"1," * (600 * 1024), key)[0] == 413  # cap is 1 MiB
    code, text = post_upload(url, "data.csv", b"x,y\n1,2\n", key)
    assert code == 200
    (stored,) = app.store.peek(key).uploads
    assert stored.exists() and stored.read_bytes() == b"x,y\n1,2\n" and str(stored) in text
    assert len(list(stored.parent.parent.glob("*/evil.html"))) == 0  # the refused file was deleted
    app.store.close(key)
    assert not stored.exists()
    assert post_upload(url, "data.csv", b"x,y\n", key)[0] == 403  # session over: no more uploads
    c.close()


def headers_of(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=60) as r:
        return {k.lower(): v for k, v in r.headers.items()}


def test_every_response_has_a_csp_the_space_embed_allows(server):
    _, url = server
    for target in (url + "/", url + "/config", url + "/gradio_api/info"):
        h = headers_of(target)
        csp = dict(p.strip().split(" ", 1) for p in h["content-security-policy"].split(";"))
        assert csp["frame-ancestors"].split() == ["'self'", "https://huggingface.co", "https://*.hf.space"]
        assert csp["default-src"] == "'self'" and csp["connect-src"] == "'self'" and csp["object-src"] == "'none'"
        assert h["x-content-type-options"] == "nosniff" and "x-frame-options" not in h
