"""The page's three live panels: status line, heatmaps of the selected layer, and curves.

Each function takes snapshots (and the runs' curve columns) and returns HTML; the
single-run and the compare (baseline vs SLO) views share the pieces.
"""

from __future__ import annotations

import numpy as np

from app.web.plot import Series, line_chart
from app.web.sessions import Run, SeriesCache
from app.web.views import (BASELINE, CHART_SIZE, QUALITY, SHARE_COLORS, SLO_RED, TEST, TRAIN, View, colorbar,
                           data_uri, esc, figure, fmt, fmt_loss, layer_color, matrix_power, placeholder)
from core.engine import Snapshot

UNIT = (-0.05, 1.03)
ALPHA_LABEL = {1.0: "", 0.5: "<sup>½</sup>"}
TIPS = {
    "NFM": "neural feature matrix WᵀW: the input directions this layer's weights amplify",
    "AGOP": "average gradient outer product WᵀKW: the input directions the network's output is sensitive to",
    "K": "covariance of the output's gradients w.r.t. this layer's pre-activations (the PTK features)",
    "UTKU": "K in the basis of W's left singular vectors U: diagonal when W and K are aligned",
    "G*": "the AGOP of the true target function; its correlation with NFM₁ is the feature quality",
}


def clamp_layer(snap: Snapshot, layer: int) -> int:
    return min(max(int(layer or 1), 1), len(snap.layers))


# -- heatmaps --------------------------------------------------------------------------

def heat_pair(snap: Snapshot, layer: int, centered: bool) -> tuple[np.ndarray, np.ndarray, str, str]:
    s = snap.layer(layer)
    alpha = snap.config.measure.alpha
    nfm, agop = (s.centered_nfm, s.centered_agop) if centered else (s.nfm, s.agop)
    a = ALPHA_LABEL.get(alpha, "")
    if centered:
        return nfm, matrix_power(agop, alpha), "centered NFM", f"centered AGOP{a}"
    return nfm, matrix_power(agop, alpha), "NFM", f"AGOP{a}"


def _rho_line(snap: Snapshot, layer: int) -> str:
    s = snap.layer(layer)
    m = snap.config.measure
    return (f"UC-NFA <b>{fmt(s.uc_nfa)}</b> · C-NFA <b>{fmt(s.c_nfa)}</b> "
            f'<span class="nfa-dim">({esc(m.correlation)}, α={m.alpha:g})</span>')


def _g_star(snap: Snapshot, layer: int) -> str:
    if snap.g_star is None:
        return placeholder("no ground truth: real data has no known target AGOP")
    if layer != 1:
        return placeholder("the ground-truth AGOP G* lives in the input space: select layer 1")
    quality = snap.layer(1).feature_quality
    return figure(matrix_power(snap.g_star, snap.config.measure.alpha), "G*", "true AGOP",
                  f'<div class="nfa-meta"><span>feature quality <b>{fmt(quality)}</b></span></div>', TIPS["G*"])


def heatmap_panel(snap: Snapshot, view: View) -> str:
    """NFM | AGOP | G* | K | UᵀKU for the selected layer, in one row."""
    layer = clamp_layer(snap, view.layer)
    s = snap.layer(layer)
    nfm, agop, n_name, a_name = heat_pair(snap, layer, view.centered)
    head = (f'<div class="nfa-head"><div><b>Layer {layer}</b> <span class="nfa-dim">W is {s.shape[0]}×{s.shape[1]} · '
            f"measured at step {snap.measured_step}</span> · {_rho_line(snap, layer)}</div>{colorbar()}</div>")
    n_sub, a_sub = ("dWᵀdW", "dWᵀK dW") if view.centered else ("WᵀW", "WᵀK W")
    cells = [
        figure(nfm, n_name, n_sub, tip=TIPS["NFM"]),
        figure(agop, a_name, a_sub, tip=TIPS["AGOP"]),
        _g_star(snap, layer),
        figure(s.K, "K", "gradient covariance", tip=TIPS["K"]),
        figure(s.utku, "UᵀKU", "K in W's basis",
               f'<div class="nfa-meta"><span>diagonal share <b>{fmt(s.diag_share)}</b></span></div>', TIPS["UTKU"]),
    ]
    return f'<div class="nfa-panel">{head}<div class="nfa-grid5">{"".join(cells)}</div></div>'


def compare_heatmap_panel(base: Snapshot, slo: Snapshot, view: View) -> str:
    """Baseline and SLO heatmaps paired, G* (or a summary table) last, the numbers in the header."""
    layer = clamp_layer(base, view.layer)
    cells = []
    for label, snap in (("baseline", base), ("SLO", slo)):
        nfm, agop, n_name, a_name = heat_pair(snap, layer, view.centered)
        uc = f'<div class="nfa-meta"><span>UC-NFA <b>{fmt(snap.layer(layer).uc_nfa)}</b></span></div>'
        cells += [figure(nfm, f"{label} · {n_name}"), figure(agop, f"{label} · {a_name}", "", uc)]
    cells.append(_g_star(base, layer) if base.g_star is not None and layer == 1 else _compare_summary(base, slo, layer))
    target = slo.config.optim.slo.target_layer
    b, s = base.layer(layer), slo.layer(layer)
    claim = f"UC-NFA {fmt(b.uc_nfa)} → <b>{fmt(s.uc_nfa)}</b>"
    if layer == 1 and base.g_star is not None:
        claim += f" · feature quality {fmt(b.feature_quality)} → <b>{fmt(s.feature_quality)}</b>"
    head = (f'<div class="nfa-head"><div><b>Layer {layer}</b>{" (SLO target)" if layer == target else ""} · '
            f'baseline → <b style="color:#d62728">SLO</b>: {claim} '
            f'<span class="nfa-dim">· {esc(base.optimizer)} vs {esc(slo.optimizer)}; same start, same batches</span>'
            f"</div>{colorbar()}</div>")
    return f'<div class="nfa-panel">{head}<div class="nfa-grid5">{"".join(cells)}</div></div>'


def _compare_summary(base: Snapshot, slo: Snapshot, layer: int) -> str:
    b, s = base.layer(layer), slo.layer(layer)
    lines = [("UC-NFA", b.uc_nfa, s.uc_nfa), ("C-NFA", b.c_nfa, s.c_nfa), ("diag. share", b.diag_share, s.diag_share),
             ("test loss", base.test_loss, slo.test_loss)]
    body = "".join(f"<tr><td>{name}</td><td>{fmt(x)}</td><td><b>{fmt(y)}</b></td></tr>" for name, x, y in lines)
    return (f'<div class="nfa-fig nfa-summary"><table><tr><th>layer {layer}</th><th>baseline</th><th>SLO</th></tr>'
            f"{body}</table></div>")


# -- curves ----------------------------------------------------------------------------

def _img(chart) -> str:
    return f'<img class="nfa-chart" alt="chart" src="{data_uri(chart, colors=64)}"/>'


def _layer_series(cache: SeriesCache, key: str, selected: int, dash: bool = False, label: str = "L") -> list[Series]:
    out = []
    for layer in cache.layers():
        x, y = cache.series(key, layer)
        sel = layer == selected
        out.append(Series(x, y, layer_color(layer, faded=not sel), 2.6 if sel else 1.3, dash,
                          f"{label}{layer}" if label else ""))
    # the selected layer is drawn last, on top
    return sorted(out, key=lambda s: s.width)


def _chart(series: list[Series], title: str, span: float, **kw):
    """A chart whose x axis runs at least from step 0 to ``span`` (the run length)."""
    return line_chart(series, title, CHART_SIZE, x_range=(0, span), **kw)


def nfa_chart(cache: SeriesCache, layer: int, has_quality: bool, span: float):
    series = _layer_series(cache, "c_nfa", layer, dash=True, label="") + _layer_series(cache, "uc_nfa", layer)
    if has_quality:
        x, y = cache.series("feature_quality", 1)
        series.append(Series(x, y, QUALITY, 1.2, False, "G* quality"))
    return _chart(series, "UC-NFA (solid), C-NFA (dashed)", span, y_range=UNIT)


def loss_chart(cache: SeriesCache, span: float):
    x, train = cache.series("train_loss", 1)
    _, test = cache.series("test_loss", 1)
    return _chart([Series(x, train, TRAIN, 1.8, False, "train"), Series(x, test, TEST, 1.8, True, "test")],
                  "loss (log scale)", span, log_y=True)


def movement_chart(cache: SeriesCache, layer: int, span: float):
    return _chart(_layer_series(cache, "rel_movement", layer), "relative movement ‖dW‖/‖W‖", span, y_floor=0)


def shares_chart(cache: SeriesCache, layer: int, span: float):
    names = (("init_share", "init W0ᵀW0"), ("cross_share", "cross"), ("centered_share", "centered dWᵀdW"))
    series = []
    for (key, label), color in zip(names, SHARE_COLORS):
        x, y = cache.series(key, layer)
        series.append(Series(x, y, color, 2.0, False, label))
    return _chart(series, f"layer {layer}: NFM term shares", span, y_range=UNIT)


def single_charts(run: Run, snap: Snapshot, layer: int) -> list:
    """NFA per layer, loss, movement per layer, and the selected layer's term shares (PIL images)."""
    cache, span = run.series, snap.config.steps
    return [nfa_chart(cache, layer, snap.g_star is not None, span), loss_chart(cache, span),
            movement_chart(cache, layer, span), shares_chart(cache, layer, span)]


def curves_panel(run: Run, snap: Snapshot, view: View) -> str:
    """The four single-run charts in a 2x2 grid."""
    charts = single_charts(run, snap, clamp_layer(snap, view.layer))
    return f'<div class="nfa-grid2">{"".join(_img(c) for c in charts)}</div>'


def _pair_series(base: SeriesCache, slo: SeriesCache, key: str, layer: int, label: str) -> list[Series]:
    bx, by = base.series(key, layer)
    sx, sy = slo.series(key, layer)
    return [Series(bx, by, BASELINE, 1.8, True, f"{label} baseline".strip()),
            Series(sx, sy, SLO_RED, 2.2, False, f"{label} SLO".strip())]


def compare_charts(base: Run, slo: Run, snap: Snapshot, layer: int) -> list:
    """Baseline (dashed) and SLO (solid) overlaid: NFA per layer, loss, quality or C-NFA, movement."""
    b, s, span = base.series, slo.series, snap.config.steps
    nfa = _layer_series(b, "uc_nfa", layer, dash=True, label="") + _layer_series(s, "uc_nfa", layer)
    charts = [_chart(nfa, "UC-NFA: baseline dashed, SLO solid", span, y_range=UNIT),
              _chart(_pair_series(b, s, "test_loss", 1, "test"), "test loss (log scale)", span, log_y=True)]
    if snap.g_star is not None:
        charts.append(_chart(_pair_series(b, s, "feature_quality", 1, ""), "feature quality ρ(NFM₁, G*)", span,
                             y_range=UNIT))
    else:
        charts.append(_chart(_pair_series(b, s, "c_nfa", layer, ""), f"layer {layer}: C-NFA", span, y_range=UNIT))
    mov = _layer_series(b, "rel_movement", layer, dash=True, label="") + _layer_series(s, "rel_movement", layer)
    charts.append(_chart(mov, "relative movement: baseline dashed, SLO solid", span, y_floor=0))
    return charts


def compare_curves_panel(base: Run, slo: Run, snap: Snapshot, view: View) -> str:
    """The four compare charts in a 2x2 grid."""
    charts = compare_charts(base, slo, snap, clamp_layer(snap, view.layer))
    return f'<div class="nfa-grid2">{"".join(_img(c) for c in charts)}</div>'


# -- status ----------------------------------------------------------------------------

def run_state(snap: Snapshot, playing: bool) -> tuple[str, str]:
    """(css class, words) for the status dot."""
    if snap.stopped:  # diverged, or dead (a whole layer inactive): shown alike
        return "diverged", snap.status
    if playing:
        return "running", "running"
    if snap.step >= snap.config.steps:
        return "done", "finished"
    return "paused", "paused"


def status_line(snap: Snapshot, playing: bool, other: Snapshot | None = None) -> str:
    """step, losses and state of the run (or of the baseline and SLO runs when comparing)."""
    cls, words = run_state(snap, playing)
    if other is not None and other.stopped:
        cls, words = "diverged", other.status
    head = (f'<span class="nfa-dot {cls}"></span><b>{words}</b> · step <b class="nfa-step">{snap.step}</b>'
            f" / {snap.config.steps}")
    if other is None:
        acc = f" · test accuracy {snap.test_accuracy:.3f}" if snap.test_accuracy is not None else ""
        body = (f" · train loss {fmt_loss(snap.train_loss)} · test loss {fmt_loss(snap.test_loss)}{acc}"
                f' · <span class="nfa-dim">{esc(snap.optimizer)}</span>')
    else:
        body = (f" · baseline: train {fmt_loss(snap.train_loss)}, test {fmt_loss(snap.test_loss)}"
                f' · <span style="color:#d62728">SLO</span>: train {fmt_loss(other.train_loss)},'
                f" test {fmt_loss(other.test_loss)}")
    messages = [m for m in (snap.message, other.message if other else "") if m]
    extra = "".join(f'<div class="nfa-alert">✖ {esc(m)}</div>' for m in messages)
    return f'<div class="nfa-status {cls}">{head}{body}</div>{extra}'


def notice(text: str, kind: str = "info") -> str:
    """A one-line message under the status (info, pending or error)."""
    return f'<div class="nfa-notice {kind}">{esc(text)}</div>' if text else ""
