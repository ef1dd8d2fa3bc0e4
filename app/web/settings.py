"""Deployment settings of the web app, read once from environment variables.

Every cap has a default safe for a small public Space (2 CPU cores). A deployment
tightens or loosens them without touching the code:

| variable | default | meaning |
|---|---|---|
| ``NFA_MAX_WIDTH`` ``NFA_MAX_DEPTH`` | 512, 6 | network size per session (``core.config.Limits``) |
| ``NFA_MAX_N`` ``NFA_MAX_D`` ``NFA_MAX_POINTS`` | 20000, 256, 2000 | data and measurement sizes |
| ``NFA_MAX_STEPS`` | 200000 | steps per session (run length and total) |
| ``NFA_WEB_MAX_SESSIONS`` | 12 | browser sessions holding an engine at once |
| ``NFA_WEB_SESSION_TTL`` | 1800 | seconds an idle page session keeps its engine |
| ``NFA_WEB_API_TTL`` | 180 | seconds an idle API-only session (no page) keeps its engine |
| ``NFA_WEB_API_SESSIONS`` | 6 | API-only sessions at once (at most half the slots by default) |
| ``NFA_WEB_API_PER_CLIENT`` | 2 | API-only sessions of one client address |
| ``NFA_WEB_PAGE_RECLAIM`` | 600 | seconds idle after which a page's slot may go to a newcomer when full |
| ``NFA_WEB_QUEUE_SIZE`` | 64 | events waiting in Gradio's queue |
| ``NFA_WEB_CONCURRENCY`` | 2 | training events running at once |
| ``NFA_WEB_CLIENT_CONCURRENCY`` | 1 | training events of one client running at once |
| ``NFA_WEB_WORKERS`` | 8 | events Gradio runs at once (they wait for training turns inside) |
| ``NFA_WEB_MAX_UPLOAD_MB`` | 32 | size of one uploaded file |
| ``NFA_WEB_MAX_UNZIP_MB`` | 64 | total unpacked size of a loaded run |
| ``NFA_WEB_UPDATE_MS`` | 1000 | training time one update may take (it does fewer steps past that) |
| ``NFA_README_URL`` | ``#readme`` | where "README" links point (the in-page copy by default) |
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

from core.config import ConfigError, Limits

WEB_LIMITS = Limits(max_width=512, max_depth=6, max_n=20_000, max_steps=200_000, max_d=256, max_points=2000)
"""Tighter size caps than the core's, for a public deployment; ``NFA_MAX_*`` overrides each."""


def web_limits(environ: dict[str, str] | None = None) -> Limits:
    """``WEB_LIMITS`` with every ``NFA_MAX_*`` variable that is set taking precedence."""
    env = os.environ if environ is None else environ
    values = {}
    for f in dataclasses.fields(Limits):
        name = "NFA_" + f.name.upper()
        values[f.name] = _int_env(env, name, getattr(WEB_LIMITS, f.name))
    return Limits(**values)


def _int_env(env, name: str, default: int, lo: int = 1) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, f"must be an integer, got {raw!r}") from None
    if value < lo:
        raise ConfigError(name, f"must be at least {lo}, got {value}")
    return value


@dataclass(frozen=True)
class WebSettings:
    """Caps and knobs of one web deployment (immutable; ``from_env`` reads the environment)."""

    limits: Limits = field(default_factory=lambda: WEB_LIMITS)
    """Per-session sizes: width, depth, n, d, measurement points and total steps."""
    max_sessions: int = 12
    """Sessions holding an engine at once; further visitors are told to come back later."""
    session_ttl: float = 1800.0
    """Seconds of inactivity after which a page session's engine and files are released."""
    api_ttl: float = 180.0
    """The same for an API-only session (a caller that never opened the page)."""
    max_api_sessions: int = 6
    """API-only sessions at once; the other slots stay for pages."""
    api_per_client: int = 2
    """API-only sessions one client address may hold."""
    page_reclaim: float = 600.0
    """Seconds idle after which a page session's slot may go to a newcomer when all are taken."""
    client_concurrency: int = 1
    """Training events one client (a page, or an API caller's address) runs at once."""
    workers: int = 8
    """Events Gradio runs at once; training inside them waits for ``concurrency`` turns, fairly."""
    queue_size: int = 64
    """Events waiting in Gradio's queue before new ones are refused."""
    concurrency: int = 2
    """Training events (ticks, steps, resets) running at once across all sessions."""
    max_upload_mb: int = 32
    """Largest uploaded file (CSV, NPZ or zipped run), in MiB."""
    max_unzip_mb: int = 64
    """Largest total unpacked size of a zipped run, in MiB."""
    readme_url: str = "#readme"
    """Target of the README links in the explanations."""
    max_steps_per_update: int = 200
    """Upper end of the steps-per-update control."""
    update_seconds: float = 1.0
    """Training time one update (tick or Step click) may take; it does fewer steps past that."""

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "WebSettings":
        """Settings from ``NFA_*`` environment variables (see the module docstring)."""
        env = os.environ if environ is None else environ
        return cls(
            limits=web_limits(env),
            max_sessions=_int_env(env, "NFA_WEB_MAX_SESSIONS", cls.max_sessions),
            session_ttl=float(_int_env(env, "NFA_WEB_SESSION_TTL", int(cls.session_ttl))),
            api_ttl=float(_int_env(env, "NFA_WEB_API_TTL", int(cls.api_ttl))),
            max_api_sessions=_int_env(env, "NFA_WEB_API_SESSIONS", cls.max_api_sessions),
            api_per_client=_int_env(env, "NFA_WEB_API_PER_CLIENT", cls.api_per_client),
            page_reclaim=float(_int_env(env, "NFA_WEB_PAGE_RECLAIM", int(cls.page_reclaim))),
            client_concurrency=_int_env(env, "NFA_WEB_CLIENT_CONCURRENCY", cls.client_concurrency),
            workers=_int_env(env, "NFA_WEB_WORKERS", cls.workers),
            queue_size=_int_env(env, "NFA_WEB_QUEUE_SIZE", cls.queue_size),
            concurrency=_int_env(env, "NFA_WEB_CONCURRENCY", cls.concurrency),
            max_upload_mb=_int_env(env, "NFA_WEB_MAX_UPLOAD_MB", cls.max_upload_mb),
            max_unzip_mb=_int_env(env, "NFA_WEB_MAX_UNZIP_MB", cls.max_unzip_mb),
            readme_url=env.get("NFA_README_URL", cls.readme_url) or cls.readme_url,
            update_seconds=_int_env(env, "NFA_WEB_UPDATE_MS", int(cls.update_seconds * 1000)) / 1000,
        )
