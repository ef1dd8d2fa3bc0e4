"""The measurement on CUDA: no host synchronisation until the final transfer, same numbers as on CPU.

Runs where CUDA exists; skipped elsewhere.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core import diagnostics
from core.config import ModelConfig
from core.engine import resolve_device
from core.model import MLP

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _model(dtype):
    gen = torch.Generator().manual_seed(0)
    model = MLP(12, 4, ModelConfig(depth=3, width=32, activation="gelu", bias=True), gen, dtype)
    w0s = [w.detach().clone() for w in model.weights()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen, dtype=dtype))
    x = torch.randn(300, 12, generator=gen, dtype=dtype)
    return model, w0s, x


def test_auto_picks_cuda():
    assert resolve_device("auto").type == "cuda"


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_measurement_runs_on_the_device_without_sync(dtype, tol):
    model, w0s, x = _model(dtype)
    cpu = diagnostics.measure_model(model, w0s, x)
    gpu_model = model.to("cuda")
    gpu_w0s, gpu_x = [w.cuda() for w in w0s], x.cuda()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any host round trip (item, .cpu(), nonzero...) raises
    try:
        parts = diagnostics.device_parts(gpu_model, gpu_w0s, gpu_x)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(t.device.type == "cuda" for _, mats, scal, _ in parts for t in (*mats.values(), scal))
    gpu = diagnostics._finish(parts, "pearson", 1.0, None)
    for a, b in zip(cpu, gpu):
        for key in ("K", "nfm", "agop", "centered_agop"):
            ref = getattr(a, key)
            assert np.abs(getattr(b, key) - ref).max() <= tol * np.abs(ref).max()
        for key in ("uc_nfa", "c_nfa", "nfm_identity", "agop_identity", "uc_nfa_se", "c_nfa_se"):
            assert getattr(b, key) == pytest.approx(getattr(a, key), rel=tol * 10, abs=tol * 10)
