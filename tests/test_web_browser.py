"""What a person sees: the page in headless Chromium, Step pressed, pictures drawn, counter moved."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("NFA_CHROMIUM", "/usr/bin/chromium"))
if not CHROMIUM.exists():
    pytest.skip(f"headless browser test: no Chromium at {CHROMIUM} (install Debian's chromium; .ci/run does)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")

from app.web import WebApp, serve_in_background  # noqa: E402
from app.web.settings import WebSettings  # noqa: E402
from web_helpers import HEATMAPS, drawn_pictures  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    settings = WebSettings(max_sessions=4, update_seconds=60)
    app = WebApp.create(settings, root=tmp_path_factory.mktemp("web") / "sessions")
    demo, url = serve_in_background(app)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        tab = browser.new_page(viewport={"width": 1440, "height": 1000})
        tab.goto(url + "?preset=quickstart&model.width=32")
        yield tab
        browser.close()
    demo.close()
    app.close()


def shown_step(tab) -> int:
    return int(tab.inner_text("#nfa-status .nfa-step"))


def heatmaps_drawn(tab) -> list[int]:
    """Width of every heatmap as drawn (each checked pixel by pixel against the indices it carries)."""
    return [p["rgb"].shape[1] for p in drawn_pictures(tab)]


def test_step_draws_heatmaps_and_moves_the_counter(page):
    page.wait_for_selector(HEATMAPS, timeout=60_000)
    assert shown_step(page) == 0
    assert "model.width=32" in page.url
    page.click("#nfa-step")
    page.wait_for_function("() => document.querySelector('#nfa-status .nfa-step')?.textContent === '25'",
                           timeout=60_000)
    sizes = heatmaps_drawn(page)
    assert len(sizes) == 5 and all(s > 0 for s in sizes)
    page.wait_for_function("""() => [...document.querySelectorAll("[id^='nfa-chart-'] .js-plotly-plot")]
        .map(gd => gd.data && gd.data[0].x.slice(-1)[0]).join() === '25,25,25,25'""", timeout=30_000)
    lines = page.eval_on_selector_all("[id^='nfa-chart-'] .js-plotly-plot", "els => els.map(e => e.querySelectorAll('.scatterlayer .trace').length)")
    assert len(lines) == 4 and all(n >= 2 for n in lines)  # four charts, each with its lines drawn
    assert re.search(r"Layer 1 W 32×20 · step 25 · ", page.inner_text("#nfa-heat"))  # the header names the shape and step


def test_play_then_pause_keeps_training_in_between(page):
    before = shown_step(page)
    page.click("#nfa-play")
    page.wait_for_function(f"() => +document.querySelector('#nfa-status .nfa-step').textContent > {before + 50}",
                           timeout=60_000)
    page.click("#nfa-pause")
    page.wait_for_function("() => document.querySelector('#nfa-status').textContent.includes('paused')",
                           timeout=30_000)
    stopped = shown_step(page)
    page.wait_for_timeout(800)
    assert shown_step(page) == stopped


STALE_JS = r"""() => {
  const line = document.querySelector('#nfa-status .nfa-status[data-pause]');
  const stale = line.outerHTML.replace(/data-pause="(\d+)"/, (m, n) => `data-pause="${BigInt(n) - 1n}"`)
                              .replace('<b>paused</b>', '<b>running</b>');
  line.insertAdjacentHTML('beforebegin', stale);
  line.remove();
}"""
"""Puts in a status line as a tick answer rendered before the last Pause would be: an older mark, "running"."""


def test_a_running_line_from_before_the_pause_is_not_shown(page):
    """A tick answer that a Pause overtook (seen with 8 pages playing) must not turn a stopped run back to running."""
    page.click("#nfa-pause")
    page.wait_for_function("() => document.querySelector('#nfa-status b')?.textContent === 'paused'", timeout=30_000)
    step = shown_step(page)
    stale_before = page.evaluate("() => window.nfaPage.stale")
    page.evaluate(STALE_JS)
    page.wait_for_function(f"() => window.nfaPage.stale > {stale_before}", timeout=10_000)
    assert page.inner_text("#nfa-status b") == "paused" and shown_step(page) == step
