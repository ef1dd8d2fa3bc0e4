"""app/process.py: a headless training process reuses freed memory (counted in page faults, not time)
and freezes its imports out of the GC; other callers keep the defaults."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from app import process

ROOT = Path(__file__).resolve().parents[1]

MEASUREMENTS = textwrap.dedent("""
    import resource, sys, torch
    from app.process import keep_freed_memory
    from core import diagnostics as D
    from core.config import ModelConfig
    from core.model import MLP

    tuned = keep_freed_memory() if sys.argv[1] == "tuned" else False
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    model = MLP(64, 10, ModelConfig(width=256, depth=3), g)
    w0s = [w.detach().clone() for w in model.weights()]
    x = torch.randn(500, 64, generator=g)
    D.measure_model(model, w0s, x, detailed=True)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for i in range(12):
        D.measure_model(model, w0s, x, detailed=i % 3 == 0)
    print(tuned, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


def _faults(mode: str) -> tuple[str, int]:
    env = {k: v for k, v in os.environ.items() if k not in process.USER_SETTINGS}
    out = subprocess.run([sys.executable, "-c", MEASUREMENTS, mode], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True, timeout=300).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_measurements_stop_faulting_their_memory_in_again():
    """Twelve measurements of a 3 x 256 network: at least 3x fewer minor page faults once tuned.

    Measured on the 2-core VM: 9,760-27,360 faults with glibc's defaults, 512-2,069 tuned.
    """
    plain_flag, plain = _faults("plain")
    tuned_flag, tuned = _faults("tuned")
    assert (plain_flag, tuned_flag) == ("False", "True")
    assert tuned * 3 < plain, (tuned, plain)


def test_a_users_malloc_setting_wins(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1000000")
    assert process.keep_freed_memory() is False


def test_the_cli_settles_only_a_process_it_owns_and_only_to_train(monkeypatch, tmp_path):
    """``python -m app.cli run`` (own_process) settles once its checks pass; a caller of main(), a
    user error and ``tui`` do not."""
    import app.tui
    from app import cli

    calls = []
    monkeypatch.setattr(process, "keep_freed_memory", lambda: calls.append("malloc") or True)
    monkeypatch.setattr(process.gc, "freeze", lambda: calls.append("freeze"))
    run = ["run", "--config", "quickstart", "--steps", "1", "--quiet", "--out"]
    assert cli.main(run + [str(tmp_path / "a")]) == 0
    assert calls == []
    assert cli.main(run + [str(tmp_path / "b"), "--set", "model.width=0"], own_process=True) == 2
    assert calls == []
    assert cli.main(["tui", "--config", str(tmp_path / "missing.json")], own_process=True) == 2
    monkeypatch.setattr(app.tui, "main", lambda cfg: 0)  # the app itself, started and closed
    assert cli.main(["tui", "--config", "quickstart"], own_process=True) == 0
    assert calls == []
    assert cli.main(run + [str(tmp_path / "c")], own_process=True) == 0
    assert calls == ["malloc", "freeze"]
    assert (tmp_path / "c" / "metrics.csv").is_file()


def test_python_m_app_cli_owns_its_process(tmp_path):
    """Run as ``python -m app.cli`` (runpy, as the interpreter does), ``run`` leaves torch's objects frozen."""
    code = textwrap.dedent(f"""
        import atexit, gc, runpy, sys
        atexit.register(lambda: print("frozen", gc.get_freeze_count()))
        sys.argv = ["app.cli", "run", "--config", "quickstart", "--steps", "1", "--quiet",
                    "--out", {str(tmp_path / "r")!r}]
        runpy.run_module("app.cli", run_name="__main__")
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    frozen = int(out.stdout.split("frozen")[-1])
    assert frozen > 50_000  # torch alone leaves about 167,000
