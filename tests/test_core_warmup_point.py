"""The end of the warm-up is always measured: the paper code's first point (after its warm-up
epoch at lr 1e-4), whatever the measurement cadence, so a coarser cadence still has it."""

from __future__ import annotations

from core.config import preset_config
from core.engine import Engine


def small(**changes):
    base = {"data.n_train": 256, "data.n_test": 64, "model.width": 16, "measure.n_points": 64, "device": "cpu",
            "optim.batch_size": 64}
    return preset_config("quickstart").replace(**{**base, **changes})


def measured(cfg) -> list[int]:
    engine = Engine(cfg)
    engine.run()
    steps, _ = engine.history.series("uc_nfa", 1)
    return steps.tolist()


def test_warm_up_end_is_measured_with_an_epoch_cadence():
    # 4 steps per epoch; warm-up 4 steps; every 3 epochs -> steps 12, 24; the last step 26
    cfg = small(**{"optim.warmup_steps": 4, "measure.every_epochs": 3, "steps": 26})
    assert measured(cfg) == [0, 4, 12, 24, 26]


def test_warm_up_end_is_measured_with_a_step_cadence_and_nothing_else_changes():
    with_warmup = small(**{"optim.warmup_steps": 7, "measure.every": 10, "steps": 30})
    assert measured(with_warmup) == [0, 7, 10, 20, 30]
    assert measured(small(**{"measure.every": 10, "steps": 30})) == [0, 10, 20, 30]


def test_the_extra_point_does_not_change_the_run():
    # a measurement never touches training: the same steps measured either way give the same numbers
    coarse = Engine(small(**{"optim.warmup_steps": 4, "measure.every_epochs": 2, "steps": 16}))
    fine = Engine(small(**{"optim.warmup_steps": 4, "measure.every_epochs": 1, "steps": 16}))
    coarse.run(), fine.run()
    rows = {(r["step"], r["layer"]): r for r in fine.history.rows}
    for r in coarse.history.rows:
        assert r == rows[(r["step"], r["layer"])]
