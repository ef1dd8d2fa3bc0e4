"""``sweep`` and the shared runner on the local backend: grids, run folders, sweep.csv/png,
resume, interrupts, output-folder and plan-size checks (also for ``reproduce``)."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from app import cli
from app.runner.execute import Backend, resume_split, run_jobs
from app.runner.folders import RUN_FILES, finished_status
from app.runner.jobs import RunJob, train_task
from app.sweep.grid import parse_grid, run_names
from core.config import ConfigError, Limits, preset_config
from core.history import History

REPO = Path(__file__).resolve().parents[1]
TINY = ["--config", "quickstart", "--steps", "6", "--set", "measure.every=3", "--set", "data.n_train=64",
        "--set", "data.n_test=32", "--set", "measure.n_points=32", "--set", "model.width=8", "--set", "device=cpu"]
GRID = ["--grid", "optim.slo.enabled=false,true", "--grid", "seed=0:2"]


def tiny_config(**changes):
    base = {"steps": 6, "measure.every": 3, "data.n_train": 64, "data.n_test": 32, "measure.n_points": 32,
            "model.width": 8, "device": "cpu"}
    return preset_config("quickstart").replace(**{**base, **changes})


def cli_run(args: list[str], capsys) -> tuple[int, str, str]:
    rc = cli.main(args)
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def child_env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}


# -- grids -----------------------------------------------------------------------------

def test_grid_items_make_every_combination_with_readable_names():
    axes = parse_grid(["optim.lr=0.01,0.1", "seed=0:6:2", "data.target=x0*x1,x0+x1"], tiny_config(), Limits())
    assert [a.values for a in axes] == [(0.01, 0.1), (0, 2, 4), ("x0*x1", "x0+x1")]
    names = run_names([{"optim.lr": 0.1, "seed": 4, "data.target": "x0*x1"}])
    assert names == ["lr=0.1_seed=4_target=x0-x1"]
    assert run_names([{"a.x": 1, "b.x": 2}]) == ["a.x=1_b.x=2"]  # clashing last parts keep the full key
    clash = run_names([{"data.target": "x0*x1"}, {"data.target": "x0+x1"}, {"data.target": "x0-x1"}])
    assert len(set(clash)) == 3 and clash[0].startswith("0_")


BAD_GRIDS = [
    ("optim.lrr=0.1", "unknown key"),
    ("optim.lr=-1", "optim.lr"),
    ("model.width=abc", "model.width"),
    ("seed=5:5", "empty"),
    ("seed=0:5:0", "step"),
    ("seed", "KEY=VALUES"),
    ("optim.lr=0.1,,0.2", "empty value"),
    ("optim.lr=0.1,0.1", "twice"),
    ("seed=0:2000", "more than 1000; add --yes"),
]


@pytest.mark.parametrize("item,words", BAD_GRIDS)
def test_bad_grids_exit_2_with_one_line_naming_the_item(item, words, tmp_path, capsys):
    out = tmp_path / "sw"
    rc, stdout, err = cli_run(["sweep", *TINY, "--grid", item, "--out", str(out)], capsys)
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith(f"error: --grid {item}: ") and words in err
    assert not out.exists()


def test_a_key_varied_twice_and_a_missing_grid_are_refused(tmp_path, capsys):
    rc, _, err = cli_run(["sweep", *TINY, "--grid", "seed=0:2", "--grid", "seed=3,4", "--out", str(tmp_path / "a")], capsys)
    assert rc == 2 and "--grid seed=3,4: seed is already varied by --grid seed=0:2" in err
    rc, _, err = cli_run(["sweep", *TINY, "--out", str(tmp_path / "b")], capsys)
    assert rc == 2 and err.startswith("error: --grid: give at least one")


# -- a sweep end to end ----------------------------------------------------------------

@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A 4-run sweep (SLO off/on x 2 seeds) in this process; (folder, exit status, stderr)."""
    out = tmp_path_factory.mktemp("sweep") / "sw"
    import contextlib

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = cli.main(["sweep", *TINY, "--set", "optim.slo.boost=10", *GRID, "--jobs", "1", "--no-figures",
                       "--out", str(out)])
    return out, rc, err.getvalue()


def test_sweep_writes_run_folders_as_run_does(swept, tmp_path, capsys):
    out, rc, err = swept
    assert rc == 0
    names = sorted(p.name for p in (out / "runs").iterdir())
    assert names == ["enabled=false_seed=0", "enabled=false_seed=1", "enabled=true_seed=0", "enabled=true_seed=1"]
    for name in names:
        assert {p.name for p in (out / "runs" / name).iterdir()} == set(RUN_FILES)  # --no-figures
    cfg = json.loads((out / "runs" / "enabled=true_seed=1" / "config.json").read_text())
    assert cfg["seed"] == 1 and cfg["optim"]["slo"] == {**cfg["optim"]["slo"], "enabled": True, "boost": 10.0}
    rc, _, _ = cli_run(["run", *TINY, "--set", "optim.slo.boost=10", "--set", "optim.slo.enabled=true",
                        "--set", "seed=1", "--out", str(tmp_path / "one"), "--quiet"], capsys)
    assert rc == 0
    for f in ("metrics.csv", "config.json"):  # the same bytes `run` writes for the same config
        assert (out / "runs" / "enabled=true_seed=1" / f).read_bytes() == (tmp_path / "one" / f).read_bytes()
    assert "sweep: 4 runs on this process" in err


def test_sweep_draws_each_runs_figures_by_default(tmp_path, capsys):
    rc, _, _ = cli_run(["sweep", *TINY, "--grid", "seed=3", "--jobs", "1", "--out", str(tmp_path / "sw")], capsys)
    assert rc == 0
    files = {p.name for p in (tmp_path / "sw" / "runs" / "seed=3").iterdir()}
    assert files == set(RUN_FILES) | {"nfa.png", "heatmaps.png"}


def test_sweep_csv_holds_each_runs_final_measurements(swept):
    out, _, _ = swept
    with open(out / "sweep.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:5] == ["run", "optim.slo.enabled", "seed", "layer", "step"]
    assert len(rows) == 4 * 2  # 4 runs x 2 hidden layers
    for row in rows:
        hist = History.read_csv(out / "runs" / row["run"] / "metrics.csv")
        last = [r for r in hist.rows if r["layer"] == int(row["layer"])][-1]
        assert int(row["step"]) == last["step"] == 6
        for key in ("uc_nfa", "c_nfa", "test_loss", "train_loss"):
            assert float(row[key]) == last[key]
        assert row["status"] == "ok" and row["optim.slo.enabled"] in ("true", "false")
    fq = {(r["optim.slo.enabled"], r["seed"]): r["feature_quality"] for r in rows if r["layer"] == "1"}
    assert fq[("true", "0")] != fq[("false", "0")]  # the varied key really changed the runs


def test_sweep_png_shows_the_metric_bands(swept):
    from PIL import Image

    out, _, _ = swept
    img = np.asarray(Image.open(out / "sweep.png").convert("RGB")).astype(int)
    assert img.shape[0] > 600 and img.shape[1] > 400  # rows of panels (metrics) x 2 layer columns
    coloured = (np.abs(img[..., 0] - img[..., 2]) > 60).sum()
    assert coloured > 200  # lines and bands are drawn, not only axes


def test_the_band_is_mean_and_std_over_seeds():
    from app.sweep.figure import _band

    rows = [{"k": 1, "m": 0.2}, {"k": 1, "m": 0.4}, {"k": 2, "m": 0.5}, {"k": 2, "m": None}]
    mean, std = _band(rows, "m", "k", [1, 2])
    assert mean.tolist() == pytest.approx([0.3, 0.5]) and std.tolist() == pytest.approx([np.std([0.2, 0.4], ddof=1), 0.0])


# -- resume ----------------------------------------------------------------------------

def test_resume_skips_finished_runs_and_redoes_the_rest(swept, tmp_path, capsys):
    src, _, _ = swept
    out = tmp_path / "sw"
    shutil.copytree(src, out)
    runs = out / "runs"
    shutil.rmtree(runs / "enabled=false_seed=0")                     # never written
    (runs / "enabled=false_seed=1" / "final.npz").unlink()           # a folder missing a file
    state = json.loads((runs / "enabled=true_seed=0" / "state.json").read_text())
    (runs / "enabled=true_seed=0" / "state.json").write_text(json.dumps({**state, "step": 3}))  # stopped early
    (runs / ".enabled=true_seed=1.x.partial").mkdir()                # an interrupted delivery
    kept = (runs / "enabled=true_seed=1" / "metrics.csv").stat().st_mtime_ns
    rc, _, err = cli_run(["sweep", "--resume", str(out)], capsys)
    assert rc == 0, err
    assert "(1 finished, 3 to run)" in err
    assert (runs / "enabled=true_seed=1" / "metrics.csv").stat().st_mtime_ns == kept
    assert not [p for p in runs.iterdir() if p.name.startswith(".")]
    for name in os.listdir(src / "runs"):
        assert (runs / name / "metrics.csv").read_bytes() == (src / "runs" / name / "metrics.csv").read_bytes()
        assert finished_status(runs / name, _job_of(runs / name)) == "ok"
    assert (out / "sweep.csv").read_text() == (src / "sweep.csv").read_text()


def _job_of(folder: Path) -> RunJob:
    from core.config import load_config

    return RunJob(folder.name, load_config(folder / "config.json"))


def test_resume_refuses_flags_that_would_change_the_plan(swept, capsys):
    out, _, _ = swept
    rc, _, err = cli_run(["sweep", "--resume", str(out), "--grid", "seed=0:3"], capsys)
    assert rc == 2 and err.startswith("error: --resume: the sweep's plan is in DIR/sweep.json")


# -- output folders --------------------------------------------------------------------

def test_output_folder_must_be_new_or_empty(swept, tmp_path, capsys):
    out, _, _ = swept
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    rc, _, err = cli_run(["sweep", *TINY, *GRID, "--out", str(out)], capsys)
    assert rc == 2 and err.count("\n") == 1 and "is not empty" in err and "--resume" in err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    a_file = tmp_path / "file"
    a_file.write_text("x")
    rc, _, err = cli_run(["sweep", *TINY, *GRID, "--out", str(a_file / "sub")], capsys)
    assert rc == 2 and "which is a file" in err and err.count("\n") == 1
    rc, _, err = cli_run(["reproduce", "--quick", "--out", str(a_file)], capsys)
    assert rc == 2 and "exists and is not a folder" in err
    rc, _, err = cli_run(["sweep", "--resume", str(tmp_path)], capsys)
    assert rc == 2 and "has no sweep.json" in err
    rc, _, err = cli_run(["reproduce", "--out", str(tmp_path / "a"), "--resume", str(tmp_path / "b")], capsys)
    assert rc == 2 and "not both" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
def test_a_read_only_output_folder_is_refused_before_training(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        rc, _, err = cli_run(["sweep", *TINY, *GRID, "--out", str(ro)], capsys)
        assert rc == 2 and "cannot write" in err and err.count("\n") == 1
    finally:
        ro.chmod(0o755)


def test_huge_reproduce_is_refused_at_once_with_its_size_and_estimate(tmp_path):
    out = tmp_path / "rep"
    proc = subprocess.run([sys.executable, "-m", "app.cli", "reproduce", "--seeds", "100", "--out", str(out)],
                          cwd=tmp_path, env=child_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    line = proc.stderr
    assert line.count("\n") == 1 and "Traceback" not in line
    from app.reproduce.plan import SCALES, build_plan

    n = len(build_plan(SCALES["full"], 1)) * 100
    assert line.startswith(f"error: --seeds: {n} runs (~") and "worker(s)) is more than 1000; add --yes" in line
    assert not out.exists()


# -- the runner's local backend --------------------------------------------------------

def test_a_failing_run_is_reported_and_the_others_finish(tmp_path):
    jobs = [RunJob("good", tiny_config()), RunJob("bad", tiny_config(**{"data.kind": "file", "data.path": "/nope.csv"}))]
    outcomes = {o.id: o for o in run_jobs(jobs, tmp_path, Backend(jobs=1))}
    assert outcomes["good"].status == "ok" and outcomes["bad"].status == "failed"
    assert "nope.csv" in outcomes["bad"].message and "\n" not in outcomes["bad"].message
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["good"]
    rows = list(csv.DictReader(open(tmp_path / "runs.csv")))
    assert [(r["id"], r["status"]) for r in rows] == [("bad", "failed"), ("good", "ok")]


def die_once(config_json: str, name: str, figures: bool, threads: int):
    """The real task, except that the worker process dies on its first attempt at each run."""
    marker = Path(os.environ.get("TMPDIR", "/tmp")) / f"nfa-test-died-{name}"
    if not marker.exists():
        marker.write_text("died once")
        os._exit(1)
    return train_task(config_json, name, figures, threads)


def test_local_pool_retries_runs_whose_worker_died(tmp_path):
    import uuid

    token = uuid.uuid4().hex[:8]
    jobs = [RunJob(f"kill-{token}-{i}", tiny_config(seed=i)) for i in range(2)]
    try:
        outcomes = run_jobs(jobs, tmp_path / "a", Backend(jobs=2), task=die_once)
        assert sorted(o.status for o in outcomes) == ["ok", "ok"]
        run_jobs(jobs, tmp_path / "b", Backend(jobs=1))
        for job in jobs:
            a, b = tmp_path / "a" / "runs" / job.name, tmp_path / "b" / "runs" / job.name
            assert (a / "metrics.csv").read_bytes() == (b / "metrics.csv").read_bytes()
    finally:
        for job in jobs:
            (Path(os.environ.get("TMPDIR", "/tmp")) / f"nfa-test-died-{job.name}").unlink(missing_ok=True)


def record_thread_env(config_json: str, name: str, figures: bool, threads: int):
    """The real task, after writing the worker's native-thread variables where the test reads them."""
    from app.runner.local import THREAD_VARIABLES

    marker = Path(os.environ.get("TMPDIR", "/tmp")) / f"nfa-test-env-{name}"
    marker.write_text(" ".join(os.environ.get(key, "unset") for key in THREAD_VARIABLES))
    return train_task(config_json, name, figures, threads)


def test_local_pool_workers_get_one_native_thread_per_cpu(tmp_path, monkeypatch):
    import uuid

    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    token = uuid.uuid4().hex[:8]
    jobs = [RunJob(f"env-{token}-{i}", tiny_config(seed=i)) for i in range(2)]
    markers = [Path(os.environ.get("TMPDIR", "/tmp")) / f"nfa-test-env-{job.name}" for job in jobs]
    try:
        outcomes = run_jobs(jobs, tmp_path / "a", Backend(jobs=2), task=record_thread_env)
        assert [o.status for o in outcomes] == ["ok", "ok"]
        assert [m.read_text() for m in markers] == ["1 1 1", "1 1 1"]
        assert os.environ["OMP_NUM_THREADS"] == "7" and "MKL_NUM_THREADS" not in os.environ  # put back
    finally:
        for m in markers:
            m.unlink(missing_ok=True)


def test_ctrl_c_cancels_the_rest_and_keeps_finished_folders_complete(tmp_path):
    out = tmp_path / "sw"
    args = [sys.executable, "-m", "app.cli", "sweep", *TINY, "--steps", "3000", "--set", "measure.every=500", "--no-figures",
            "--grid", "seed=0:8", "--jobs", "2", "--out", str(out)]
    # As from a terminal: Ctrl-C's default action even where this test was started with SIGINT
    # ignored (a background job of a shell without job control, nohup): it is inherited otherwise.
    proc = subprocess.Popen(args, cwd=tmp_path, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not _finished(out):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "continue with --resume" in err and "Traceback" not in err
    done = [p for p in (out / "runs").iterdir()]
    assert 1 <= len(done) < 8
    assert all(not p.name.startswith(".") for p in done)  # no half-delivered folder left
    plan = json.loads((out / "sweep.json").read_text())
    jobs = {r["name"]: RunJob(r["name"], _job_of_plan(plan, r)) for r in plan["runs"]}
    assert all(finished_status(p, jobs[p.name]) == "ok" for p in done)
    todo, finished = resume_split(list(jobs.values()), out)
    assert len(finished) == len(done) and len(todo) == 8 - len(done)


def _finished(out: Path) -> bool:
    runs = out / "runs"
    return runs.is_dir() and any(not p.name.startswith(".") for p in runs.iterdir())


def _job_of_plan(plan: dict, run: dict):
    from core.config import RunConfig, set_dotted

    cfg = RunConfig.from_dict(plan["base"])
    for key, value in run["values"].items():
        set_dotted(cfg, key, value)
    return cfg


def test_backend_flags_are_checked(tmp_path, capsys):
    for flags, words in ((["--jobs", "0"], "--jobs: must be at least 1"),
                         (["--cpus-per-run", "0"], "--cpus-per-run: must be at least 1"),
                         (["--gpus-per-run", "1"], "--gpus-per-run: needs --backend ray"),
                         (["--address", "auto"], "--address: needs --backend ray")):
        rc, _, err = cli_run(["sweep", *TINY, *GRID, *flags, "--out", str(tmp_path / "x")], capsys)
        assert rc == 2 and words in err and err.count("\n") == 1
    with pytest.raises(ConfigError, match="--backend"):
        Backend(kind="slurm").check()


# -- reproduce through the same runner -------------------------------------------------

def test_reproduce_resume_skips_finished_runs(tmp_path, capsys):
    from app.reproduce import main as reproduce_main

    out = tmp_path / "rep"
    assert reproduce_main(out, scale="tiny", seeds=1, jobs=1, quiet=True) == 0
    runs = out / "runs"
    before = {p.name: (p / "metrics.csv").read_bytes() for p in runs.iterdir()}
    mtimes = {p.name: (p / "metrics.csv").stat().st_mtime_ns for p in runs.iterdir()}
    gone = sorted(before)[:2]
    for name in gone:
        shutil.rmtree(runs / name)
    claims = (out / "claims.csv").read_text()
    rc, _, err = cli_run(["reproduce", "--resume", str(out), "--jobs", "1"], capsys)
    assert rc == 0, err
    assert f"({len(before) - 2} finished, 2 to run)" in err
    assert {p.name: (p / "metrics.csv").read_bytes() for p in runs.iterdir()} == before
    assert all((runs / n / "metrics.csv").stat().st_mtime_ns == t for n, t in mtimes.items() if n not in gone)
    assert (out / "claims.csv").read_text() == claims
    rc, _, err = cli_run(["reproduce", "--resume", str(out), "--quick"], capsys)
    assert rc == 2 and "was planned at scale tiny" in err
