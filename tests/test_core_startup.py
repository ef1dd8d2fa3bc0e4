"""Start-up: the run path (figures included) imports no torch._dynamo, scikit-learn, matplotlib or UI library,
and the replacements that make that possible (optimisers, digits reader) match the originals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from core import optim
from core.config import preset_config
from core.data import digits_arrays

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch._dynamo", "sklearn", "matplotlib", "gradio", "textual", "scipy")

PROBE = """
import sys, tempfile
from pathlib import Path
import app.cli, app.headless
from core import plots
from core.config import preset_config
from core.engine import Engine
for name, opt in (("quickstart", "sgd"), ("digits", "adam")):
    cfg = preset_config(name)
    cfg.optim.name, cfg.steps, cfg.measure.every, cfg.device = opt, 4, 2, "cpu"
    engine = Engine(cfg)
    engine.run()
    engine._optimizer.load_state_dict(engine._optimizer.state_dict())
    plots.write_figures(engine.snapshot(), Path(tempfile.mkdtemp()))
print(",".join(m for m in %r if m in sys.modules))
""" % (HEAVY,)


def test_run_path_imports_nothing_heavy():
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == ""


def test_digits_reader_matches_scikit_learn():
    from sklearn.datasets import load_digits

    raw = load_digits()
    x, y = digits_arrays()
    assert x.dtype == np.float64 and x.shape == (1797, 64)
    np.testing.assert_array_equal(x, raw.data)
    np.testing.assert_array_equal(y, raw.target)


@pytest.mark.parametrize("mine,theirs,kwargs", [
    (optim.SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=1e-3)),
    (optim.SGD, torch.optim.SGD, dict(lr=0.5)),
    (optim.Adam, torch.optim.Adam, dict(lr=0.01, weight_decay=1e-2)),
])
def test_optimisers_step_bit_for_bit_like_torch(mine, theirs, kwargs):
    gen = torch.Generator().manual_seed(0)
    start = [torch.randn(4, 3, generator=gen), torch.randn(3, generator=gen)]
    grads = [[torch.randn(p.shape, generator=gen) for p in start] for _ in range(5)]
    runs = []
    for cls in (mine, theirs):
        params = [p.clone().requires_grad_(True) for p in start]
        opt = cls([{"params": params, "layer": 1}], **kwargs)
        for i, step_grads in enumerate(grads):
            opt.zero_grad(set_to_none=True)
            for p, g in zip(params, step_grads):
                p.grad = g.clone()
            opt.step()
            if i == 2:  # a state round trip in the middle changes nothing
                opt.load_state_dict(opt.state_dict())
        runs.append([p.detach() for p in params])
    for a, b in zip(*runs):
        assert torch.equal(a, b)
    assert not torch.equal(runs[0][0], start[0])


def test_built_optimisers_are_the_dynamo_free_ones():
    cfg = preset_config("quickstart")
    layers = [torch.nn.Linear(3, 2)]
    assert isinstance(optim.build_optimizer(layers, cfg.optim), optim.SGD)
    cfg.optim.name = "adam"
    assert isinstance(optim.build_optimizer(layers, cfg.optim), optim.Adam)
