"""Named starting configs (plain data; ``core.config`` validates and re-exports them).

The ``paper-*`` presets follow the authors' public MLP code (github
dmbeaglehole/centered_NFA, ``MLP/main.py`` and ``MLP/gen_csv.py``): 5 hidden layers of
256 bias-free ReLU units with PyTorch's default initialisation, MSE on one-hot labels
minus 1/c, SGD at lr 2.0 x c/10 with batch 128 for 150 epochs after one warm-up epoch
at lr 1e-4, per-channel standardisation, and K over all training points measured after
every epoch. Where they depart (data set, its size) README's presets table says why.
SLO is not in the authors' MLP code: its speed here equals SGD's measured median step norm
(paper-digits: 0.009-0.017 per layer after warm-up), so the control arm moves as fast as SGD.
The other presets are this project's own small demonstrations.
The two 5x256 presets compute the jackknife SEs and ``diag_share`` at every 10th
measurement (``measure.detail_every``; always at step 0, the end of the warm-up and the last
step): at width 256 those extras cost more than the rest of a measurement (README, Benchmarks).
"""

from __future__ import annotations

from typing import Any

DIGITS_TRAIN, DIGITS_TEST = 1437, 360
"""scikit-learn's digits have 1797 images: an 80/20 split uses them all."""

DIGITS_EPOCH = -(-DIGITS_TRAIN // 128)
"""Steps per epoch at batch 128 (a batch never spans two epochs): 12."""

SYNTH_TRAIN = 2000
"""At most the web deployment's 2,000-point cap, so that all-point K works in every front end."""
SYNTH_EPOCH = -(-SYNTH_TRAIN // 128)

PRESETS: dict[str, dict[str, Any]] = {
    "quickstart": {
        "data": {"kind": "synthetic", "d": 20, "target": "x0*x1 + x1*x2", "n_train": 2000,
                 "n_test": 1000},
        "model": {"depth": 2, "width": 128, "activation": "relu"},
        "optim": {"name": "sgd", "lr": 0.05, "batch_size": 128,
                  "slo": {"enabled": False, "target_layer": 1, "speed": 0.02, "boost": 10.0}},
        "measure": {"every": 50, "n_points": 500},
        "steps": 2000,
    },
    "digits": {
        "data": {"kind": "digits", "n_train": 1400, "n_test": 397},
        "model": {"depth": 5, "width": 256, "activation": "relu", "bias": False},
        "optim": {"name": "sgd", "lr": 0.1, "batch_size": 128,
                  "slo": {"target_layer": 1, "speed": 0.02, "boost": 10.0}},
        "measure": {"every": 100, "n_points": 1000, "detail_every": 10},
        "steps": 2000,
    },
    "chain": {
        "data": {"kind": "synthetic", "d": 20, "target": "x0*x1*x2", "n_train": 4000},
        "model": {"depth": 2, "width": 128},
        "optim": {"lr": 0.05, "slo": {"speed": 0.02, "boost": 10.0}},
        "measure": {"every": 100, "n_points": 1000},
        "steps": 4000,
    },
    "lowrank": {
        "data": {"kind": "synthetic", "d": 20, "target": "tanh(x0 + x1 - x2) + sin(x3)",
                 "n_train": 2000},
        "model": {"depth": 2, "width": 128},
        "optim": {"lr": 0.05, "slo": {"speed": 0.02, "boost": 10.0}},
        "measure": {"every": 50, "n_points": 1000},
        "steps": 2000,
    },
    "paper-digits": {
        "data": {"kind": "digits", "n_train": DIGITS_TRAIN, "n_test": DIGITS_TEST, "standardize": "per_channel"},
        "model": {"depth": 5, "width": 256, "activation": "relu", "bias": False, "init_scale": 1.0},
        "optim": {"name": "sgd", "lr": 2.0, "momentum": 0.0, "batch_size": 128, "weight_decay": 0.0,
                  "warmup_steps": DIGITS_EPOCH, "warmup_lr": 1e-4,
                  "slo": {"enabled": False, "target_layer": 1, "speed": 0.01, "boost": 10.0}},
        "measure": {"every": DIGITS_EPOCH, "every_epochs": 1, "n_points": 0, "detail_every": 10},
        "steps": 151 * DIGITS_EPOCH,
    },
    "paper-synthetic": {
        "data": {"kind": "synthetic", "d": 128, "target": "x0*x1 + x2*x3", "n_train": SYNTH_TRAIN,
                 "n_test": 1000, "standardize": "per_channel"},
        "model": {"depth": 5, "width": 64, "activation": "relu", "bias": False, "init_scale": 1.0},
        "optim": {"name": "sgd", "lr": 0.2, "momentum": 0.0, "batch_size": 128, "weight_decay": 0.0,
                  "warmup_steps": SYNTH_EPOCH, "warmup_lr": 1e-4,
                  "slo": {"enabled": False, "target_layer": 1, "speed": 0.05, "boost": 10.0}},
        "measure": {"every": SYNTH_EPOCH, "every_epochs": 1, "n_points": 0},
        "steps": 101 * SYNTH_EPOCH,
    },
}
"""Named starting points; a config's ``preset`` key picks one, its other keys override it."""

PRESET_NOTES: dict[str, str] = {
    "quickstart": "small synthetic demo (d=20, y = x0 x1 + x1 x2, 2x128 MLP): this project's own",
    "digits": "scikit-learn digits on a 5x256 MLP at a gentle lr 0.1 (this project's demo, not the authors' settings)",
    "chain": "synthetic y = x0 x1 x2 (d=20, 2x128): this project's own",
    "lowrank": "synthetic y = tanh(x0 + x1 - x2) + sin(x3) (d=20, 2x128): this project's own",
    "paper-digits": "the authors' MLP recipe (5x256, SGD lr 2.0, batch 128, warm-up epoch, 150 epochs, "
                    "K on all training points every epoch) on scikit-learn's digits",
    "paper-synthetic": "the authors' MLP recipe on synthetic data whose input dimension (128) exceeds the width (64)",
}
"""One line per preset for help texts and README's presets table."""
