"""Fair sharing of the web app, without a server: session kinds and reclaiming, the training
gate, page tokens, Step click counting, and Pause stopping a running update."""

from __future__ import annotations

import re
import threading
import time

import pytest

from app.web import handlers
from app.web.fair import BusyError, Key, TrainingGate
from app.web.guard import PageTokens
from app.web.handlers import WebApp
from app.web.sessions import CapacityError, SessionStore
from app.web.settings import WebSettings
from core.config import preset_config

SMALL = {"data.n_train": "300", "data.n_test": "100", "model.width": "16", "measure.n_points": "100",
         "measure.every": "10", "steps": "100000"}
BASE = preset_config("quickstart")


def step_of(out: dict) -> int:
    return int(re.search(r'class="nfa-step">(\d+)<', out["status"]).group(1))


@pytest.fixture
def clock():
    return [0.0]


def store_of(tmp_path, clock, **kw) -> SessionStore:
    opts = dict(max_sessions=4, ttl=1800, api_ttl=180, max_api=2, api_per_client=1, page_reclaim=600)
    opts.update(kw)
    return SessionStore(tmp_path / "s", clock=lambda: clock[0], **opts)


def test_api_callers_cannot_take_the_page_slots(tmp_path, clock):
    store = store_of(tmp_path, clock)
    store.open("api1", BASE, "10.0.0.1")
    store.open("api2", BASE, "10.0.0.2")
    with pytest.raises(CapacityError, match="API session slots"):
        store.open("api3", BASE, "10.0.0.3")  # both API slots busy (used just now)
    with pytest.raises(CapacityError, match="this address"):
        store.open("api1b", BASE, "10.0.0.1")  # one API session per address
    for key in ("p1", "p2"):
        store.mark_page(key)
        store.open(key, BASE, "10.0.0.9")
    assert len(store) == 4 and store.is_page("p1") and not store.is_page("api1")


def test_a_page_reclaims_the_longest_idle_api_slot_when_full(tmp_path, clock):
    store = store_of(tmp_path, clock, max_api=4, api_per_client=4)
    for i, key in enumerate(["a", "b", "c", "d"]):
        clock[0] = float(i)
        store.open(key, BASE, "10.0.0.1")
    folder = store.peek("b").folder
    clock[0] = 10.0
    store.get("a")  # "b" is now the longest idle
    with pytest.raises(CapacityError, match="session slots"):
        store.open("e", BASE, "10.0.0.2")  # an API caller may not displace busy sessions
    store.mark_page("page")
    store.open("page", BASE, "10.0.0.3")
    assert store.peek("b") is None and not folder.exists() and store.peek("page") is not None


def test_idle_api_sessions_expire_in_minutes_pages_do_not(tmp_path, clock):
    store = store_of(tmp_path, clock)
    store.open("api", BASE, "10.0.0.1")
    store.mark_page("page")
    store.open("page", BASE, "10.0.0.1")
    clock[0] = 181.0
    assert store.sweep() == ["api"] and store.peek("page") is not None
    clock[0] = 181.0 + 1801
    assert store.sweep() == ["page"] and not store.is_page("page")


def test_an_idle_page_yields_its_slot_only_after_page_reclaim(tmp_path, clock):
    store = store_of(tmp_path, clock, max_sessions=1)
    store.mark_page("old")
    store.open("old", BASE, "10.0.0.1")
    clock[0] = 599.0
    store.mark_page("new")
    with pytest.raises(CapacityError):
        store.open("new", BASE, "10.0.0.2")
    clock[0] = 601.0
    store.open("new", BASE, "10.0.0.2")
    assert store.peek("old") is None


def test_uploads_are_deleted_with_their_session(tmp_path, clock):
    store = store_of(tmp_path, clock)
    store.open("a", BASE, "x")
    upload = tmp_path / "gradio" / "abc" / "data.csv"
    upload.parent.mkdir(parents=True)
    upload.write_text("1,2\n")
    assert store.add_upload("a", [upload]) and not store.add_upload("nobody", [upload])
    store.close("a")
    assert not upload.exists() and not upload.parent.exists()


def test_keys_that_cannot_come_back_are_forgotten(tmp_path, clock):
    """Unloaded pages and released API sessions are forgotten; a page swept after its time-out is not."""
    store = store_of(tmp_path, clock, max_api=1, api_per_client=1)
    forgotten: list[str] = []
    store.forget = forgotten.append
    for key in ("gone", "idle"):
        store.mark_page(key)
        store.open(key, BASE, "10.0.0.1")
    store.open("api", BASE, "10.0.0.2")
    store.close("gone")  # the tab closed
    assert forgotten == ["gone"]
    clock[0] = 31.0
    store.open("api2", BASE, "10.0.0.3")  # reclaims the idle API slot
    assert forgotten == ["gone", "api"]
    clock[0] = 31.0 + 1801
    assert sorted(store.sweep()) == ["api2", "idle"]
    assert forgotten == ["gone", "api", "api2"]  # the page may still send events: its key is kept


def test_forgetting_drops_gradios_state_of_a_session(tmp_path):
    from gradio.state_holder import StateHolder

    from app.web.layout import build_demo

    web = WebApp.create(WebSettings(), root=tmp_path / "sessions")
    demo = build_demo(web)
    holder = StateHolder()
    holder.set_blocks(demo)  # what launch() does
    holder["page"], holder["other"]  # Gradio makes one for each session hash it sees
    web.store.mark_page("page")
    web.store.open("page", BASE, "10.0.0.1")
    web.store.close("page")
    assert "page" not in holder and "other" in holder
    web.close()


def test_gradios_per_event_records_are_capped(tmp_path, monkeypatch):
    """Gradio's queue records every event for a dashboard the app never enables (10,000 kept by
    default, about 3.3 MB); the app's queue keeps 256 (a value set in the environment wins)."""
    import os

    from app.web.layout import build_demo

    web = WebApp.create(WebSettings(), root=tmp_path / "sessions")
    assert os.environ["GRADIO_ANALYTICS_MAX_EVENTS"] == "256"
    assert build_demo(web)._queue.ANALYTICS_MAX_EVENTS == 256
    monkeypatch.setenv("GRADIO_ANALYTICS_MAX_EVENTS", "50")
    assert build_demo(web)._queue.ANALYTICS_MAX_EVENTS == 50
    web.close()


def test_gate_limits_each_client_and_everyone():
    gate = TrainingGate(limit=2, per_client=1, max_waiting=1, wait_seconds=5)
    entered, release = [], threading.Event()

    def work(client):
        with gate.hold(client):
            entered.append(client)
            release.wait(5)

    a1 = threading.Thread(target=work, args=("a",))
    a1.start()
    while gate.running < 1:
        time.sleep(0.01)
    a2 = threading.Thread(target=work, args=("a",))  # waits: "a" already runs one
    a2.start()
    while gate.waiting("a") < 1:
        time.sleep(0.01)
    with pytest.raises(BusyError):  # a third from "a" may not even wait
        with gate.hold("a"):
            pass
    b = threading.Thread(target=work, args=("b",))  # "b" goes while "a" waits
    b.start()
    while len(entered) < 2:
        time.sleep(0.01)
    assert entered == ["a", "b"] and gate.running == 2 and gate.waiting("a") == 1
    release.set()
    for t in (a1, a2, b):
        t.join(5)
    assert entered == ["a", "b", "a"] and gate.running == 0


def test_page_tokens_are_signed_fresh_and_bound_to_one_session():
    now = [1_000_000.0]
    tokens = PageTokens(clock=lambda: now[0])
    token = tokens.issue()
    assert tokens.check(token, "s1") and tokens.check(token, "s1")
    assert not tokens.check(token, "s2")  # one page, one session
    stamp, _, sig = token.partition(".")
    assert not tokens.check(f"{stamp}.{'0' * len(sig)}", "s3")
    assert not PageTokens(clock=lambda: now[0]).check(token, "s1")  # another server's secret
    later = tokens.issue()
    now[0] += 25 * 3600
    assert not tokens.check(later, "s4")


@pytest.fixture
def app(tmp_path):
    web = WebApp.create(WebSettings(max_sessions=4, update_seconds=60), root=tmp_path / "sessions")
    yield web
    web.close()


def test_step_clicks_are_counted_not_dropped(app):
    handlers.load_page(app, "a", SMALL)
    assert step_of(handlers.step(app, "a", 5, 1, False, 3)) == 15  # three clicks in one update
    assert handlers.step(app, "a", 5, 1, False, 3) == {}  # a total already done: nothing to do
    out = handlers.step(app, "a", 5, 1, False, 4)
    assert step_of(out) == 20 and app.store.get("a").run.engine.step_count == 20
    assert step_of(handlers.step(app, "a", 5, 1, False)) == 25  # API callers: one click per call
    assert "3 Step clicks" not in out["status"]
    assert "2 Step clicks" in handlers.step(app, "a", 5, 1, False, 6)["status"]


def test_pause_stops_a_running_update_at_its_next_step(app):
    handlers.load_page(app, "a", SMALL)
    handlers.play(app, "a")
    engine = app.store.get("a").run.engine
    result = {}
    ticker = threading.Thread(target=lambda: result.update(handlers.tick(app, Key.of("a", ""), 100_000, 1, False)))
    ticker.start()
    while engine.step_count < 5:
        time.sleep(0.005)
    at_pause = engine.step_count
    out = handlers.pause(app, "a")  # the update's budget is 60 s: only Pause can end it this soon
    ticker.join(30)
    assert not ticker.is_alive() and engine.step_count <= at_pause + 3
    assert "paused" in out["status"] and step_of(out) == engine.step_count
    synced = handlers.sync_status(app, "a")
    assert "paused" in synced["status"] and step_of(synced) == engine.step_count
    assert handlers.tick(app, "a", 10, 1, False)["status"].count("paused") and engine.step_count == step_of(out)
