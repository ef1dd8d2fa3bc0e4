"""Markdown tables of the report and the README section: claims, sources, identities, arms."""

from __future__ import annotations

import math

from app.reproduce import diagnose as D
from app.reproduce.claims import ClaimResult, num, signed
from app.reproduce.comparisons import mean_final
from app.reproduce.dynamics import BASELINE, layers_of
from app.reproduce.identities import SOURCE as IDENTITY_SOURCE
from app.reproduce.identities import IdentityResult
from app.reproduce.results import ExpRuns

VALUE_MEANING = {
    1: "C-NFA - UC-NFA at the early point",
    2: "layer 1's UC-NFA, last step - early point",
    3: "Spearman rho(centered share, -|C-NFA - UC-NFA|)",
    4: "targeted layer's UC-NFA, SLO - baseline",
    5: "feature quality, SLO - baseline",
    6: "layer 1's UC-NFA, SLO - baseline",
}
"""What a claim's case value measures (positive: the claim's direction)."""


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |"


def _head(*names: str) -> list[str]:
    return [_row(list(names)), "|" + "---|" * len(names)]


def claims_table(results: list[ClaimResult]) -> str:
    """Verdicts: claim, holds, clear/narrow, weakest case, each seed's margin, time point."""
    lines = _head("#", "claim", "holds", "margin", "value (positive: claim's direction)",
                  "weakest case, mean ± std over seeds", "per-seed margin (smallest case)", "measured at")
    for r in results:
        lines.append(_row([r.number, r.claim.statement, f"**{r.holds_text}**", r.clear_text,
                           VALUE_MEANING[r.number], f"{r.verdict.weakest}: {r.value or 'n/a'}",
                           r.verdict.margins_text() or "n/a", r.claim.when]))
    return "\n".join(lines)


def sources_table(results: list[ClaimResult]) -> str:
    """Where each claim comes from, the setting it is tested in and its time point."""
    lines = _head("#", "source", "the sentence it rests on", "setting", "time point")
    for r in results:
        c = r.claim
        lines.append(_row([c.number, c.source, f'"{c.quote}"', c.setting, c.time_point]))
    return "\n".join(lines)


def identities_table(checks: list[IdentityResult]) -> str:
    """The identities: checks of this code, apart from the claims."""
    lines = _head("check", "identity", "source", "holds", "largest difference", "tolerance", "pairs")
    for c in checks:
        lines.append(_row([c.key, c.statement, IDENTITY_SOURCE, f"**{c.holds_text}**", num(c.worst),
                           f"{c.tolerance:g}", c.pairs]))
    return "\n".join(lines)


def pace_table(exps: dict[str, ExpRuns]) -> str:
    """Median step norm per experiment, layer and arm, and the baseline's ratio to the control's."""
    arms = list(dict.fromkeys(a for e in exps.values() for a in e.arms))
    lines = _head("experiment", "layer", *[f"{a} median step norm" for a in arms], "baseline / control", "flag")
    for e in exps.values():
        for p in D.paces(e):
            norms = [num(p.norms[a]) if a in p.norms else "" for a in arms]
            ratio = f"{p.ratio:.3g}" if math.isfinite(p.ratio) else "n/a"
            flag = f"**baseline {1 / p.ratio:.0f}x slower**" if p.slow else ""
            lines.append(_row([e.name, p.layer, *norms, ratio, flag]))
    return "\n".join(lines)


ARM_KEYS = (("train_loss", "train loss"), ("test_loss", "test loss"), ("test_accuracy", "test accuracy"),
            ("feature_quality", "feature quality"))


def arms_table(exp: ExpRuns) -> str:
    """One experiment's arms at the last step: UC-NFA per layer, losses, accuracy, feature quality."""
    layers = layers_of(exp.arm(BASELINE))
    keys = [(k, name) for k, name in ARM_KEYS if any(
        math.isfinite(mean_final(g, k).mean) for g in exp.arms.values())]
    lines = _head("arm", *[f"UC-NFA L{l}" for l in layers], *[name for _, name in keys])
    for arm, g in exp.arms.items():
        cells = [mean_final(g, "uc_nfa", l) for l in layers] + [mean_final(g, k) for k, _ in keys]
        lines.append(_row([arm, *[str(c) for c in cells]]))
    return "\n".join(lines)


def arms_change_table(exp: ExpRuns) -> str:
    """Per arm and layer: UC-NFA at the early point -> last step, mean over seeds."""
    layers = layers_of(exp.arm(BASELINE))
    lines = _head("arm", *[f"UC-NFA L{l}: early -> last" for l in layers])
    for arm, g in exp.arms.items():
        cells = []
        for l in layers:
            a, b = D.state(g, l, exp.early_step)["uc_nfa"], D.state(g, l, D.last_step(g))["uc_nfa"]
            cells.append(f"{num(a)} -> {num(b)} ({signed(b - a)})")
        lines.append(_row([arm, *cells]))
    return "\n".join(lines)


def baseline_diagnostics_table(exps: dict[str, ExpRuns]) -> str:
    """Baseline arm per experiment and layer at the early point and the last step: the quantities reasons use."""
    lines = _head("experiment", "layer", "step", "UC-NFA (SE)", "C-NFA (SE)", "rho(NFM, I)", "rho(AGOP, I)",
                  "‖dW‖/‖W‖", "centered share")
    for e in exps.values():
        g = e.arm(BASELINE)
        for l in layers_of(g):
            for label, step in (("early", e.early_step), ("last", D.last_step(g))):
                s = D.state(g, l, step)
                lines.append(_row([e.name, l, label, f"{num(s['uc_nfa'])} ({num(s['uc_nfa_se'])})",
                                   f"{num(s['c_nfa'])} ({num(s['c_nfa_se'])})", num(s["nfm_identity"]),
                                   num(s["agop_identity"]), num(s["rel_movement"]), num(s["centered_share"])]))
    return "\n".join(lines)
