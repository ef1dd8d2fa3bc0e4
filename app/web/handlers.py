"""Event handlers of the web app, as plain functions the tests call directly.

Every handler takes the ``WebApp`` (settings and session store of one demo), the
visitor's session key (Gradio's session hash) and the event's input values, and
returns a dict of named outputs: ``status``, ``heat``, ``curves`` (HTML), ``timer``
(a ``gr.Timer`` update), ``form`` (values in ``FORM_KEYS`` order), ``preset``,
``layer``, ``share`` (the URL query), ``files``, ``compare_button``, and ``warning``
(a message the page shows as a toast). ``app.web.layout`` maps the names to components.
User errors never raise: ``guarded`` turns them into a warning and a status line.
"""

from __future__ import annotations

import functools
import itertools
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import gradio as gr

from app.web import form as form_lib
from app.web.panels import chart_outputs, compare_heatmap_panel, heatmap_panel, notice, status_line
from app.web.fair import BusyError, TrainingGate, client_of, trains
from app.web.sessions import CapacityError, Run, Session, SessionStore
from app.web.settings import WebSettings
from app.web.views import SCALE, WINDOW, View, view_of
from core.arms import make_arms
from core.config import ConfigError, RunConfig, default_config, preset_config
from core.engine import Engine

LOG = logging.getLogger("nfa.web")
START_HINT = ("Press ▶ Play. Then switch SLO on (SLO tab) and watch layer 1's UC-NFA climb, "
              "or press ⇆ Compare to see baseline, control and SLO side by side.")
COMPARE_START, COMPARE_STOP = "⇆ Compare baseline, control, SLO", "■ Stop comparing"


@dataclass
class WebApp:
    """What one demo's handlers share: settings, the session store (with its folder), the training gate."""

    settings: WebSettings
    store: SessionStore
    gate: TrainingGate

    @classmethod
    def create(cls, settings: WebSettings | None = None, root: Path | None = None) -> "WebApp":
        """A fresh app; session folders live under ``root`` (a new temp folder by default)."""
        s = settings or WebSettings.from_env()
        root = Path(root) if root else Path(tempfile.mkdtemp(prefix="nfa-web-"))
        store = SessionStore(root, s.max_sessions, s.session_ttl, api_ttl=s.api_ttl,
                             max_api=min(s.max_api_sessions, s.max_sessions), api_per_client=s.api_per_client,
                             page_reclaim=s.page_reclaim)
        return cls(s, store, TrainingGate(s.concurrency, s.client_concurrency))

    def close(self) -> None:
        self.store.close_all()

    @property
    def limits(self):
        return self.settings.limits


def guarded(fn: Callable[..., dict]) -> Callable[..., dict]:
    """User errors become a warning and a status line; bugs are logged, shown briefly, never raised.

    The wrapped handler's first two arguments are the app and the session key.
    """

    @functools.wraps(fn)
    def wrapper(app: WebApp, key: str, *args, **kwargs) -> dict:
        try:
            return fn(app, key, *args, **kwargs)
        except ConfigError as err:
            return _problem(app, key, str(err), stop=False)
        except CapacityError as err:
            return _problem(app, key, f"The server is busy: {err}. Please try again in a few minutes.", stop=True)
        except BusyError as err:
            return _problem(app, key, f"Refused: {err}; try again in a moment.", stop=False)
        except Exception as err:  # noqa: BLE001 - the server must keep serving other sessions
            LOG.exception("web handler %s failed", fn.__name__)
            return _problem(app, key, f"Something went wrong ({type(err).__name__}); it was logged. Try Reset.",
                            stop=True)

    return wrapper


def _problem(app: WebApp, key: str, message: str, stop: bool) -> dict:
    """The warning, the run's status line with the message under it, and (after a bug) a stopped timer."""
    session = app.store.get(key)
    status = ""
    if session is not None and session.runs():
        if stop:
            session.playing = False
        try:
            status = _status(session, [r.engine.snapshot() for r in session.runs()])
        except Exception:  # noqa: BLE001 - the message matters more than the line above it
            LOG.exception("status line after an error failed")
    out = {"warning": message, "status": status + notice(message, "error")}
    return {**out, "timer": gr.Timer(active=False)} if stop else out


def session_of(app: WebApp, key: str) -> Session:
    """The visitor's session; one that expired (or never loaded the page) starts over at the default setup."""
    session = app.store.get(key)
    if session is not None and session.runs():
        return session
    cfg = default_config()
    session = app.store.open(key, cfg, client_of(key))
    with session.lock:
        if not session.runs():
            session.run = Run(Engine(cfg))
            session.revived = True
    return session


def paused_timer() -> gr.Timer:
    return gr.Timer(active=False)


# -- views -------------------------------------------------------------------------------

def _status(session: Session, snaps: list) -> str:
    mark = session.pause_mark  # read before ``playing``: Pause writes them in the other order
    runs = session.runs()
    labels = [r.arm.name for r in runs if r.arm is not None]
    return status_line(snaps, session.playing, runs[0].engine.config.steps, labels, mark)


def render(session: Session, view: View, note: str = "", kind: str = "info") -> dict:
    """Status, heatmaps and curves of the session's run(s), all from one snapshot per run."""
    pending = ""
    if session.pending:
        pending = notice("Waiting for Reset: " + ", ".join(session.pending) + ". Press ↺ Reset to apply.", "pending")
    if session.revived:
        session.revived = False
        note = "This session was idle and released: a fresh default run started. Reload the page to reset the form."
        kind = "pending"
    extra = notice(note, kind) + pending
    runs = session.runs()
    snaps = [r.snapshot() for r in runs]
    heat = compare_heatmap_panel(runs, snaps, view) if session.compare is not None else heatmap_panel(snaps[0], view)
    return {"status": _status(session, snaps) + extra, "heat": heat, "curves": chart_outputs(runs, snaps, view)}


def arm_runs(cfg: RunConfig) -> tuple[Run, ...]:
    """One fresh run per arm of the comparison (same seed: same start, same batches)."""
    return tuple(Run(Engine(arm.config), arm=arm) for arm in make_arms(cfg))


def layer_update(session: Session, layer: int) -> gr.Radio:
    depth = session.runs()[0].engine.config.model.depth
    return gr.Radio(choices=[(str(i), i) for i in range(1, depth + 1)], value=min(max(int(layer or 1), 1), depth))


def setup_outputs(session: Session, cfg: RunConfig, preset: str | None = None) -> dict:
    preset = preset or form_lib.preset_of(cfg)
    return {"form": form_lib.form_values(cfg), "preset": preset, "share": form_lib.to_query(cfg, preset)}


# -- page load and unload ----------------------------------------------------------------

@guarded
@trains
def load_page(app: WebApp, key: str, params: dict[str, str] | None = None) -> dict:
    """A new visitor: the setup from the URL (or the quickstart preset) and its run at step 0."""
    params, ignored = form_lib.known_params(dict(params or {}))
    cfg, preset, problems = form_lib.from_query(params, app.limits)
    if "steps" not in params:
        cfg.steps = app.limits.max_steps
    session = app.store.open(key, cfg, client_of(key))
    with session.lock:
        session.base = cfg
        session.run = Run(Engine(cfg))
        session.compare, session.playing, session.pending = None, False, ()
        note = "; ".join(problems) if problems else START_HINT
        if ignored:
            note += " (not settings, left alone: " + ", ".join(ignored) + ")"
        out = render(session, View(), note, "error" if problems else "info")
        out.update(setup_outputs(session, cfg, preset), layer=layer_update(session, 1), timer=paused_timer(),
                   compare_button=gr.Button(value=COMPARE_START))
    if problems:
        out["warning"] = "Some link settings were ignored: " + "; ".join(problems)
    return out


def unload(app: WebApp, key: str) -> None:
    """The tab closed: release the session's engine and files."""
    app.store.close(key)


# -- run control -------------------------------------------------------------------------

def _advance(app: WebApp, session: Session, steps: int, stop_at_length: bool,
             while_playing: bool = False) -> tuple[str, bool]:
    """Trains every run of the session up to ``steps`` steps; returns (a note, whether playing must stop).

    The first run trains until the steps are done or the update's time budget is spent (so a
    huge setup cannot hold a worker for long), or, ``while_playing``, until Pause; the other
    run (when comparing) follows it exactly.
    """
    lead = session.runs()[0].engine
    cap = app.limits.max_steps - lead.step_count
    if stop_at_length:
        cap = min(cap, lead.config.steps - lead.step_count)
    todo = max(0, min(int(steps), cap))
    deadline, calls = time.monotonic() + app.settings.update_seconds, itertools.count()

    def should_stop() -> bool:
        if while_playing and not session.playing:
            return True
        return next(calls) > 0 and time.monotonic() > deadline

    done = lead.step(todo, should_stop=should_stop)
    for run in session.runs()[1:]:
        run.engine.step(done)
    if any(r.engine.status != "running" for r in session.runs()):
        return "", True
    if lead.step_count >= app.limits.max_steps:
        return f"this session's cap of {app.limits.max_steps} steps is reached; press Reset to start over", True
    if stop_at_length and lead.step_count >= lead.config.steps:
        return f"finished the run length ({lead.config.steps} steps); raise it in Setup or press Step to go on", True
    if done < todo and not (while_playing and not session.playing):
        return (f"{done} of {todo} steps fitted in this update's {app.settings.update_seconds:g} s; "
                "fewer steps per update keep it smooth"), False
    return "", False


@guarded
@trains(quiet=True)
def tick(app: WebApp, key: str, steps: int, layer: int, centered: bool, window: str = WINDOW,
         scale: str = SCALE) -> dict:
    """One timer tick while playing: ``steps`` steps, a measurement, all pictures.

    Pause (``session.playing`` cleared without waiting for the lock) stops the steps early;
    a tick that finds the session paused only re-renders it as paused.
    """
    session = session_of(app, key)
    with session.lock:
        view = view_of(layer, centered, window, scale)
        if not session.playing:
            return {**render(session, view), "timer": paused_timer()}
        note, stop = _advance(app, session, steps, stop_at_length=True, while_playing=True)
        if stop:
            session.playing = False
        out = render(session, view, note, "info" if stop else "pending")
        return {**out, "timer": paused_timer()} if not session.playing else out


@guarded
@trains
def play(app: WebApp, key: str, layer: int = 1, centered: bool = False,
         window: str = WINDOW, scale: str = SCALE) -> dict:
    """Starts the timer (unless the run diverged or reached its length)."""
    session = session_of(app, key)
    with session.lock:
        lead = session.runs()[0].engine
        if any(r.engine.status != "running" for r in session.runs()):
            return {**render(session, view_of(layer, centered, window, scale)), "timer": paused_timer(),
                    "warning": "The run stopped (it diverged, or a whole layer died): change the setting "
                               "the status line names, then press Reset."}
        if lead.step_count >= lead.config.steps:
            msg = f"The run reached its length ({lead.config.steps} steps): raise 'run length' in Setup, or press Step."
            return {**render(session, view_of(layer, centered, window, scale)), "timer": paused_timer(), "warning": msg}
        session.playing = True
        return {**render(session, view_of(layer, centered, window, scale)), "timer": gr.Timer(active=True)}


def _status_now(session: Session) -> str:
    """The status line of the session's current snapshot (the one its last update drew: nothing trained since)."""
    return _status(session, [r.engine.snapshot() for r in session.runs()])


@guarded
def pause(app: WebApp, key: str, layer: int = 1, centered: bool = False,
          window: str = WINDOW, scale: str = SCALE) -> dict:
    """Stops the timer at once (a running tick ends at its next step); the run keeps its state.

    Pause takes no training turn and redraws no picture (the last update drew this very
    snapshot): it clears ``playing`` before waiting for the session's lock, then sends the status.
    """
    session = app.store.get(key)
    if session is None or not session.runs():
        return {"timer": paused_timer()}
    session.playing = False
    session.pause_mark = time.time_ns()  # after ``playing``: a line with this mark never says running
    with session.lock:
        session.playing = False
        return {"status": _status_now(session), "timer": paused_timer()}


@guarded
def sync_status(app: WebApp, key: str) -> dict:
    """The status line and timer as they are now (after Pause: overwrites a tick's answer that arrived late)."""
    session = app.store.get(key)
    if session is None or not session.runs():
        return {"timer": paused_timer()}
    with session.lock:
        return {"status": _status_now(session), "timer": gr.Timer(active=session.playing)}


def _clicks(session: Session, total: int | None) -> int:
    """How many Step clicks this event carries: the page sends its running total (0 or None: one click)."""
    total = int(total or 0)
    if total <= 0:
        return 1
    new = total - session.clicks
    session.clicks = max(session.clicks, total)
    return new


@guarded
@trains
def step(app: WebApp, key: str, steps: int, layer: int, centered: bool, clicks: int | None = None,
         window: str = WINDOW, scale: str = SCALE) -> dict:
    """Step clicks: ``steps`` steps per click (past the run length too), a measurement and all pictures.

    The page counts every click and sends the running total, so clicks made while an update
    ran are done by the next one (a total already counted does nothing).
    """
    session = session_of(app, key)
    with session.lock:
        n = _clicks(session, clicks)
        if n <= 0:
            return {}
        note, _ = _advance(app, session, int(steps) * n, stop_at_length=False)
        if n > 1:
            note = f"{n} Step clicks: {n} × {int(steps)} steps. " + note
        return render(session, view_of(layer, centered, window, scale), note,
                      "pending" if "fitted" in note else "info")


@guarded
def show(app: WebApp, key: str, layer: int, centered: bool, window: str = WINDOW,
         scale: str = SCALE) -> dict:
    """Re-renders for another layer or the centered switch (no training)."""
    session = session_of(app, key)
    with session.lock:
        return render(session, view_of(layer, centered, window, scale))


def _form_config(app: WebApp, session: Session, values: Sequence[Any]) -> RunConfig:
    return form_lib.config_from_form(session.base, values, app.limits, session.data_file)


@guarded
@trains
def reset(app: WebApp, key: str, values: Sequence[Any], layer: int = 1, centered: bool = False,
          window: str = WINDOW, scale: str = SCALE) -> dict:
    """A new network from the form's setup (both runs again when comparing); paused at step 0."""
    session = session_of(app, key)
    with session.lock:
        cfg = _form_config(app, session, values)
        if session.compare is not None:
            session.compare = arm_runs(cfg)
        else:
            session.run = Run(Engine(cfg))
        session.playing, session.pending = False, ()
        out = render(session, view_of(layer, centered, window, scale), f"new run: {session.runs()[0].engine.dataset.description}")
        out.update(layer=layer_update(session, layer), timer=paused_timer(),
                   share=form_lib.to_query(cfg, form_lib.preset_of(session.base)))
        return out


def _apply_live(session: Session, cfg: RunConfig) -> tuple[str, ...]:
    if session.compare is not None:
        arms = make_arms(cfg)
        if [a.name for a in arms] != [r.arm.name for r in session.compare]:
            return ("optim.slo.boost",)  # the control arm comes or goes: a new comparison on Reset
        pending = [r.engine.configure(a.config) for r, a in zip(session.compare, arms)][0]
        return tuple(k for k in pending if k not in ("optim.slo.enabled", "optim.slo.boost"))
    return tuple(session.run.engine.configure(cfg))


@guarded
def change_settings(app: WebApp, key: str, values: Sequence[Any], layer: int = 1, centered: bool = False,
        window: str = WINDOW, scale: str = SCALE) -> dict:
    """A form value changed: live settings (optimiser, SLO, measurement) apply now, the rest on Reset."""
    session = session_of(app, key)
    with session.lock:
        kind = values[form_lib.FORM_KEYS.index("data.kind")]
        if kind == "file" and not session.data_file:
            note = "Data set file: upload a CSV or NPZ below, then press ↺ Reset to train on it."
            return render(session, view_of(layer, centered, window, scale), note)
        cfg = _form_config(app, session, values)
        session.pending = _apply_live(session, cfg)
        out = render(session, view_of(layer, centered, window, scale))
        out["share"] = form_lib.to_query(cfg, form_lib.preset_of(session.base))
        return out


@guarded
def choose_preset(app: WebApp, key: str, preset: str, layer: int = 1, centered: bool = False,
        window: str = WINDOW, scale: str = SCALE) -> dict:
    """Fills the form with a preset; its network starts on Reset."""
    session = session_of(app, key)
    with session.lock:
        cfg = preset_config(preset, app.limits)
        cfg.steps = app.limits.max_steps
        session.base = cfg
        session.pending = tuple(k for k in _apply_live(session, cfg))
        out = render(session, view_of(layer, centered, window, scale))
        out.update(setup_outputs(session, cfg, preset))
        return out


@guarded
@trains
def toggle_compare(app: WebApp, key: str, values: Sequence[Any], layer: int = 1, centered: bool = False,
                   window: str = WINDOW, scale: str = SCALE) -> dict:
    """Starts one run per arm (baseline, control, SLO) from the same weights and batches, or returns to the single run."""
    session = session_of(app, key)
    with session.lock:
        session.playing = False
        if session.compare is not None:
            session.compare = None
            out = render(session, view_of(layer, centered, window, scale), "back to the single run")
            return {**out, "timer": paused_timer(), "compare_button": gr.Button(value=COMPARE_START),
                    "layer": layer_update(session, layer)}
        cfg = _form_config(app, session, values)
        session.compare = arm_runs(cfg)
        session.pending = ()
        session.playing = True
        note = ("comparing from step 0: same initial weights and batches; only the update rule differs "
                "(▮▮ Pause to stop).")
        out = render(session, view_of(layer, centered, window, scale), note)
        return {**out, "timer": gr.Timer(active=True), "compare_button": gr.Button(value=COMPARE_STOP),
                "layer": layer_update(session, layer)}

