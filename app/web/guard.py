"""The HTTP guard in front of Gradio: security headers, page tokens, and the upload route.

``Guard`` is an ASGI middleware installed through ``launch(app_kwargs=...)``
(``app.web.server``). For every response it adds a Content-Security-Policy (the page
talks only to its own origin; it may be framed only by itself and by the Hugging Face
Space embed: https://huggingface.co and https://*.hf.space), ``nosniff`` and a referrer
policy. It hands every page load a signed token and tells the session store which
session hashes send events with one (a page that loaded the app: ``PageTokens``). And it guards Gradio's ``POST /gradio_api/upload``, which by itself
takes any file from anyone:

* the request must name a live session in an ``X-NFA-Session`` header (the page's own
  script adds it, ``PAGE_HEAD``; an API caller passes its session hash);
* it must declare a Content-Length under the upload cap (one file plus form overhead);
* every stored file must be a type the app reads (``.csv``, ``.npz``, ``.zip``), or all
  of the request's files are deleted and it gets 415;
* at most ``MAX_UPLOADS`` per session; the files are deleted when the session ends.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from pathlib import Path
from typing import Any

CSP = "; ".join([
    "default-src 'self'",
    "script-src 'self' 'unsafe-inline' 'unsafe-eval'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "font-src 'self' data:",
    "media-src 'self' data: blob:",
    "connect-src 'self'",
    "worker-src 'self' blob:",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'self' https://huggingface.co https://*.hf.space",
])
"""Gradio's page needs inline scripts and styles (its config, the event ``js`` snippets);
everything else comes from the app's own origin."""

SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
]
ALLOWED_UPLOADS = (".csv", ".npz", ".zip")
"""What the app reads: data files (CSV, NPZ) and saved runs (zip)."""
MAX_UPLOADS = 20
"""Uploads one session may make (each is at most the upload cap)."""
FORM_OVERHEAD = 64 * 1024
"""Bytes of multipart framing allowed on top of the file itself."""
SESSION_HEADER = b"x-nfa-session"
PAGE_HEADER = b"x-nfa-page"
TOKEN_SECONDS = 24 * 3600
"""How long a page's token marks its events as a page's (a tab left open for a day still counts)."""

PAGE_HEAD = r"""<script>
(() => {
  const send = window.fetch.bind(window);
  const meta = () => document.querySelector('meta[name="nfa-page"]');
  let hash = "";
  const withHeader = (input, init, name, value) => {
    if (input instanceof Request) {
      const headers = new Headers(input.headers);
      headers.set(name, value);
      return [new Request(input, { headers }), init];
    }
    const headers = new Headers((init && init.headers) || {});
    headers.set(name, value);
    return [input, Object.assign({}, init || {}, { headers })];
  };
  window.fetch = (input, init) => {
    const url = input instanceof Request ? input.url : String(input);
    const beat = url.match(/\/gradio_api\/heartbeat\/([^/?#]+)/);
    if (beat) hash = beat[1];
    if (url.includes("/gradio_api/queue/join") && init && typeof init.body === "string") {
      try { hash = JSON.parse(init.body).session_hash || hash; } catch (e) { /* not JSON */ }
      if (meta()) [input, init] = withHeader(input, init, "X-NFA-Page", meta().content);
    }
    if (hash && (url.includes("/gradio_api/upload") || url.includes("/gradio_api/queue/join"))) {
      [input, init] = withHeader(input, init, "X-NFA-Session", hash);
    }
    return send(input, init);
  };
})();
</script>"""
"""The page's own requests: its token and session hash on its events, its session hash on its uploads."""


class PageTokens:
    """Signed tokens handed out with the page's HTML; each marks one session hash only."""

    def __init__(self, clock=time.time) -> None:
        self._secret = secrets.token_bytes(32)
        self._clock = clock
        self._bound: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def issue(self) -> str:
        stamp = f"{int(self._clock()):x}"
        return f"{stamp}.{self._sign(stamp)}"

    def _sign(self, stamp: str) -> str:
        return hmac.new(self._secret, stamp.encode(), hashlib.sha256).hexdigest()[:32]

    def check(self, token: str, key: str) -> bool:
        """True if ``token`` was issued here, is fresh, and is unused or already bound to ``key``."""
        stamp, _, sig = token.partition(".")
        try:
            issued = int(stamp, 16)
        except ValueError:
            return False
        now = self._clock()
        if not hmac.compare_digest(sig, self._sign(stamp)) or not 0 <= now - issued <= TOKEN_SECONDS:
            return False
        with self._lock:
            if len(self._bound) > 10_000:
                self._bound = {t: b for t, b in self._bound.items() if now - b[1] <= TOKEN_SECONDS}
            owner = self._bound.setdefault(token, (key, now))[0]
        return owner == key

_JOIN = re.compile(r"/gradio_api/queue/join/?$")
_UPLOAD = re.compile(r"/gradio_api/upload/?$")


class Guard:
    """ASGI middleware: ``Guard(app, store=SessionStore, max_upload_bytes=int)``."""

    def __init__(self, app: Any, store: Any, max_upload_bytes: int):
        self.app, self.store, self.max_upload_bytes = app, store, max_upload_bytes
        self.tokens = PageTokens()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        send = _with_headers(send)
        path, method = scope.get("path", ""), scope.get("method", "GET")
        if _JOIN.search(path) and method == "POST":
            self._mark_page(scope)
        if _UPLOAD.search(path) and method == "POST":
            return await self._upload(scope, receive, send)
        if path in ("", "/") and method == "GET":
            return await self._page(scope, receive, send)
        return await self.app(scope, receive, send)

    async def _page(self, scope: dict, receive: Any, send: Any) -> None:
        """The app's HTML, with a fresh page token in a <meta> tag."""
        answer = _Captured()
        await self.app(scope, receive, answer.send)
        headers = dict(answer.start["headers"]) if answer.start else {}
        if (answer.status != 200 or not headers.get(b"content-type", b"").startswith(b"text/html")
                or b"content-encoding" in headers):
            return await answer.replay(send)
        meta = f'<meta name="nfa-page" content="{self.tokens.issue()}">'.encode()
        body = answer.body.replace(b"</head>", meta + b"</head>", 1)
        start = {**answer.start, "headers": [(n, str(len(body)).encode() if n == b"content-length" else v)
                                             for n, v in answer.start["headers"]]}
        await send(start)
        await send({"type": "http.response.body", "body": body})

    def _mark_page(self, scope: dict) -> None:
        """An event that carries a valid page token marks its session as a page's."""
        headers = dict(scope.get("headers") or [])
        token = headers.get(PAGE_HEADER, b"").decode("latin-1")
        key = headers.get(SESSION_HEADER, b"").decode("latin-1").strip()
        if token and key and self.tokens.check(token, key):
            self.store.mark_page(key)

    async def _upload(self, scope: dict, receive: Any, send: Any) -> None:
        headers = dict(scope.get("headers") or [])
        key = headers.get(SESSION_HEADER, b"").decode("latin-1").strip()
        session = self.store.peek(key) if key else None
        if session is None:
            return await _reply(send, 403, "uploads need a live session: open the page first "
                                           "(API callers: send your session hash in X-NFA-Session)")
        if len(session.uploads) >= MAX_UPLOADS:
            return await _reply(send, 429, f"this session has made its {MAX_UPLOADS} uploads")
        length = headers.get(b"content-length", b"").decode("latin-1")
        if not length.isdigit():
            return await _reply(send, 411, "uploads must declare their Content-Length")
        if int(length) > self.max_upload_bytes + FORM_OVERHEAD:
            return await _reply(send, 413, f"uploads are limited to {self.max_upload_bytes // 2**20} MiB")
        answer = _Captured()
        await self.app(scope, receive, answer.send)
        await self._check_stored(key, answer, send)

    async def _check_stored(self, key: str, answer: "_Captured", send: Any) -> None:
        """Keeps the stored files of a good upload (for deletion with the session); deletes a bad one's."""
        if answer.status != 200:
            return await answer.replay(send)
        try:
            paths = [Path(p) for p in json.loads(answer.body)]
        except (ValueError, TypeError):
            return await answer.replay(send)
        if not all(p.suffix.lower() in ALLOWED_UPLOADS for p in paths):
            _delete(paths)
            return await _reply(send, 415, "this app reads only " + ", ".join(ALLOWED_UPLOADS) + " files")
        if not self.store.add_upload(key, paths):
            _delete(paths)
            return await _reply(send, 403, "the session ended during the upload")
        await answer.replay(send)


class _Captured:
    """An ASGI response held back until it has been checked."""

    def __init__(self) -> None:
        self.start: dict | None = None
        self.chunks: list[bytes] = []

    async def send(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            self.start = message
        elif message["type"] == "http.response.body":
            self.chunks.append(message.get("body", b""))

    @property
    def status(self) -> int:
        return self.start["status"] if self.start else 500

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    async def replay(self, send: Any) -> None:
        await send(self.start)
        await send({"type": "http.response.body", "body": self.body})


def _with_headers(send: Any) -> Any:
    async def sender(message: dict) -> None:
        if message["type"] == "http.response.start":
            names = {name.lower() for name, _ in message.get("headers", [])}
            extra = [(n, v) for n, v in SECURITY_HEADERS if n not in names]
            message = {**message, "headers": list(message.get("headers", [])) + extra}
        await send(message)

    return sender


async def _reply(send: Any, status: int, text: str) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _delete(paths: list[Path]) -> None:
    for path in paths:
        try:
            path.unlink(missing_ok=True)
            path.parent.rmdir()
        except OSError:
            pass
