"""Claims 4 to 6: SLO against the baseline, from one initialisation, with the control beside it.

Three arms share the seed (so the initial weights and the batch order): the baseline
optimiser, the control (SLO with boost 1: normalised steps, no boost) and SLO. A claim is
judged against the baseline, as the paper compares; the control says how much of a gain
comes from the boost rather than from normalising steps, and a baseline whose steps are
far smaller than the control's is flagged (``diagnose.slow_baseline_flag``).
"""

from __future__ import annotations

import math

from app.reproduce import diagnose as D
from app.reproduce.claims import (Case, ClaimResult, Stat, Verdict, count_positive, narrow_reason, no_data,
                                  num, quad)
from app.reproduce.dynamics import BASELINE, layers_of
from app.reproduce.results import ExpRuns, Group, last_defined_step
from app.reproduce.results import last_value as final_value

CONTROL = "control"


def slo_arm(layer: int) -> str:
    """The name of the arm with SLO targeted at ``layer``."""
    return f"slo{layer}"


def targets(exp: ExpRuns) -> list[int]:
    """The layers some SLO arm of the experiment targets."""
    return sorted(int(a[3:]) for a in exp.arms if a.startswith("slo") and a[3:].isdigit())


def final_se(h, key: str, layer: int) -> float:
    """The sampling SE of ``key`` at the last measured step (NaN when not measured)."""
    return final_value(h, f"{key}_se", layer) if key in ("uc_nfa", "c_nfa") else math.nan


def gain_case(exp: ExpRuns, arm: str, key: str, layer: int, seed: int, cell: str) -> Case:
    """Final ``key`` of ``arm`` minus the baseline's, same seed, with the SE of the difference."""
    base, other = exp.arm(BASELINE)[seed], exp.arm(arm)[seed]
    value = final_value(other, key, layer) - final_value(base, key, layer)
    return Case(cell, seed, value, quad(final_se(other, key, layer), final_se(base, key, layer)))


def _paired_seeds(exp: ExpRuns, arm: str) -> list[int]:
    return [s for s in sorted(exp.arm(BASELINE)) if s in exp.arm(arm)]


def mean_final(group: Group, key: str, layer: int = 1) -> Stat:
    """Final value over seeds."""
    return Stat.of(final_value(h, key, layer) for h in group.values())


def arms_text(exp: ExpRuns, key: str, layer: int, arms: list[str]) -> str:
    """``baseline 0.55 / control 0.52 / slo1 0.78`` (final, mean over seeds)."""
    return " / ".join(f"{a} {num(mean_final(exp.arm(a), key, layer).mean)}" for a in arms if exp.arm(a))


def boost_effect(exp: ExpRuns, arm: str, key: str, layer: int) -> str:
    """SLO minus control and control minus baseline (mean over seeds): where a gain comes from."""
    if not exp.arm(CONTROL):
        return ""
    slo_c = Stat.of(final_value(exp.arm(arm)[s], key, layer) - final_value(exp.arm(CONTROL)[s], key, layer)
                    for s in _paired_seeds(exp, arm) if s in exp.arm(CONTROL))
    ctl_b = Stat.of(gain_case(exp, CONTROL, key, layer, s, "").value for s in _paired_seeds(exp, CONTROL))
    return f"boost (SLO - control) {slo_c.signed()}, normalised steps (control - baseline) {ctl_b.signed()}"


def _flags(exps) -> tuple[str, ...]:
    return tuple(f for f in (D.slow_baseline_flag(e) for e in exps) if f)


def _result(number: int, cases: list[Case], criterion: str, detail: str, reasons: list[str],
            flags: tuple[str, ...]) -> ClaimResult:
    verdict = Verdict.of(cases)
    detail += f". Positive in {count_positive(cases)} cases; weakest: {verdict.weakest}; per-seed margin: " \
              f"{verdict.margins_text()}"
    reason = ". ".join(t for t in ("; ".join(r for r in reasons if r), narrow_reason(verdict)) if t)
    return ClaimResult(number, verdict, criterion, detail, reason, flags)


def _why_no_gain(exp: ExpRuns, arm: str, key: str, layer: int, cases: list[Case]) -> str:
    bad = [c for c in cases if not c.positive]
    if not bad:
        return ""
    dead = [(s, h) for s, h in exp.arm(arm).items() if math.isnan(final_value(h, key, layer))]
    if dead:
        s, h = dead[0]
        return (f"{exp.name} layer {layer}: {key} of {arm} is undefined at the last step (step {h.last_step}) in "
                f"{len(dead)} seed(s): its AGOP is 0, the network has a layer of dead units (K = 0); last defined "
                f"at step {last_defined_step(h, key, layer)} (seed {s})")
    return (f"{exp.name} layer {layer}: {key} {arms_text(exp, key, layer, [BASELINE, CONTROL, arm])} at the end; "
            f"{'; '.join(c.text() for c in bad)}; {boost_effect(exp, arm, key, layer)}")


# -- claim 4 --------------------------------------------------------------------------------

def check_slo_layers(exps: dict[str, ExpRuns]) -> ClaimResult:
    """Claim 4: SLO targeted at l ends with a higher layer-l UC-NFA than the baseline, every l and seed."""
    criterion = ("final UC-NFA of layer l with SLO targeted at l minus the baseline's (same seed, so the same "
                 "initial weights and batches) is positive for every targeted layer l, experiment and seed")
    cases, parts, reasons = [], [], []
    for e in exps.values():
        for l in targets(e):
            mine = [gain_case(e, slo_arm(l), "uc_nfa", l, s, f"{e.name} L{l}") for s in _paired_seeds(e, slo_arm(l))]
            cases += mine
            parts.append(f"{e.name} L{l}: {arms_text(e, 'uc_nfa', l, [BASELINE, CONTROL, slo_arm(l)])} "
                         f"(SLO - baseline {Stat.of(c.value for c in mine).signed()}; "
                         f"{boost_effect(e, slo_arm(l), 'uc_nfa', l)})")
            reasons.append(_why_no_gain(e, slo_arm(l), "uc_nfa", l, mine))
    if not cases:
        return no_data(4, criterion)
    detail = f"final UC-NFA of the targeted layer: {'; '.join(parts)}"
    return _result(4, cases, criterion, detail, reasons, _flags(exps.values()))


# -- claim 5 --------------------------------------------------------------------------------

def check_feature_quality(exps: dict[str, ExpRuns]) -> ClaimResult:
    """Claim 5: SLO on layer 1 ends with a higher feature quality than the baseline, every target and seed."""
    criterion = ("final feature quality rho(NFM_1, G*) with SLO on layer 1 minus the baseline's (same seed and "
                 "start) is positive for every synthetic target and seed; the control, train and test loss are "
                 "shown, not judged")
    cases, parts, reasons = [], [], []
    arm = slo_arm(1)
    for e in exps.values():
        mine = [gain_case(e, arm, "feature_quality", 1, s, e.name) for s in _paired_seeds(e, arm)]
        cases += mine
        arms = [BASELINE, CONTROL, arm]
        parts.append(f"{e.name}: quality {arms_text(e, 'feature_quality', 1, arms)} (SLO - baseline "
                     f"{Stat.of(c.value for c in mine).signed()}; {boost_effect(e, arm, 'feature_quality', 1)}), "
                     f"test loss {arms_text(e, 'test_loss', 1, arms)}, train loss {arms_text(e, 'train_loss', 1, arms)}")
        reasons.append(_why_no_gain(e, arm, "feature_quality", 1, mine))
    if not cases:
        return no_data(5, criterion)
    detail = f"final values, mean over seeds: {'; '.join(parts)}"
    return _result(5, cases, criterion, detail, reasons, _flags(exps.values()))


# -- claim 6 --------------------------------------------------------------------------------

def check_real_data(exp: ExpRuns | None) -> ClaimResult:
    """Claim 6: on real data, SLO on layer 1 ends with a higher layer-1 UC-NFA than the baseline, every seed."""
    name = exp.name if exp is not None else "the real-data experiment"
    criterion = (f"final layer-1 UC-NFA on {name} with SLO on layer 1 minus the baseline's (same seed and start) "
                 "is positive in every seed; the control, the other layers and test accuracy are shown")
    arm = slo_arm(1)
    if exp is None or not _paired_seeds(exp, arm):
        return no_data(6, criterion)
    cases = [gain_case(exp, arm, "uc_nfa", 1, s, exp.name) for s in _paired_seeds(exp, arm)]
    arms = [BASELINE, CONTROL, arm]
    layers = "; ".join(f"L{l} {arms_text(exp, 'uc_nfa', l, arms)}" for l in layers_of(exp.arm(BASELINE)))
    fell = [l for l in layers_of(exp.arm(BASELINE))[1:]
            if mean_final(exp.arm(arm), "uc_nfa", l).mean < mean_final(exp.arm(BASELINE), "uc_nfa", l).mean]
    side = (f"; SLO ends below the baseline in layer(s) {', '.join(map(str, fell))}" if fell else "")
    detail = (f"final UC-NFA per layer: {layers}{side}. Layer 1: SLO - baseline "
              f"{Stat.of(c.value for c in cases).signed()}, {boost_effect(exp, arm, 'uc_nfa', 1)}. Test accuracy "
              f"{arms_text(exp, 'test_accuracy', 1, arms)}, test loss {arms_text(exp, 'test_loss', 1, arms)}, "
              f"train loss {arms_text(exp, 'train_loss', 1, arms)}")
    return _result(6, cases, criterion, detail, [_why_no_gain(exp, arm, "uc_nfa", 1, cases)], _flags([exp]))
