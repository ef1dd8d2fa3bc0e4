"""The page's one script, run once on load: charts that keep their state, heatmaps, README links that open.

Gradio 6.31's ``gr.Plot`` mounts a new plotly ``<div>`` for every new value (its Svelte
wrapper is keyed on the plot JSON), so ``layout.uirevision`` alone cannot keep a zoom
or a hidden series across updates: the new div has no UI state to keep. The script
wraps ``Plotly.react`` (the call Gradio makes) and re-applies, per chart element
(``#nfa-chart-N``), the step range the user zoomed to (until a double click resets it,
or the chart's meaning or window changes), the legend groups the user hid, and the
hover tooltip at the step the pointer was on.

It also purges the chart's previous plotly div (``Plotly.purge``) when a new one is
drawn: Gradio draws with ``config.responsive`` and never purges, so every replaced div
stayed referenced by its window "resize" listener, with its data and SVG; a playing page
kept every chart it ever drew (its renderer reached 1.8 GB after 11 minutes of Play). The
purge waits 2 s: plotly finishes a draw with an auto-margin redraw a moment later, and on a
div purged before it that redraw throws (``_redrawFromAutoMarginCount`` of undefined) as an
unhandled rejection, and Chromium keeps each such error, with the whole chart its stack
refers to (measured: 330 detached charts and 190k nodes after 20 s of Play).

Every status line carries the session's pause mark (``data-pause``, set when the session
starts and at each Pause): a tick answer rendered before a Pause but delivered after it
(its plots are serialised after the session's lock is released, so the Pause answer can
overtake it) would show "running" over a stopped run; the script puts the newer line back.

Heatmaps arrive as ``<canvas class="nfa-img" data-idx=...>`` (``app.web.views.canvas``): a
mutation observer draws each new one with the colour map's palette (``PALETTE_B64``, the same
lookup table as ``core.plots.heatmap_rgb``) before the browser paints, so a replaced picture
never shows blank and no image is ever decoded from a URL.
"""

import base64

from core.plots import heatmap_palette

PALETTE_B64 = base64.b64encode(heatmap_palette().tobytes()).decode("ascii")

CHART_JS = r"""
() => {
  if (window.nfaPage) return [];
  const charts = {};
  window.nfaPage = {charts: charts, patched: false, drawn: 0};
  const PURGE_AFTER_MS = 2000;
  const palette = Uint8Array.from(atob("__PALETTE__"), (c) => c.charCodeAt(0));
  const draw = (cv) => {
    cv.dataset.drawn = "1";
    const idx = atob(cv.dataset.idx || ""), w = cv.width, h = cv.height;
    if (!w || !h || idx.length !== w * h) return;
    const img = new ImageData(w, h), px = img.data;
    for (let i = 0, j = 0; i < idx.length; i++, j += 4) {
      const p = idx.charCodeAt(i) * 3;
      px[j] = palette[p]; px[j + 1] = palette[p + 1]; px[j + 2] = palette[p + 2]; px[j + 3] = 255;
    }
    cv.getContext("2d").putImageData(img, 0, 0);
    window.nfaPage.drawn += 1;
  };
  const drawNew = () => document.querySelectorAll("canvas.nfa-img:not([data-drawn])").forEach(draw);
  let newest = null;  // the status line with the newest pause mark seen: [mark, class, inner HTML]
  const guardStatus = () => {
    const line = document.querySelector("#nfa-status .nfa-status[data-pause]");
    if (!line) return;
    const mark = BigInt(line.dataset.pause);
    if (newest && mark < newest[0]) {  // rendered before the last Pause, delivered after it
      line.className = newest[1];
      line.innerHTML = newest[2];
      line.dataset.pause = String(newest[0]);
      window.nfaPage.stale += 1;
      return;
    }
    newest = [mark, line.className, line.innerHTML];
  };
  window.nfaPage.stale = 0;
  const onChange = () => { drawNew(); guardStatus(); };
  new MutationObserver(onChange).observe(document.body, {childList: true, subtree: true});
  onChange();
  const idOf = (gd) => { const el = gd.closest && gd.closest("[id^='nfa-chart-']"); return el ? el.id : null; };
  const stateOf = (id) => charts[id] || (charts[id] = {range: null, hidden: new Set(), kind: null, hoverX: null});
  const hook = (gd) => {
    const id = idOf(gd);
    if (!id || gd.nfaHooked || !gd.on) return;
    gd.nfaHooked = true;
    const s = stateOf(id);
    gd.on("plotly_relayout", () => {
      const xa = gd.layout.xaxis || {};
      s.range = xa.autorange ? null : (xa.range || []).slice();
    });
    gd.on("plotly_restyle", () => {
      s.hidden = new Set(gd.data.filter((t) => t.visible === "legendonly").map((t) => t.legendgroup || t.name));
    });
    gd.on("plotly_hover", (ev) => { if (ev && ev.xvals) s.hoverX = ev.xvals[0]; });
    gd.on("plotly_unhover", () => { s.hoverX = null; });
  };
  const restore = (gd, data, layout) => {
    const id = idOf(gd);
    if (!id || !layout) return;
    const s = stateOf(id);
    const meta = layout.meta || {};
    const kind = (meta.chart || "") + "|" + (meta.window || "");
    if (s.kind !== kind) { s.range = null; s.kind = kind; }
    if (s.range && s.range.length === 2) {
      layout.xaxis = Object.assign({}, layout.xaxis || {}, {range: s.range.slice(), autorange: false});
    }
    for (const t of data || []) if (s.hidden.has(t.legendgroup || t.name)) t.visible = "legendonly";
  };
  const forget = (P, gd) => {
    const id = idOf(gd);
    if (!id) return;
    const s = stateOf(id);
    if (s.gd && s.gd !== gd) {
      const old = s.gd;  // later, not now: plotly may still owe it an auto-margin redraw
      setTimeout(() => { try { P.purge(old); } catch (e) { /* already gone */ } }, PURGE_AFTER_MS);
    }
    s.gd = gd;
  };
  const patch = (P) => {
    if (!P || P.nfaPatched) return;
    P.nfaPatched = true;
    window.nfaPage.patched = true;
    const react = P.react;
    P.react = function (gd, data, layout, config) {
      restore(gd, data, layout);
      forget(P, gd);
      const out = react.apply(this, arguments);
      Promise.resolve(out).then(() => {
        hook(gd);
        const s = charts[idOf(gd)];
        if (s && s.hoverX !== null && gd.matches(":hover")) {
          try { P.Fx.hover(gd, {xval: s.hoverX}); } catch (e) { /* no point there: no tooltip */ }
        }
      });
      return out;
    };
  };
  setInterval(() => {
    if (!window.Plotly) return;
    patch(window.Plotly);
    document.querySelectorAll("[id^='nfa-chart-'] .js-plotly-plot").forEach(hook);
  }, 100);
  document.addEventListener("click", (ev) => {
    const a = ev.target.closest && ev.target.closest("a[href='#readme']");
    if (!a) return;
    ev.preventDefault();
    const acc = document.getElementById("readme");
    if (!acc) return;
    const toggle = acc.querySelector(".label-wrap");
    if (toggle && !toggle.classList.contains("open")) toggle.click();
    for (const ms of [60, 300, 800]) setTimeout(() => acc.scrollIntoView({block: "start"}), ms);
  });
  return [];
}
""".replace("__PALETTE__", PALETTE_B64)
