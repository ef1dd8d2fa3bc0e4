"""app.compare: three arms from one initialisation and batch order, long compare.csv, styles, summary."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest
import torch

from app import compare
from core.arms import make_arms
from core.config import RunConfig
from core.engine import Engine
from core.history import History


def _cfg(**over) -> RunConfig:
    raw = {"data": {"kind": "synthetic", "d": 6, "target": "x0*x1", "n_train": 96, "n_test": 32},
           "model": {"depth": 2, "width": 12},
           "optim": {"name": "sgd", "lr": 0.1, "batch_size": 16, "warmup_steps": 2,
                     "slo": {"target_layer": 1, "speed": 0.05, "boost": 5.0}},
           "measure": {"every": 5, "n_points": 0}, "steps": 15, "seed": 3, "device": "cpu"}
    cfg = RunConfig.from_dict(raw)
    return cfg.replace(**over) if over else cfg


def test_arms_share_initial_weights_and_batch_order():
    arms = make_arms(_cfg())
    assert [a.name for a in arms] == ["baseline", "control", "slo"]
    seen, w0 = {}, {}
    for arm in arms:
        engine = Engine(arm.config)
        w0[arm.name] = [p.detach().clone() for p in engine.model.parameters()]
        batches = []
        original = engine._batch_indices

        def spy(original=original, batches=batches):
            idx = original()
            batches.append(idx.clone())
            return idx

        engine._batch_indices = spy
        engine.step(20)  # more than one epoch (6 steps each)
        seen[arm.name] = batches
    for name in ("control", "slo"):
        for a, b in zip(w0["baseline"], w0[name]):
            assert torch.equal(a, b)
        assert len(seen[name]) == 20
        for a, b in zip(seen["baseline"], seen[name]):
            assert torch.equal(a, b)
    assert not torch.equal(seen["baseline"][0], seen["baseline"][6])  # a new permutation each epoch


def test_compare_command_writes_arms_long_csv_figure_and_summary(tmp_path, capsys):
    cfg = _cfg()
    assert compare.compare_command(cfg, tmp_path, quiet=True) == 0
    out = capsys.readouterr().out
    arms = make_arms(cfg)
    histories = {}
    for arm in arms:
        folder = tmp_path / arm.name
        assert {"config.json", "metrics.csv", "final.npz", "nfa.png", "heatmaps.png"} <= {p.name for p in folder.iterdir()}
        histories[arm.name] = History.read_csv(folder / "metrics.csv")
    with open(tmp_path / "compare.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:4] == ["arm", "step", "layer", "uc_nfa"] and "step_norm" in rows[0]
    assert len(rows) == sum(len(h) for h in histories.values())
    for name, history in histories.items():  # each arm's rows are its metrics.csv, under its own name
        mine = [r for r in rows if r["arm"] == name]
        assert [(int(r["step"]), int(r["layer"])) for r in mine] == [(r["step"], r["layer"]) for r in history.rows]
        assert [float(r["uc_nfa"]) for r in mine] == [r["uc_nfa"] for r in history.rows]
    first = {r["arm"]: r["uc_nfa"] for r in rows if r["step"] == "0" and r["layer"] == "1"}
    assert len(set(first.values())) == 1  # one initial network
    # the SLO arms' steps have exactly their speeds (after warm-up)
    for r in rows:
        if int(r["step"]) > 2 and r["arm"] != "baseline":
            speed = 0.05 * (5.0 if r["arm"] == "slo" and r["layer"] == "1" else 1.0)
            assert float(r["step_norm"]) == pytest.approx(speed, rel=1e-5)
    assert (tmp_path / "compare.png").stat().st_size > 10_000
    # summary: a column per arm, numbers equal to each arm's last measurement
    head = [line for line in out.splitlines() if line.split() == ["baseline", "control", "slo"]]
    assert len(head) == 1
    line = [ln for ln in out.splitlines() if ln.startswith("layer 1 UC-NFA")][0]
    shown = [float(v) for v in re.findall(r"-?\d+\.\d+", line)]
    last = [histories[a.name].series("uc_nfa", 1)[1][-1] for a in arms]
    assert shown == pytest.approx([round(v, 4) for v in last], abs=1e-9)
    assert "<- SLO target" in line
    assert "step norm baseline/control" in out or "warning: the baseline moves far slower" in out


def test_figure_draws_each_arm_in_its_own_style():
    cfg = _cfg()
    arms = make_arms(cfg)
    histories = {}
    for arm in arms:
        engine = Engine(arm.config)
        engine.run(10)
        histories[arm.name] = engine.history
    fig = compare.compare_figure(arms, histories)
    try:
        for ax in fig.axes[:2]:
            lines = ax.get_lines()
            assert [ln.get_label() for ln in lines] == [a.label for a in arms]
            assert [ln.get_color() for ln in lines] == [a.color for a in arms]
            styles = [ln.get_linestyle() for ln in lines]
            assert len(set(styles)) == len(arms)
            for ln, arm in zip(lines, arms):
                np.testing.assert_allclose(ln.get_ydata(), histories[arm.name].series("uc_nfa", 1 if ax is fig.axes[0] else 2)[1])
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)


def test_a_slow_baseline_is_flagged_with_the_ratio():
    cfg = _cfg(**{"optim.lr": 1e-4, "optim.warmup_steps": 0})
    arms = make_arms(cfg)
    snaps = {}
    for arm in arms:
        engine = Engine(arm.config)
        snaps[arm.name] = engine.run(10)
    note = compare.speed_note(arms, snaps)
    base = compare.median_step_norms(snaps["baseline"].history)
    control = compare.median_step_norms(snaps["control"].history)
    assert control[2] == pytest.approx(0.05, rel=1e-5)  # the control moves every layer at SLO's speed
    assert note.startswith("warning: the baseline moves far slower")
    assert f"layer 2 {base[2] / control[2]:.3g}" in note and base[2] / control[2] < compare.SLOW_BASELINE
    fast = _cfg(**{"optim.lr": 0.5, "optim.warmup_steps": 0, "optim.slo.speed": 0.01, "optim.slo.boost": 2.0})
    arms = make_arms(fast)
    snaps = {a.name: Engine(a.config).run(10) for a in arms}
    assert compare.speed_note(arms, snaps).startswith("step norm baseline/control")
