"""The Ray backend against the local one: same task, same bytes; retried worker deaths; a clear
error without Ray. One local Ray instance (2 CPUs, no dashboard) serves the whole module."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from app import cli
from app.runner.execute import Backend, run_jobs
from app.runner.jobs import RunJob, train_task
from core.config import preset_config
from core.iofiles import read_npz

REPO = Path(__file__).resolve().parents[1]
MARKERS = Path(os.environ.get("TMPDIR", "/tmp"))


def tiny_config(**changes):
    base = {"steps": 6, "measure.every": 3, "data.n_train": 64, "data.n_test": 32, "measure.n_points": 32,
            "model.width": 8, "device": "cpu"}
    return preset_config("quickstart").replace(**{**base, **changes})


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray")
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import this test module
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="warning")
    yield ray
    ray.shutdown()


def die_once(config_json: str, name: str, figures: bool, threads: int):
    """The real task, except that the worker process dies (``os._exit``) on its first attempt at each run."""
    marker = Path(os.environ.get("TMPDIR", "/tmp")) / f"nfa-test-died-{name}"
    if not marker.exists():
        marker.write_text("died once")
        os._exit(1)
    return train_task(config_json, name, figures, threads)


def test_ray_and_local_backends_write_identical_run_folders(ray_session, tmp_path):
    jobs = [RunJob("sgd-s0", tiny_config()), RunJob("slo-s1", tiny_config(seed=1, **{"optim.slo.enabled": True})),
            RunJob("adam-s2", tiny_config(seed=2, **{"optim.name": "adam", "optim.lr": 0.01}))]
    local = run_jobs(jobs, tmp_path / "local", Backend(jobs=1))
    remote = run_jobs(jobs, tmp_path / "ray", Backend(kind="ray", jobs=2))
    assert sorted((o.id, o.status) for o in local) == sorted((o.id, o.status) for o in remote)
    for job in jobs:
        a, b = tmp_path / "local" / "runs" / job.name, tmp_path / "ray" / "runs" / job.name
        assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
        for f in ("metrics.csv", "config.json", "state.json"):
            assert (a / f).read_bytes() == (b / f).read_bytes(), f
        fa, fb = read_npz(a / "final.npz"), read_npz(b / "final.npz")
        assert fa.keys() == fb.keys() and all(np.array_equal(fa[k], fb[k]) for k in fa)


def test_sweep_command_on_ray(ray_session, tmp_path, capsys):
    out = tmp_path / "sw"
    rc = cli.main(["sweep", "--config", "quickstart", "--steps", "6", "--set", "measure.every=3",
                   "--set", "data.n_train=64", "--set", "measure.n_points=32", "--set", "model.width=8",
                   "--set", "device=cpu", "--grid", "seed=0:2", "--backend", "ray", "--no-figures", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "sweep: 2 runs on local Ray" in err
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["seed=0", "seed=1"]
    assert (out / "sweep.csv").read_text().count("\n") == 1 + 2 * 2


def test_a_killed_ray_worker_is_retried_and_the_sweep_completes(ray_session, tmp_path):
    token = uuid.uuid4().hex[:8]
    jobs = [RunJob(f"kill-{token}-{i}", tiny_config(seed=i)) for i in range(2)]
    try:
        outcomes = run_jobs(jobs, tmp_path / "ray", Backend(kind="ray", jobs=2), task=die_once)
        assert sorted(o.status for o in outcomes) == ["ok", "ok"]
        assert all((MARKERS / f"nfa-test-died-{j.name}").is_file() for j in jobs)  # each worker did die once
        run_jobs(jobs, tmp_path / "local", Backend(jobs=1))
        for job in jobs:
            a, b = tmp_path / "ray" / "runs" / job.name, tmp_path / "local" / "runs" / job.name
            assert (a / "metrics.csv").read_bytes() == (b / "metrics.csv").read_bytes()
    finally:
        for job in jobs:
            (MARKERS / f"nfa-test-died-{job.name}").unlink(missing_ok=True)


def test_without_retries_the_dead_run_fails_and_the_others_finish(ray_session, tmp_path):
    token = uuid.uuid4().hex[:8]
    doomed = RunJob(f"kill-{token}", tiny_config())
    fine = RunJob(f"fine-{token}", tiny_config(seed=1))
    (MARKERS / f"nfa-test-died-{fine.name}").write_text("already died")
    try:
        outcomes = {o.id: o for o in run_jobs([doomed, fine], tmp_path, Backend(kind="ray", jobs=2, retries=0),
                                              task=die_once)}
        assert outcomes[fine.name].status == "ok"
        assert outcomes[doomed.name].status == "failed"
        assert outcomes[doomed.name].message.startswith("the Ray task failed after 1 attempt(s)")
        assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [fine.name]
    finally:
        for job in (doomed, fine):
            (MARKERS / f"nfa-test-died-{job.name}").unlink(missing_ok=True)


def test_backend_ray_without_ray_installed_exits_2_with_what_to_install(tmp_path):
    code = ("import sys; sys.modules['ray'] = None\n"  # makes `import ray` fail, as on a machine without it
            "from app.cli import main\n"
            "sys.exit(main(sys.argv[1:]))")
    out = tmp_path / "sw"
    proc = subprocess.run([sys.executable, "-c", code, "sweep", "--config", "quickstart", "--grid", "seed=0:2",
                           "--backend", "ray", "--out", str(out)], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == ("error: --backend ray: Ray is not installed; install it with: "
                           "pip install -r requirements-cluster.txt\n")
    assert not out.exists()
