"""``reproduce``: identities, the report (every claim's source, setting and time point; identities
apart), the plan (three arms from one initialisation; ``quick`` a subsample of ``full``), the
claims table end to end at the test-only ``tiny`` scale, and the runner's cluster contract
(config JSON in, run folder out, analysis from the folders alone). The claim checks themselves
are in test_reproduce_claims.py."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from app.reproduce import identities as I
from app.reproduce import main as reproduce_main
from app.reproduce.claims import CLAIMS
from app.reproduce.pipeline import check_all
from app.reproduce.plan import SCALES, build_plan
from app.reproduce.report import Analysis, Timing, claims_csv, read_claims_csv, readme_section, report_markdown
from app.reproduce.results import Run
from core.config import ConfigError
from core.history import History


# -- identities: checks of this code, apart from the claims ----------------------------------

def final_arrays(rng: np.random.Generator, shapes=((30, 8), (30, 30))) -> dict[str, np.ndarray]:
    out = {}
    for l, (k, d) in enumerate(shapes, start=1):
        w = rng.standard_normal((k, d))
        a = rng.standard_normal((k, k))
        kk = a @ a.T / k
        out.update({f"layer{l}.W": w, f"layer{l}.K": kk, f"layer{l}.nfm": w.T @ w, f"layer{l}.agop": w.T @ kk @ w})
    return out


def test_alignment_identity_holds_for_consistent_matrices_and_fails_otherwise():
    rng = np.random.default_rng(0)
    r = I.check_alignment([final_arrays(rng) for _ in range(3)])
    assert r.holds is True and r.worst < 1e-12 and r.pairs == 6
    broken = final_arrays(rng)
    broken["layer2.agop"] = broken["layer2.agop"] + np.eye(30)
    r = I.check_alignment([final_arrays(rng), broken])
    assert r.holds is False and r.worst > 1e-3


def test_recompute_identity_compares_metrics_with_final_npz():
    rng = np.random.default_rng(2)
    final = final_arrays(rng)
    rhos = [I.pearson(final[f"layer{l}.nfm"], final[f"layer{l}.agop"]) for l in (1, 2)]
    hist = History([{"step": 0, "layer": l, "uc_nfa": 0.1} for l in (1, 2)]
                   + [{"step": 9, "layer": l, "uc_nfa": rhos[l - 1]} for l in (1, 2)])
    run = Run("e", "baseline", 0, 9, hist, final, {"measure": {"correlation": "pearson", "alpha": 1.0}})
    assert I.check_recompute([run]).holds is True
    off = History([{**r, "uc_nfa": r["uc_nfa"] + 1e-3} if r["step"] == 9 and r["layer"] == 2 else r for r in hist.rows])
    r = I.check_recompute([Run("e", "baseline", 0, 9, off, final, run.config)])
    assert r.holds is False and r.worst == pytest.approx(1e-3)
    assert I.check_recompute([Run("e", "b", 0, 9, hist, final, {"measure": {"alpha": 0.5}})]).holds is None


# -- the report: sources, settings, time points; identities apart -----------------------------

def synthetic_analysis() -> Analysis:
    from tests.test_reproduce_claims import exp, net

    arms = {"baseline": {s: net(0.6, 0.4) for s in range(2)}, "control": {s: net(0.6, 0.45) for s in range(2)},
            "slo1": {s: net(0.8, 0.3) for s in range(2)}, "slo2": {s: net(0.6, 0.7) for s in range(2)}}
    exps = {"paper-digits": exp("paper-digits", arms), "quickstart": exp("quickstart", arms)}
    rng = np.random.default_rng(0)
    return Analysis(check_all(exps), [I.check_alignment([final_arrays(rng)])], exps)


def test_every_claim_states_source_setting_and_time_point_and_identities_stand_apart(tmp_path):
    a = synthetic_analysis()
    specs = build_plan(SCALES["quick"], seeds=2)
    timing = Timing(10.0, 1.0, [1.0, 2.0], 2)
    text = report_markdown(a, specs, [], SCALES["quick"], timing, "cmd")
    assert [r.number for r in a.results] == list(range(1, 7))
    for r in a.results:
        section = text.split(f"## Claim {r.number}:")[1].split("\n## ")[0]
        assert f'*Source:* {r.claim.citation}.' in section and f'"{r.claim.quote}"' in section
        assert f"*Setting:* {r.claim.setting}." in section and f"*Time point:* {r.claim.time_point}." in section
        assert f"per-seed margin: {r.verdict.margins_text()}" in section
    assert CLAIMS[1].time_point.startswith("the paper code's early point: the first measurement after the warm-up")
    assert CLAIMS[2].source == "prior NFA work" and "Science 2024" in CLAIMS[2].citation
    claims_part, identities_part = text.split("## Identities: checks of this code, not claims")
    assert "rho(S^2, S U^T K U S)" not in claims_part.split("## Claim 1:")[0]  # not in the claims table
    assert "identity: a check of this code" in identities_part
    assert f"{sum(r.holds is True for r in a.results)} of 6 claims held" in text
    readme = readme_section(a, specs, timing, "cmd")
    assert "of 6 claims held" in readme and "Identities are checks of this code, not claims" in readme


def test_claims_csv_round_trip(tmp_path):
    a = synthetic_analysis()
    path = tmp_path / "claims.csv"
    path.write_text(claims_csv(a.results))
    rows = read_claims_csv(path)
    assert [r["number"] for r in rows] == list(range(1, 7))
    for row, r in zip(rows, a.results):
        assert row["holds"] is r.holds and row["margin"] == r.clear_text
        assert row["margins"] == pytest.approx(r.verdict.margins, abs=1e-4)
        assert row["source"] == r.claim.citation and row["time_point"] == r.claim.time_point
        assert row["mean"] == pytest.approx(r.value.mean, abs=1e-4)


# -- the plan: three arms from one initialisation; quick is a subsample of full ---------------

def test_plan_arms_share_everything_but_the_optimiser():
    specs = build_plan(SCALES["quick"], seeds=2)
    assert len({s.id for s in specs}) == len(specs)
    by = {(s.experiment, s.variant, s.seed): s.config.to_dict() for s in specs}
    base, control, slo2 = by[("quickstart", "baseline", 1)], by[("quickstart", "control", 1)], \
        by[("quickstart", "slo2", 1)]
    assert base["optim"]["slo"]["enabled"] is False
    assert control["optim"]["slo"] == {**base["optim"]["slo"], "enabled": True, "boost": 1.0}
    assert slo2["optim"]["slo"] == {**base["optim"]["slo"], "enabled": True, "target_layer": 2}
    for other in (control, slo2):
        assert {k: v for k, v in base.items() if k != "optim"} == {k: v for k, v in other.items() if k != "optim"}
    assert {v for (e, v, _) in by if e == "paper-digits"} == {"baseline", "control", "slo1"}


def test_quick_is_a_subsample_of_full():
    full, quick = build_plan(SCALES["full"]), build_plan(SCALES["quick"])
    by_id = {s.id: s.config.to_dict() for s in full}
    assert {q.id for q in quick} < set(by_id)  # the same runs: a subset of seeds and arms
    assert {q.experiment for q in quick} == {f.experiment for f in full}
    for q in quick:
        f, m = by_id[q.id], q.config.measure
        assert m.every_epochs % max(f["measure"]["every_epochs"], 1) == 0 and m.every % f["measure"]["every"] == 0
        assert (m.every_epochs > 0) == (f["measure"]["every_epochs"] > 0)  # a subset of the same steps
        f["measure"].update(every=m.every, every_epochs=m.every_epochs)
        assert q.config.to_dict() == f  # otherwise the same run
    digits = next(q for q in quick if q.experiment == "paper-digits").config
    assert digits.measure.every_epochs == 25 and digits.optim.warmup_steps > 0  # the authors' default cadence


def test_bad_arguments_are_user_errors(tmp_path):
    with pytest.raises(ConfigError, match="--seeds"):
        reproduce_main(tmp_path, seeds=0)
    with pytest.raises(ConfigError, match="--jobs"):
        reproduce_main(tmp_path, jobs=0)


# -- end to end (tiny scale) -----------------------------------------------------------

def test_tiny_reproduction_writes_a_parsable_claims_table(tmp_path):
    out = tmp_path / "rep"
    assert reproduce_main(out, scale="tiny", jobs=1, quiet=True) == 0  # in process: no worker start-up
    rows = read_claims_csv(out / "claims.csv")
    assert [r["number"] for r in rows] == list(range(1, 7))
    assert all(r["holds"] in (True, False) for r in rows)  # every claim was checked
    assert all(math.isfinite(r["mean"]) and math.isfinite(r["std"]) for r in rows)
    assert all(set(r["margins"]) == {0, 1} for r in rows)  # a margin per seed
    checks = (out / "checks.csv").read_text().splitlines()
    assert len(checks) == 3 and all(",yes," in line for line in checks[1:])  # identities hold whatever training did
    report = (out / "report.md").read_text()
    for n in range(1, 7):
        assert (out / f"claim{n}.png").stat().st_size > 0
        assert f"## Claim {n}:" in report
    assert (out / "identities.png").stat().st_size > 0
    assert "Machine:" in report and "Run time:" in report
    plan = json.loads((out / "plan.json").read_text())
    for row in plan:
        assert (out / row["run"] / "metrics.csv").is_file() and (out / row["run"] / "final.npz").is_file()

    # the analysis needs only the folders: drop everything else and rebuild the table
    before = (out / "claims.csv").read_text()
    for name in ("claims.csv", "checks.csv", "report.md", "runs.csv"):
        (out / name).unlink()
    from app.reproduce.pipeline import analyse_folder

    assert analyse_folder(out, figures=False) == 0
    assert (out / "claims.csv").read_text() == before


def test_runner_turns_a_config_json_into_a_run_folder(tmp_path):
    import torch

    from app.reproduce.runner import execute_restoring_threads, main as runner_main

    threads = torch.get_num_threads()
    spec = next(s for s in build_plan(SCALES["tiny"], seeds=1) if s.experiment == "quickstart")
    config = tmp_path / "c.json"
    config.write_text(spec.config.to_json())
    assert runner_main([str(config), str(tmp_path / "run")]) == 0
    assert {"config.json", "metrics.csv", "final.npz"} <= {p.name for p in (tmp_path / "run").iterdir()}
    outcome = execute_restoring_threads(spec.config.to_json(), str(tmp_path / "again"), "again")
    assert outcome.status == "ok" and outcome.id == "again"
    assert (tmp_path / "again" / "metrics.csv").read_text() == (tmp_path / "run" / "metrics.csv").read_text()
    assert torch.get_num_threads() == threads
