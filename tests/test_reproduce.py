"""``reproduce``: every claim check on synthetic histories (where it must hold and where it
must not), the claims table end to end at the test-only ``tiny`` scale, and the runner's
cluster contract (config JSON in, run folder out, analysis from the folders alone)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from app.reproduce import claims as C
from app.reproduce import main as reproduce_main
from app.reproduce.plan import SCALES, build_plan
from app.reproduce.report import claims_csv, read_claims_csv
from core.config import ConfigError
from core.history import History

STEPS = np.arange(0, 1001, 50)


def history(layers: dict[int, dict[str, np.ndarray]], steps: np.ndarray = STEPS) -> History:
    """A History whose layer l has the given per-step series (missing keys: None)."""
    rows = []
    for i, step in enumerate(steps):
        for layer, series in layers.items():
            row = {"step": int(step), "layer": layer}
            for key, values in series.items():
                v = values[i]
                row[key] = None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)
            rows.append(row)
    return History(rows)


def ramp(start: float, end: float, n: int = STEPS.size) -> np.ndarray:
    return np.linspace(start, end, n)


def nfa_layer(uc: np.ndarray, c: np.ndarray, share: np.ndarray | None = None) -> dict[str, np.ndarray]:
    c = c.astype(object)
    c[0] = None  # C-NFA is undefined at initialisation
    out = {"uc_nfa": uc, "c_nfa": c}
    if share is not None:
        out["centered_share"] = share
    return out


# -- claim 1 ---------------------------------------------------------------------------

def test_claim1_holds_when_centered_leads_early_in_every_layer():
    seeds = {s: history({1: nfa_layer(ramp(0.3, 0.8), ramp(0.9, 0.9)),
                         2: nfa_layer(ramp(0.2, 0.6), ramp(0.7, 0.8))}) for s in range(3)}
    r = C.check_early_centered({"exp": seeds})
    assert r.holds is True
    assert r.value.mean > 0 and r.value.n == 3


def test_claim1_fails_when_one_layer_lags_in_one_seed():
    good = history({1: nfa_layer(ramp(0.3, 0.8), ramp(0.9, 0.9)), 2: nfa_layer(ramp(0.2, 0.6), ramp(0.7, 0.8))})
    bad = history({1: nfa_layer(ramp(0.3, 0.8), ramp(0.9, 0.9)), 2: nfa_layer(ramp(0.8, 0.8), ramp(0.5, 0.9))})
    r = C.check_early_centered({"exp": {0: good, 1: good, 2: bad}})
    assert r.holds is False
    assert "5/6" in r.detail


def test_claim1_uses_only_the_early_window():
    late_cross = history({1: nfa_layer(ramp(0.3, 0.95), np.where(STEPS <= 100, 0.9, 0.5).astype(float))})
    assert C.early_gap(late_cross, 1) == pytest.approx(0.9 - np.mean(ramp(0.3, 0.95)[1:3]))
    assert C.check_early_centered({"exp": {0: late_cross}}).holds is True


# -- claim 2 ---------------------------------------------------------------------------

def test_claim2_holds_when_layer1_uc_rises():
    seeds = {s: history({1: nfa_layer(ramp(0.4, 0.7 + 0.01 * s), ramp(0.9, 0.9)),
                         2: nfa_layer(ramp(0.5, 0.3), ramp(0.9, 0.9))}) for s in range(3)}
    r = C.check_uc_rises({"exp": seeds})
    assert r.holds is True  # layer 2 falling is shown, not judged
    assert r.value.mean == pytest.approx(0.31)
    assert "L2 0.500 -> 0.300 (-0.2000 ± " in r.detail


def test_claim2_fails_when_layer1_uc_falls_in_one_seed():
    up = history({1: nfa_layer(ramp(0.4, 0.7), ramp(0.9, 0.9))})
    down = history({1: nfa_layer(ramp(0.6, 0.5), ramp(0.9, 0.9))})
    assert C.check_uc_rises({"a": {0: up, 1: up}, "b": {0: up, 1: down}}).holds is False


# -- claim 3 ---------------------------------------------------------------------------

def final_arrays(rng: np.random.Generator, shapes=((30, 8), (30, 30))) -> dict[str, np.ndarray]:
    out = {}
    for l, (k, d) in enumerate(shapes, start=1):
        w = rng.standard_normal((k, d))
        a = rng.standard_normal((k, k))
        kk = a @ a.T / k
        out.update({f"layer{l}.W": w, f"layer{l}.K": kk, f"layer{l}.nfm": w.T @ w, f"layer{l}.agop": w.T @ kk @ w})
    return out


def test_claim3_holds_for_consistent_matrices():
    rng = np.random.default_rng(0)
    r = C.check_identity({0: [final_arrays(rng)], 1: [final_arrays(rng), final_arrays(rng)]})
    assert r.holds is True
    assert r.value.mean < 1e-12


def test_claim3_fails_when_the_agop_is_not_w_k_w():
    rng = np.random.default_rng(1)
    broken = final_arrays(rng)
    broken["layer2.agop"] = broken["layer2.agop"] + np.eye(30)
    r = C.check_identity({0: [final_arrays(rng)], 1: [broken]})
    assert r.holds is False
    assert r.value.mean > 1e-6


# -- claim 4 ---------------------------------------------------------------------------

def shares_history(gap_falls: bool, seed: int) -> History:
    rng = np.random.default_rng(seed)
    share = ramp(0.0, 0.8)
    gap = (0.6 - 0.7 * share if gap_falls else 0.05 + 0.7 * share) + 0.01 * rng.standard_normal(share.size)
    uc = ramp(0.3, 0.3)
    return history({1: nfa_layer(uc, uc + gap, share), 2: nfa_layer(uc, uc + gap, share)})


def test_claim4_holds_when_the_gap_closes_as_the_share_grows():
    r = C.check_share_gap({s: [shares_history(True, s)] for s in range(3)})
    assert r.holds is True
    assert r.value.mean < -0.9


def test_claim4_fails_when_the_gap_widens():
    r = C.check_share_gap({0: [shares_history(True, 0)], 1: [shares_history(False, 1)]})
    assert r.holds is False


def test_binned_gaps_and_spearman():
    share, gap = np.array([0.05, 0.15, 0.5, 0.55, 0.9]), np.array([0.5, 0.4, 0.1, 0.2, 0.0])
    bins = C.binned_gaps(share, gap)
    assert [(lo, n) for lo, _, _, n in bins] == [(0.0, 1), (0.1, 1), (0.4, 2), (0.8, 1)]
    assert bins[2][2] == pytest.approx(0.15)
    assert C.spearman(share, gap) == pytest.approx(-0.9)
    assert math.isnan(C.spearman(share[:2], gap[:2]))
    assert C._ranks(np.array([3.0, 1.0, 1.0, 2.0])).tolist() == [4.0, 1.5, 1.5, 3.0]  # ties share a rank


# -- claims 5 to 7 ---------------------------------------------------------------------

def two_layer(uc1_end: float, uc2_end: float, fq_end: float = 0.5, loss: float = 0.1) -> History:
    return history({1: {**nfa_layer(ramp(0.5, uc1_end), ramp(0.9, 0.9)), "feature_quality": ramp(0.3, fq_end),
                        "test_loss": ramp(1.0, loss), "test_accuracy": ramp(0.1, 0.9)},
                    2: {**nfa_layer(ramp(0.3, uc2_end), ramp(0.9, 0.9)), "test_loss": ramp(1.0, loss)}})


def test_claim5_holds_when_each_target_layer_gains():
    base = {"exp": {s: two_layer(0.6, 0.4) for s in range(3)}}
    slo = {"exp": {1: {s: two_layer(0.8, 0.4) for s in range(3)}, 2: {s: two_layer(0.6, 0.7) for s in range(3)}}}
    r = C.check_slo_layers(base, slo)
    assert r.holds is True
    assert r.value.mean == pytest.approx(0.2)  # the weaker of +0.2 (layer 1) and +0.3 (layer 2)


def test_claim5_fails_when_one_target_layer_does_not_gain():
    base = {"exp": {s: two_layer(0.6, 0.4) for s in range(2)}}
    slo = {"exp": {1: {s: two_layer(0.8, 0.4) for s in range(2)}, 2: {0: two_layer(0.6, 0.7), 1: two_layer(0.6, 0.3)}}}
    assert C.check_slo_layers(base, slo).holds is False


def test_claim6_holds_and_reports_the_test_loss_whatever_it_shows():
    base = {t: {s: two_layer(0.6, 0.4, fq_end=0.6, loss=0.1) for s in range(3)} for t in ("a", "b")}
    slo = {t: {s: two_layer(0.8, 0.4, fq_end=0.8, loss=0.3) for s in range(3)} for t in ("a", "b")}
    r = C.check_feature_quality(base, slo)
    assert r.holds is True  # a worse test loss is reported, not judged
    assert "test loss 0.1000 ± " in r.detail and "-> 0.3000 ± 0.0000" in r.detail


def test_claim6_fails_when_quality_drops_for_one_target():
    base = {t: {s: two_layer(0.6, 0.4, fq_end=0.6) for s in range(2)} for t in ("a", "b")}
    slo = {"a": {s: two_layer(0.8, 0.4, fq_end=0.8) for s in range(2)},
           "b": {s: two_layer(0.8, 0.4, fq_end=0.5) for s in range(2)}}
    r = C.check_feature_quality(base, slo)
    assert r.holds is False and "smallest gain: b" in r.detail


def test_claim7_holds_and_fails_on_layer_one():
    base = {s: two_layer(0.6, 0.5) for s in range(3)}
    assert C.check_real_data(base, {s: two_layer(0.7, 0.2) for s in range(3)}).holds is True
    mixed = {0: two_layer(0.7, 0.5), 1: two_layer(0.5, 0.5), 2: two_layer(0.7, 0.5)}
    r = C.check_real_data(base, mixed)
    assert r.holds is False and "2/3" in r.detail


def test_missing_runs_give_na_not_a_verdict():
    assert C.check_real_data({}, {}).holds is None
    assert C.check_uc_rises({}).holds_text == "n/a"


# -- the table and the plan ------------------------------------------------------------

def test_claims_csv_round_trip(tmp_path):
    results = [C.ClaimResult(1, True, C.Stat.of([0.1, 0.3]), "a, b \"quoted\"", "x"),
               C.ClaimResult(3, False, C.Stat.of([2e-7]), "tiny", "x"),
               C.ClaimResult(7, None, None, "no runs", "x")]
    path = tmp_path / "claims.csv"
    path.write_text(claims_csv(results))
    rows = read_claims_csv(path)
    assert [r["holds"] for r in rows] == [True, False, None]
    assert rows[0]["mean"] == pytest.approx(0.2) and rows[0]["std"] == pytest.approx(0.1414, abs=1e-4)
    assert rows[1]["mean"] == pytest.approx(2e-7) and rows[1]["std"] == 0
    assert math.isnan(rows[2]["mean"]) and rows[0]["detail"] == "a, b \"quoted\""


def test_plan_pairs_share_everything_but_the_optimiser():
    specs = build_plan(SCALES["quick"], seeds=2)
    assert len({s.id for s in specs}) == len(specs)
    by = {(s.experiment, s.variant, s.seed): s.config.to_dict() for s in specs}
    sgd, slo = by[("deep3", "sgd", 1)], by[("deep3", "slo3", 1)]
    assert slo["optim"]["slo"] == {**sgd["optim"]["slo"], "enabled": True, "target_layer": 3}
    assert {k: v for k, v in sgd.items() if k != "optim"} == {k: v for k, v in slo.items() if k != "optim"}
    full = build_plan(SCALES["full"])
    assert SCALES["full"].seeds >= 3 and {s.seed for s in full} == set(range(SCALES["full"].seeds))
    assert all(f.config.steps > q.config.steps for f, q in zip(full, specs))


def test_bad_arguments_are_user_errors(tmp_path):
    with pytest.raises(ConfigError, match="--seeds"):
        reproduce_main(tmp_path, seeds=0)
    with pytest.raises(ConfigError, match="--jobs"):
        reproduce_main(tmp_path, jobs=0)


# -- end to end (tiny scale) -----------------------------------------------------------

def test_tiny_reproduction_writes_a_parsable_claims_table(tmp_path):
    out = tmp_path / "rep"
    assert reproduce_main(out, scale="tiny", jobs=2, quiet=True) == 0
    rows = read_claims_csv(out / "claims.csv")
    assert [r["number"] for r in rows] == list(range(1, 8))
    assert all(r["holds"] in (True, False) for r in rows)  # every claim was checked
    assert all(math.isfinite(r["mean"]) and math.isfinite(r["std"]) for r in rows)
    assert rows[2]["holds"] is True  # the identity is exact whatever the training did
    report = (out / "report.md").read_text()
    for n in range(1, 8):
        assert (out / f"claim{n}.png").stat().st_size > 0
        assert f"## Claim {n}:" in report
    assert "Machine:" in report and "Run time:" in report
    plan = json.loads((out / "plan.json").read_text())
    for row in plan:
        assert (out / row["run"] / "metrics.csv").is_file() and (out / row["run"] / "final.npz").is_file()

    # the analysis needs only the folders: drop everything else and rebuild the table
    before = (out / "claims.csv").read_text()
    for name in ("claims.csv", "report.md", "runs.csv"):
        (out / name).unlink()
    from app.reproduce.pipeline import analyse_folder

    assert analyse_folder(out, figures=False) == 0
    assert (out / "claims.csv").read_text() == before


def test_runner_turns_a_config_json_into_a_run_folder(tmp_path):
    import torch

    from app.reproduce.runner import execute_restoring_threads, main as runner_main

    threads = torch.get_num_threads()
    spec = build_plan(SCALES["tiny"], seeds=1)[0]
    config = tmp_path / "c.json"
    config.write_text(spec.config.to_json())
    assert runner_main([str(config), str(tmp_path / "run")]) == 0
    assert {"config.json", "metrics.csv", "final.npz"} <= {p.name for p in (tmp_path / "run").iterdir()}
    outcome = execute_restoring_threads(spec.config.to_json(), str(tmp_path / "again"), "again")
    assert outcome.status == "ok" and outcome.id == "again"
    assert (tmp_path / "again" / "metrics.csv").read_text() == (tmp_path / "run" / "metrics.csv").read_text()
    assert torch.get_num_threads() == threads
