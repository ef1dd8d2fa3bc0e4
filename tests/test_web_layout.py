"""The page in headless Chromium at 1280x720 and on a phone: charts people can read and explore.

Hovering a curve shows the step and each series' value (equal to the run's history);
a zoomed step range and a hidden layer survive updates; the controls, the status, the
selected layer's pictures and its NFA curve fit in 1280x720 without scrolling; the page
does not move while playing (layout shift measured with the browser's own
``layout-shift`` entries); README links open the README. Screenshots land in
``$NFA_SCREENSHOTS`` (a temp folder by default) for a person to look at.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = Path(os.environ.get("NFA_CHROMIUM", "/usr/bin/chromium"))
if not CHROMIUM.exists():
    pytest.skip(f"headless browser test: no Chromium at {CHROMIUM}", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")

from app.web import WebApp, serve_in_background  # noqa: E402
from app.web.settings import WebSettings  # noqa: E402
from core.plots import heatmap_rgb  # noqa: E402
from web_helpers import drawn_pictures  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
QUERY = "?model.width=32&measure.every=5&measure.n_points=100&data.n_train=400"
SHOTS = Path(os.environ.get("NFA_SCREENSHOTS") or tempfile.mkdtemp(prefix="nfa-shots-"))
CHART = "#nfa-chart-1 .js-plotly-plot"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    app = WebApp.create(WebSettings(max_sessions=4, update_seconds=60),
                        root=tmp_path_factory.mktemp("web") / "sessions")
    demo, url = serve_in_background(app)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield app, browser, url
        browser.close()
    demo.close()
    app.close()


@pytest.fixture(scope="module")
def page(served):
    app, browser, url = served
    tab = browser.new_page(viewport={"width": 1280, "height": 720})
    tab.goto(url + QUERY)
    tab.wait_for_selector(CHART, timeout=90_000)
    yield tab
    tab.close()


def shown_step(tab) -> int:
    return int(tab.inner_text("#nfa-status .nfa-step"))


def press_step(tab) -> int:
    """Clicks Step and waits for the counter and the redrawn chart to show the new step."""
    before = shown_step(tab)
    tab.click("#nfa-step")
    tab.wait_for_function(f"() => +document.querySelector('#nfa-status .nfa-step').textContent > {before}",
                          timeout=60_000)
    step = shown_step(tab)
    tab.wait_for_function(f"""() => {{ const gd = document.querySelector("{CHART}");
        return gd && gd.data && gd.data[0].x.slice(-1)[0] === {step}; }}""", timeout=30_000)
    return step


def session_engine(app):
    """The one session's engine (this module opens one page at a time)."""
    (session,) = [s for s in app.store._sessions.values() if s.run is not None]
    return session.run.engine


def plot_box(tab) -> dict:
    return tab.eval_on_selector(f"{CHART} .nsewdrag", "e => JSON.parse(JSON.stringify(e.getBoundingClientRect()))")


def x_pixel(tab, step: int) -> float:
    """The page x of a step on chart 1's axis."""
    return tab.evaluate(f"""() => {{ const gd = document.querySelector("{CHART}");
        const xa = gd._fullLayout.xaxis; return gd.getBoundingClientRect().left + xa._offset + xa.l2p({step}); }}""")


def test_hover_shows_the_step_and_every_series_value(served, page):
    app = served[0]
    for _ in range(4):
        step = press_step(page)
    history = session_engine(app).history
    target = history.rows[-6]["step"]  # a measured step inside the curve, not its end
    box = plot_box(page)
    page.mouse.move(x_pixel(page, target), box["y"] + box["height"] / 2)
    page.wait_for_selector(f"{CHART} .hoverlayer .legend", timeout=10_000)
    text = page.text_content(f"{CHART} .hoverlayer")
    page.screenshot(path=str(SHOTS / "hover.png"))
    assert text.startswith(f"{target:,}")  # the step heads the tooltip
    for layer in (1, 2):
        for name, key in (("UC", "uc_nfa"), ("C", "c_nfa")):
            steps, values = history.series(key, layer)
            want = f"{values[list(steps).index(target)]:.3f}"
            assert re.search(rf"layer {layer} {name} : {re.escape(want)}", text), (layer, name, want, text)
    page.mouse.move(5, 5)
    assert step > 0


def test_zoom_and_hidden_layer_survive_two_updates_and_reset(page):
    press_step(page)
    box = plot_box(page)
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.15, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.55, y, steps=8)
    page.mouse.up()
    page.wait_for_timeout(300)
    zoomed = page.evaluate(f'() => document.querySelector("{CHART}").layout.xaxis.range')
    assert zoomed[1] - zoomed[0] < 0.6 * shown_step(page)
    page.click(f"{CHART} .legend .traces >> nth=1")  # hide layer 2 (its UC and C curves)
    page.wait_for_timeout(300)
    for _ in range(2):
        press_step(page)
        page.wait_for_timeout(300)
        gd = page.evaluate(f"""() => {{ const gd = document.querySelector("{CHART}");
            return {{range: gd.layout.xaxis.range, auto: gd.layout.xaxis.autorange,
                     hidden: gd.data.filter(t => t.visible === 'legendonly').map(t => t.name)}}; }}""")
        assert gd["range"] == pytest.approx(zoomed) and not gd["auto"]
        assert sorted(gd["hidden"]) == ["layer 2 C", "layer 2 UC"]
    page.screenshot(path=str(SHOTS / "zoomed.png"))
    page.dblclick(f"{CHART} .nsewdrag")  # plotly's reset: the whole run again
    page.wait_for_timeout(300)
    press_step(page)
    gd_range = page.evaluate(f'() => document.querySelector("{CHART}").layout.xaxis.range')
    assert gd_range[1] >= shown_step(page) - 1 and gd_range[0] <= 1


def _rect(tab, selector: str) -> dict:
    return tab.eval_on_selector(selector, "e => JSON.parse(JSON.stringify(e.getBoundingClientRect()))")


def test_1280x720_shows_controls_status_pictures_and_nfa_curve_without_scrolling(served, page):
    app = served[0]
    page.evaluate("() => window.scrollTo(0, 0)")
    step = press_step(page)
    assert page.evaluate("() => window.scrollY") == 0
    for sel in ("#nfa-play", "#nfa-pause", "#nfa-step", "#nfa-reset", "#nfa-status .nfa-status", "#nfa-layer",
                "#nfa-heat .nfa-head", "#nfa-chart-1"):
        r = _rect(page, sel)
        assert r["top"] >= 0 and r["bottom"] <= 720 and r["right"] <= 1280, (sel, r)
    pictures = drawn_pictures(page)
    assert len(pictures) == 5 and all(p["bottom"] <= 720 for p in pictures)  # NFM AGOP G* K UᵀKU
    page.screenshot(path=str(SHOTS / "layout-1280x720.png"))
    snap = session_engine(app).snapshot()
    status = page.inner_text("#nfa-status")
    assert step == snap.step
    assert f"{snap.train_loss:.4f}" in status and f"{snap.test_loss:.4f}" in status
    head = page.inner_text("#nfa-heat .nfa-head")
    assert f"UC-NFA {snap.layer(1).uc_nfa:.3f}" in head and f"C-NFA {snap.layer(1).c_nfa:.3f}" in head
    np.testing.assert_array_equal(pictures[3]["rgb"], heatmap_rgb(snap.layer(1).K))  # the K drawn is the K measured


LAYOUT_SHIFT_JS = """() => { window.nfaShift = 0; window.nfaShifts = [];
  new PerformanceObserver((list) => { for (const e of list.getEntries()) {
    if (!e.hadRecentInput) { window.nfaShift += e.value; window.nfaShifts.push(e.value); } } })
  .observe({type: "layout-shift", buffered: false}); }"""


def test_the_page_does_not_move_while_playing(page):
    page.evaluate(LAYOUT_SHIFT_JS)
    start = shown_step(page)
    page.click("#nfa-play")
    page.wait_for_function(f"() => +document.querySelector('#nfa-status .nfa-step').textContent >= {start + 100}",
                           timeout=90_000)
    page.click("#nfa-pause")
    page.wait_for_function("() => document.querySelector('#nfa-status').textContent.includes('paused')",
                           timeout=30_000)
    shift = page.evaluate("() => window.nfaShift")
    print(f"layout shift while playing {shown_step(page) - start} steps: {shift:.4f} "
          f"({len(page.evaluate('() => window.nfaShifts'))} shifts)")
    assert shift < 0.01


def test_readme_link_opens_the_readme(page):
    page.evaluate("() => window.scrollTo(0, 0)")
    page.click(".nfa-header a[href='#readme']")
    page.wait_for_function("() => document.querySelector('#readme').getBoundingClientRect().top < 200",
                           timeout=10_000)
    assert page.locator("#readme").get_by_text("NFA Explorer").first.is_visible()


def test_phone_has_play_slo_and_compare_within_one_screen(served):
    app, browser, url = served
    tab = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        tab.goto(url + QUERY)
        tab.wait_for_selector(CHART, timeout=90_000)
        tops = {sel: _rect(tab, sel)["top"] for sel in ("#nfa-play", "#nfa-slo-on", "#nfa-compare")}
        tab.screenshot(path=str(SHOTS / "phone.png"))
        assert max(tops.values()) - min(tops.values()) < 844, tops
    finally:
        tab.close()


COUNT_RESIZE = """
window.nfaResize = 0;
const add = window.addEventListener, remove = window.removeEventListener;
window.addEventListener = function (type, fn, opts) {
  if (type === "resize") window.nfaResize += 1;
  return add.call(this, type, fn, opts);
};
window.removeEventListener = function (type, fn, opts) {
  if (type === "resize") window.nfaResize -= 1;
  return remove.call(this, type, fn, opts);
};
"""
"""Counts the page's live window "resize" listeners (plotly adds one per responsive chart div)."""


def test_charts_replaced_by_updates_are_let_go(served):
    """Each update draws new plotly divs; the replaced ones must not stay held by the window (a playing
    page kept every chart it ever drew: its renderer reached 1.8 GB after 11 minutes of Play), nor by
    an error: purged too early, a chart's pending auto-margin redraw threw, and Chromium kept every
    such unhandled rejection with the chart its stack refers to (190k nodes after 20 s of Play)."""
    app, browser, url = served
    tab = browser.new_page(viewport={"width": 1280, "height": 720})
    tab.add_init_script(COUNT_RESIZE)
    tab.add_init_script("""window.addEventListener("unhandledrejection",
        (e) => console.error("unhandled rejection: " + (e.reason && (e.reason.stack || e.reason))));""")
    errors: list[str] = []
    tab.on("console", lambda m: errors.append(m.text) if m.text.startswith("unhandled rejection") else None)
    tab.on("pageerror", lambda e: errors.append(str(e)))
    tab.goto(url + QUERY)
    tab.wait_for_selector(CHART, timeout=90_000)
    press_step(tab)  # drawn through the page script's Plotly.react
    before = tab.evaluate("() => window.nfaResize")
    for _ in range(5):
        press_step(tab)  # 4 new chart divs each
    start = shown_step(tab)
    tab.click("#nfa-play")
    tab.wait_for_function(f"() => +document.querySelector('#nfa-status .nfa-step').textContent >= {start + 100}",
                          timeout=60_000)
    tab.wait_for_timeout(1500)
    tab.click("#nfa-pause")
    tab.wait_for_function("() => document.querySelector('#nfa-status b')?.textContent === 'paused'", timeout=30_000)
    tab.wait_for_timeout(3000)  # the page purges a replaced chart 2 s after its successor is drawn
    held = tab.evaluate("() => window.nfaResize") - before
    tab.close()
    assert not errors, errors[:3]
    assert held <= 1, f"{held} more resize listeners after 5 updates and Play: replaced charts are still held"
