"""The page's one script, run once on load: charts that keep their state, README links that open.

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
kept every chart it ever drew (its renderer reached 1.8 GB after 11 minutes of Play).
"""

CHART_JS = r"""
() => {
  if (window.nfaPage) return [];
  const charts = {};
  window.nfaPage = {charts: charts, patched: false};
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
    if (s.gd && s.gd !== gd) { try { P.purge(s.gd); } catch (e) { /* already gone */ } }
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
"""
