"""``reproduce``'s claim checks on synthetic histories: each where it must hold and where it must
not, asserting the verdict, the value, each seed's margin and the measured reason a reader sees."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.reproduce import comparisons as S
from app.reproduce import dynamics as Y
from app.reproduce.claims import CLEAR_FLOOR, Case, Verdict
from app.reproduce.results import ExpRuns, early_step
from core.history import History

STEPS = np.arange(0, 1001, 50)
WARMUP = 50
"""The early point of these histories: the first measurement after a 50-step warm-up."""


def history(layers: dict[int, dict[str, np.ndarray]], steps: np.ndarray = STEPS) -> History:
    """A History whose layer l has the given per-step series (missing keys: None)."""
    rows = []
    for i, step in enumerate(steps):
        for layer, series in layers.items():
            row = {"step": int(step), "layer": layer}
            for key, values in series.items():
                v = values[i] if np.ndim(values) else values
                row[key] = None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)
            rows.append(row)
    return History(rows)


def ramp(start: float, end: float, n: int = STEPS.size) -> np.ndarray:
    return np.linspace(start, end, n)


def layer(uc, c, **extra) -> dict[str, np.ndarray]:
    """A layer's series; C-NFA undefined at step 0, as at initialisation."""
    c = np.array(np.broadcast_to(c, STEPS.shape), dtype=object)
    c[0] = None
    return {"uc_nfa": np.broadcast_to(uc, STEPS.shape).astype(float), "c_nfa": c, **extra}


def exp(name: str, arms: dict[str, dict[int, History]], early: int = WARMUP, dims=(64, 256)) -> ExpRuns:
    return ExpRuns(name, arms, early, *dims)


# -- verdicts ---------------------------------------------------------------------------------

def test_verdict_margins_clear_and_narrow():
    cases = [Case("a L1", 0, 0.30, 0.01), Case("a L2", 0, 0.05, 0.01), Case("a L1", 1, 0.25, 0.02),
             Case("a L2", 1, 0.03, 0.02)]
    v = Verdict.of(cases)
    assert v.holds is True and v.clear is False  # 0.03 is within 2 SE (0.04) of 0
    assert v.margins == {0: 0.05, 1: 0.03}
    assert v.weakest == "a L2" and v.value.mean == pytest.approx(0.04)
    assert [c.value for c in v.narrow] == [0.03]
    assert v.margins_text() == "seed 0 +0.0500, seed 1 +0.0300"
    assert Verdict.of([Case("a", 0, 0.05), Case("a", 1, 2 * CLEAR_FLOOR)]).clear is True  # no SE: the floor
    failing = Verdict.of([Case("a", 0, 0.2, 0.01), Case("a", 1, -0.001, 0.01)])
    assert failing.holds is False and failing.clear is False  # fails, but within noise
    assert Verdict.of([Case("a", 0, math.nan)]).holds is False


# -- claim 1 ----------------------------------------------------------------------------------

def test_claim1_holds_at_the_early_point_and_reports_each_seeds_margin():
    seeds = {s: history({1: layer(ramp(0.3, 0.8), 0.9, uc_nfa_se=0.01, c_nfa_se=0.01),
                         2: layer(ramp(0.2, 0.6), 0.9 + 0.01 * s)}) for s in range(3)}
    r = Y.check_early_centered({"e": exp("e", {"baseline": seeds})})
    assert r.holds is True and r.clear_text == "clear"
    uc_early = ramp(0.3, 0.8)[1]  # step 50: the first measurement after the warm-up
    assert r.value.mean == pytest.approx(0.9 - uc_early)
    assert r.verdict.weakest == "e L1"
    assert r.verdict.margins == pytest.approx({s: 0.9 - uc_early for s in range(3)})
    assert "early point: e step 50" in r.detail and "Positive in 6/6" in r.detail
    assert r.reason == ""


def test_claim1_is_measured_at_the_end_of_the_warm_up_not_later():
    # C-NFA leads only up to step 100: the early point (step 50) decides, not the late crossing
    c = np.where(STEPS <= 100, 0.9, 0.1)
    h = history({1: layer(ramp(0.3, 0.95), c)})
    assert Y.check_early_centered({"e": exp("e", {"baseline": {0: h}})}).holds is True
    late = Y.check_early_centered({"e": exp("e", {"baseline": {0: h}}, early=150)})
    assert late.holds is False and late.value.mean == pytest.approx(0.1 - ramp(0.3, 0.95)[3])


def test_claim1_fails_with_the_identity_baseline_as_its_measured_reason():
    good = history({1: layer(ramp(0.3, 0.8), 0.9)})
    bad = history({1: layer(0.91, 0.85, nfm_identity=0.90, agop_identity=0.89, uc_nfa_se=0.002,
                            c_nfa_se=0.003)})
    r = Y.check_early_centered({"digits": exp("digits", {"baseline": {0: good, 1: bad}})})
    assert r.holds is False and r.clear_text == "clear"
    assert r.verdict.margins[1] == pytest.approx(-0.06)
    assert "fails in seed(s) 1: digits layer 1: C-NFA - UC-NFA -0.0600" in r.reason
    assert "UC-NFA is high from the identity baseline (rho(NFM, I) 0.9000, rho(AGOP, I) 0.8900)" in r.reason


# -- claim 2 ----------------------------------------------------------------------------------

def test_claim2_holds_when_layer1_rises_from_the_early_point():
    seeds = {s: history({1: layer(ramp(0.4, 0.7 + 0.01 * s), 0.9), 2: layer(ramp(0.5, 0.3), 0.9)})
             for s in range(3)}
    r = Y.check_uc_rises({"e": exp("e", {"baseline": seeds})})
    assert r.holds is True  # layer 2 falling is shown, not judged
    early = ramp(0.4, 0.7)[1]
    assert r.verdict.margins[0] == pytest.approx(0.7 - early)
    assert "L2 0.4900 -> 0.3000 (-0.1900 ± " in r.detail


def test_claim2_fails_with_identity_baseline_and_small_movement_as_the_reason():
    falls = {1: layer(ramp(0.91, 0.55), 0.9, nfm_identity=ramp(0.90, 0.60), agop_identity=ramp(0.89, 0.5),
                      rel_movement=ramp(0.0, 0.2), centered_share=ramp(0.0, 0.06))}
    r = Y.check_uc_rises({"digits": exp("digits", {"baseline": {0: history(falls), 1: history(falls)}})})
    assert r.holds is False
    assert r.value.mean == pytest.approx(0.55 - ramp(0.91, 0.55)[1])
    assert "digits layer 1: UC-NFA 0.8920 at the early point" in r.reason
    assert ("NFM and AGOP both start close to a multiple of the identity (rho(NFM, I) 0.8850, rho(AGOP, I) "
            "0.8705; input dim 64 < width 256)") in r.reason
    assert "||dW||/||W|| is 0.2000 and the centered term is 0.0600 of the NFM; a small share" in r.reason


def test_claim2_fails_in_one_experiment_only():
    up = history({1: layer(ramp(0.4, 0.7), 0.9)})
    down = history({1: layer(ramp(0.6, 0.5), 0.9, nfm_identity=0.3, agop_identity=0.2)})
    r = Y.check_uc_rises({"a": exp("a", {"baseline": {0: up, 1: up}}),
                          "b": exp("b", {"baseline": {0: up, 1: down}}, dims=(100, 64))})
    assert r.holds is False and r.verdict.weakest == "b"
    assert "b layer 1" in r.reason and "a layer 1" not in r.reason
    assert "identity baseline at the early point: rho(NFM, I) 0.3000, rho(AGOP, I) 0.2000" in r.reason


# -- claim 3 ----------------------------------------------------------------------------------

def share_history(closes: bool, seed: int) -> History:
    rng = np.random.default_rng(seed)
    share = ramp(0.0, 0.8)
    gap = (0.6 - 0.7 * share if closes else 0.05 + 0.7 * share) + 0.1 * rng.standard_normal(share.size)
    return history({l: layer(0.3, 0.3 + gap, centered_share=share) for l in (1, 2)})


def three_arms(make) -> dict[str, dict[int, History]]:
    return {a: {s: make(s) for s in range(2)} for a in ("baseline", "control", "slo1")}


def test_claim3_holds_when_the_gap_closes_as_the_share_grows():
    r_exps = {n: exp(n, three_arms(lambda s: share_history(True, s))) for n in "abc"}
    r = Y.check_share_gap(r_exps)
    assert r.holds is True and r.clear_text == "clear"
    share, gap, n = Y.share_gap_points(list(r_exps.values()), 0)
    assert n == 3 * 3 * 2 and share.size == n * (STEPS.size - 1)  # arms x experiments x layers, from step 50
    assert r.verdict.margins[0] == pytest.approx(Y.spearman(share, -gap)) and r.value.mean > 0.7
    assert f"Spearman per seed: seed 0 {r.verdict.margins[0]:+.4f} (SE " in r.detail


def test_claim3_fails_when_the_gap_widens_in_one_seed():
    arms = {a: {0: share_history(True, 0), 1: share_history(False, 1)} for a in ("baseline", "control")}
    r = Y.check_share_gap({"a": exp("a", arms)})
    assert r.holds is False and r.verdict.margins[1] < -0.7
    assert "did not close as the centered share grew in seed(s) 1" in r.reason


def test_spearman_and_bins():
    share, gap = np.array([0.05, 0.15, 0.5, 0.55, 0.9]), np.array([0.5, 0.4, 0.1, 0.2, 0.0])
    bins = Y.binned_gaps(share, gap)
    assert [(lo, n) for lo, _, _, n in bins] == [(0.0, 1), (0.1, 1), (0.4, 2), (0.8, 1)]
    assert Y.spearman(share, -gap) == pytest.approx(0.9)
    assert math.isnan(Y.spearman(share[:2], gap[:2]))
    assert Y._ranks(np.array([3.0, 1.0, 1.0, 2.0])).tolist() == [4.0, 1.5, 1.5, 3.0]
    assert Y.spearman_se(0.5, 109) == pytest.approx(0.75 * 0.1)
    assert math.isnan(Y.spearman_se(0.5, 3))


# -- claims 4 to 6 ----------------------------------------------------------------------------

def net(uc1: float, uc2: float, fq: float = 0.5, loss: float = 0.1, acc: float = 0.9, step: float = 0.02):
    """A two-layer history ending at the given values; every layer moves ``step`` per step."""
    return history({1: {**layer(ramp(0.5, uc1), 0.9), "feature_quality": ramp(0.3, fq), "test_loss": ramp(1, loss),
                        "train_loss": ramp(1, loss / 2), "test_accuracy": ramp(0.1, acc), "step_norm": step,
                        "centered_share": ramp(0, 0.5)},
                    2: {**layer(ramp(0.3, uc2), 0.9), "step_norm": step}})


def test_claim4_holds_when_each_target_layer_gains_and_shows_the_control():
    arms = {"baseline": {s: net(0.6, 0.4) for s in range(3)}, "control": {s: net(0.55, 0.45) for s in range(3)},
            "slo1": {s: net(0.8, 0.4) for s in range(3)}, "slo2": {s: net(0.6, 0.7) for s in range(3)}}
    r = S.check_slo_layers({"q": exp("q", arms)})
    assert r.holds is True and r.clear_text == "clear" and r.flags == ()
    assert r.value.mean == pytest.approx(0.2)  # the weaker of +0.2 (layer 1) and +0.3 (layer 2)
    assert r.verdict.margins == pytest.approx({0: 0.2, 1: 0.2, 2: 0.2})
    assert "q L1: baseline 0.6000 / control 0.5500 / slo1 0.8000" in r.detail
    assert "boost (SLO - control) +0.2500 ± 0.0000, normalised steps (control - baseline) -0.0500" in r.detail


def test_claim4_fails_with_the_arms_as_the_reason():
    arms = {"baseline": {s: net(0.6, 0.4) for s in range(2)}, "control": {s: net(0.6, 0.5) for s in range(2)},
            "slo1": {s: net(0.8, 0.4) for s in range(2)}, "slo2": {0: net(0.6, 0.7), 1: net(0.6, 0.3)}}
    r = S.check_slo_layers({"q": exp("q", arms)})
    assert r.holds is False and r.verdict.margins[1] == pytest.approx(-0.1)
    assert "q layer 2: uc_nfa baseline 0.4000 / control 0.5000 / slo2 0.5000 at the end; q L2 seed 1: -0.1000" \
        in r.reason


def test_a_slow_baseline_is_flagged():
    arms = {"baseline": {0: net(0.6, 0.4, step=0.0004)}, "control": {0: net(0.6, 0.4)},
            "slo1": {0: net(0.8, 0.4, step=0.2)}}
    r = S.check_real_data(exp("digits", arms))
    assert r.holds is True
    assert r.flags == ("digits: the baseline's median step norm is below 0.1x the control's in 2 layer(s) "
                       "(layer 1: 4.00e-04 vs 0.0200, 50x smaller), so a gain over it may come from moving "
                       "faster; compare with the control",)


def test_claim5_holds_and_reports_losses_whatever_they_show():
    arms = {"baseline": {s: net(0.6, 0.4, fq=0.6, loss=0.1) for s in range(3)},
            "control": {s: net(0.6, 0.4, fq=0.62, loss=0.2) for s in range(3)},
            "slo1": {s: net(0.8, 0.4, fq=0.8, loss=0.3) for s in range(3)}}
    r = S.check_feature_quality({t: exp(t, arms) for t in ("a", "b")})
    assert r.holds is True and r.value.mean == pytest.approx(0.2)
    assert "a: quality baseline 0.6000 / control 0.6200 / slo1 0.8000" in r.detail
    assert "test loss baseline 0.1000 / control 0.2000 / slo1 0.3000" in r.detail


def test_claim5_fails_when_quality_drops_for_one_target():
    base = {"baseline": {s: net(0.6, 0.4, fq=0.6) for s in range(2)}}
    r = S.check_feature_quality({"a": exp("a", {**base, "slo1": {s: net(0.8, 0.4, fq=0.8) for s in range(2)}}),
                                 "b": exp("b", {**base, "slo1": {s: net(0.8, 0.4, fq=0.5) for s in range(2)}})})
    assert r.holds is False and r.verdict.weakest == "b"
    assert "b layer 1: feature_quality baseline 0.6000 / slo1 0.5000" in r.reason


def test_claim6_holds_fails_and_names_layers_that_fall():
    base = {s: net(0.6, 0.5) for s in range(3)}
    r = S.check_real_data(exp("digits", {"baseline": base, "slo1": {s: net(0.7, 0.2) for s in range(3)}}))
    assert r.holds is True and r.value.mean == pytest.approx(0.1)
    assert "SLO ends below the baseline in layer(s) 2" in r.detail
    mixed = {0: net(0.7, 0.5), 1: net(0.5, 0.5), 2: net(0.7, 0.5)}
    r = S.check_real_data(exp("digits", {"baseline": base, "slo1": mixed}))
    assert r.holds is False and "Positive in 2/3" in r.detail
    assert r.verdict.margins == pytest.approx({0: 0.1, 1: -0.1, 2: 0.1})


def test_missing_runs_give_na_not_a_verdict():
    assert S.check_real_data(None).holds is None
    assert Y.check_uc_rises({}).holds_text == "n/a"


def test_early_step_is_the_end_of_the_warm_up():
    assert early_step({"optim": {"warmup_steps": 11}}) == 11
    assert early_step({"optim": {"warmup_steps": 0}}) == 1
    assert early_step({}) == 1
