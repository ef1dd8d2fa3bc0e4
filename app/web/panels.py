"""The page's live panels: status line and heatmaps of the selected layer (HTML), and the curves.

Each function takes snapshots and returns HTML, or (``chart_outputs``) the plotly charts of
``app.web.charts``; the single-run and the compare (one column per arm of
``core.arms.make_arms``) views share the pieces. Everything one update shows comes from
the same snapshots, taken once per update.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from app.web import charts
from app.web.sessions import Run
from app.web.views import View, colorbar, esc, figure, fmt, fmt_loss, fmt_se, matrix_power, placeholder
from core.engine import Snapshot

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
    """(NFM, AGOP^alpha, their names) of a layer, centered (dW only) or not."""
    s = snap.layer(layer)
    alpha = snap.config.measure.alpha
    nfm, agop = (s.centered_nfm, s.centered_agop) if centered else (s.nfm, s.agop)
    a = ALPHA_LABEL.get(alpha, "")
    if centered:
        return nfm, matrix_power(agop, alpha), "centered NFM", f"centered AGOP{a}"
    return nfm, matrix_power(agop, alpha), "NFM", f"AGOP{a}"


def _num(value: float | None, digits: int = 3) -> str:
    return f'<span class="nfa-num">{fmt(value, digits)}</span>'


def _rho_line(snap: Snapshot, layer: int) -> str:
    """UC-NFA and C-NFA with their standard errors, and the identity baselines ρ(NFM, I), ρ(AGOP, I)."""
    s = snap.layer(layer)
    m = snap.config.measure
    line = (f"UC-NFA <b>{_num(s.uc_nfa)}</b>{fmt_se(getattr(s, 'uc_nfa_se', None))} · "
            f"C-NFA <b>{_num(s.c_nfa)}</b>{fmt_se(getattr(s, 'c_nfa_se', None))}")
    ident = getattr(s, "nfm_identity", None), getattr(s, "agop_identity", None)
    if any(v is not None for v in ident):
        line += (f' <span class="nfa-dim" title="correlation of NFM and of AGOP with the identity: how much of the '
                 f'alignment any isotropic pair would show">· vs I: NFM {_num(ident[0])}, AGOP {_num(ident[1])}</span>')
    return line + f' <span class="nfa-dim">({esc(m.correlation)}, α={m.alpha:g})</span>'


def _g_star(snap: Snapshot, layer: int, scale: str) -> str:
    if snap.g_star is None:
        return placeholder("no ground truth: real data has no known target AGOP")
    if layer != 1:
        return placeholder("the ground-truth AGOP G* lives in the input space: select layer 1")
    quality = snap.layer(1).feature_quality
    return figure(matrix_power(snap.g_star, snap.config.measure.alpha), "G*", "true AGOP",
                  f'<div class="nfa-meta"><span>feature quality <b>{_num(quality)}</b></span></div>', TIPS["G*"],
                  scale)


def _colorbar(view: View) -> str:
    return colorbar() if view.scale == "max" else colorbar().replace("its own max |entry|",
                                                                      "the 99th percentile of its |entries|")


def heatmap_panel(snap: Snapshot, view: View) -> str:
    """NFM | AGOP | G* | K | UᵀKU for the selected layer, in one row."""
    layer = clamp_layer(snap, view.layer)
    s = snap.layer(layer)
    nfm, agop, n_name, a_name = heat_pair(snap, layer, view.centered)
    head = (f'<div class="nfa-head"><div><b>Layer {layer}</b> <span class="nfa-dim">W {s.shape[0]}×{s.shape[1]} · '
            f"step {snap.measured_step}</span> · {_rho_line(snap, layer)}</div>{_colorbar(view)}</div>")
    n_sub, a_sub = ("dWᵀdW", "dWᵀK dW") if view.centered else ("WᵀW", "WᵀK W")
    sc = view.scale
    cells = [
        figure(nfm, n_name, n_sub, tip=TIPS["NFM"], scale=sc),
        figure(agop, a_name, a_sub, tip=TIPS["AGOP"], scale=sc),
        _g_star(snap, layer, sc),
        figure(s.K, "K", "gradient covariance", tip=TIPS["K"], scale=sc),
        figure(s.utku, "UᵀKU", "K in W's basis",
               f'<div class="nfa-meta"><span>diagonal share <b>{_num(s.diag_share)}</b></span></div>', TIPS["UTKU"],
               sc),
    ]
    return f'<div class="nfa-panel">{head}<div class="nfa-grid5">{"".join(cells)}</div></div>'


def compare_heatmap_panel(runs: Sequence[Run], snaps: Sequence[Snapshot], view: View) -> str:
    """Each arm's NFM and AGOP side by side, then a table of every arm's numbers for the layer."""
    layer = clamp_layer(snaps[0], view.layer)
    cells = []
    for run, snap in zip(runs, snaps):
        nfm, agop, n_name, a_name = heat_pair(snap, layer, view.centered)
        name = esc(run.arm.name if run.arm else "")
        cells += [figure(nfm, f"{name} · {n_name}", scale=view.scale),
                  figure(agop, f"{name} · {a_name}", "", scale=view.scale)]
    target = snaps[-1].config.optim.slo.target_layer
    labels = " · ".join(f'<span style="color:{r.arm.color}">{esc(r.arm.name)}</span>: {esc(r.arm.label)}'
                        for r in runs if r.arm)
    head = (f'<div class="nfa-head"><div><b>Layer {layer}</b>{" (SLO target)" if layer == target else ""} · '
            f'<span class="nfa-dim">same start, same batches · {labels}</span></div>{_colorbar(view)}</div>')
    cols = 2 * len(runs)
    grid = f'<div class="nfa-gridn" style="grid-template-columns: repeat({cols}, minmax(0, 1fr))">{"".join(cells)}</div>'
    return f'<div class="nfa-panel">{head}{grid}{compare_table(runs, snaps, layer)}</div>'


def compare_table(runs: Sequence[Run], snaps: Sequence[Snapshot], layer: int) -> str:
    """Rows: the layer's numbers; columns: the arms."""
    rows = [("UC-NFA", lambda s, sn: fmt(s.uc_nfa) + fmt_se(getattr(s, "uc_nfa_se", None))),
            ("C-NFA", lambda s, sn: fmt(s.c_nfa) + fmt_se(getattr(s, "c_nfa_se", None))),
            ("ρ(NFM, I)", lambda s, sn: fmt(getattr(s, "nfm_identity", None))),
            ("ρ(AGOP, I)", lambda s, sn: fmt(getattr(s, "agop_identity", None))),
            ("diag. share", lambda s, sn: fmt(s.diag_share)),
            ("‖dW‖/‖W‖", lambda s, sn: fmt(s.rel_movement, 4)),
            ("test loss", lambda s, sn: fmt_loss(sn.test_loss))]
    if snaps[0].g_star is not None:
        rows.insert(2, ("feature quality", lambda s, sn: fmt(sn.layer(1).feature_quality)))
    head = "".join(f'<th style="color:{r.arm.color}">{esc(r.arm.name)}</th>' for r in runs if r.arm)
    body = "".join(f"<tr><td>{name}</td>" + "".join(f'<td class="nfa-num">{get(sn.layer(layer), sn)}</td>'
                                                    for sn in snaps) + "</tr>" for name, get in rows)
    return (f'<div class="nfa-summary"><table><tr><th>layer {layer}</th>{head}</tr>{body}</table></div>')


# -- curves ----------------------------------------------------------------------------

def chart_list(runs: Sequence[Run], snaps: Sequence[Snapshot], view: View) -> list:
    """The four charts (``app.web.charts.Chart``) of the single run, or of every arm when comparing."""
    layer = clamp_layer(snaps[0], view.layer)
    for run, snap in zip(runs, snaps):
        run.series.update(snap.history)
    if len(runs) == 1 and runs[0].arm is None:
        return charts.single_charts(runs[0].series, snaps[0], layer, view.window)
    return charts.compare_charts([r.arm for r in runs], [r.series for r in runs], snaps[0], layer, view.window)


def chart_outputs(runs: Sequence[Run], snaps: Sequence[Snapshot], view: View) -> list:
    """What the four ``gr.Plot`` components receive."""
    return [charts.plot_data(c) for c in chart_list(runs, snaps, view)]


# -- status ----------------------------------------------------------------------------

def run_state(snap: Snapshot, playing: bool, length: int) -> tuple[str, str]:
    """(css class, words) for the status dot; ``length`` is the run length set now."""
    if snap.stopped:  # diverged, or dead (a whole layer inactive): shown alike
        return "diverged", snap.status
    if playing:
        return "running", "running"
    if snap.step >= length:
        return "done", "finished"
    return "paused", "paused"


def _field(text: str, width: int, cls: str = "") -> str:
    """A fixed-width field (in digits), so the line does not move while numbers change."""
    return f'<span class="nfa-f {cls}" style="min-width:{width}ch">{text}</span>'


def status_line(snaps: Sequence[Snapshot], playing: bool, length: int, labels: Sequence[str] = (),
                mark: int | None = None) -> str:
    """Step, losses and state of the run (or of every arm when comparing), from the update's snapshots.

    ``mark`` (the session's ``pause_mark``) goes into ``data-pause``: the page script shows no
    line older than the newest mark it has seen (``app.web.pagejs``).
    """
    snap = snaps[0]
    cls, words = run_state(snap, playing, length)
    stopped = [s for s in snaps if s.stopped]
    if stopped:
        cls, words = "diverged", stopped[0].status
    step = f'<b class="nfa-step">{snap.step}</b> <span class="nfa-dim">of {length}</span>'
    step = _field(step, 2 * len(str(length)) + 4)
    head = f'<span class="nfa-dot {cls}"></span>{_field(f"<b>{words}</b>", 8)} · step {step}'
    if len(snaps) == 1 and not labels:
        acc = snap.test_accuracy
        acc_text = f" · test accuracy {_field(f'{acc:.3f}', 5)}" if acc is not None else ""
        body = (f" · train loss {_field(fmt_loss(snap.train_loss), 9)} · test loss "
                f"{_field(fmt_loss(snap.test_loss), 9)}{acc_text}"
                f' · <span class="nfa-dim">{esc(snap.optimizer)}</span>')
    else:
        body = "".join(f" · {esc(label)}: test {_field(fmt_loss(s.test_loss), 9)}" for label, s in zip(labels, snaps))
    messages = [s.message for s in snaps if s.message]
    extra = "".join(f'<div class="nfa-alert">✖ {esc(m)}</div>' for m in messages)
    data = "" if mark is None else f' data-pause="{int(mark)}"'
    return f'<div class="nfa-status {cls}"{data}>{head}{body}</div>{extra}'


def notice(text: str, kind: str = "info") -> str:
    """A one-line message under the status (info, pending or error)."""
    return f'<div class="nfa-notice {kind}">{esc(text)}</div>' if text else ""
