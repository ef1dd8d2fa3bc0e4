"""The command line end to end, in real subprocesses (python -m app.cli ...), plus in-process error paths.

The subprocesses are started together once per module (each with one torch thread), so the
whole file costs about as much wall time as its longest command.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from app import cli
from core.config import RunConfig
from core.history import History

REPO = Path(__file__).resolve().parents[1]
CONTRACT_COLUMNS = ["step", "layer", "uc_nfa", "c_nfa", "rel_movement", "train_loss", "test_loss", "feature_quality"]
CPU = ["--set", "device=cpu"]  # bit-for-bit reruns are promised on CPU; a CUDA CI machine would pick cuda for auto
SMALL = ["--set", "model.width=24", "--set", "data.n_train=300", "--set", "data.n_test=100",
         "--set", "measure.n_points=80", *CPU]
RUN_ARGS = ["run", "--config", "quickstart", "--steps", "25", "--set", "measure.every=10", *SMALL]
COMPARE_STEPS = 300  # layer-1 UC-NFA 0.70 -> 0.92 and quality 0.69 -> 0.91 at 300 steps (0.69 -> 0.93 at 200)


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


class Launched:
    """CLI commands running in the background; ``result(name)`` waits for one."""

    def __init__(self, root: Path):
        self.root = root
        self._procs: dict[str, tuple[subprocess.Popen, Path]] = {}
        self._results: dict[str, Result] = {}

    def start(self, name: str, args: list[str]) -> None:
        logs = self.root / "logs"
        logs.mkdir(exist_ok=True)
        out, err = open(logs / f"{name}.out", "w"), open(logs / f"{name}.err", "w")
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "MPLBACKEND": "Agg"}
        env.pop("NFA_MAX_WIDTH", None)
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", *args], cwd=self.root, env=env,
                                stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        out.close()
        err.close()
        self._procs[name] = (proc, logs)

    def result(self, name: str, timeout: float = 240) -> Result:
        if name not in self._results:
            proc, logs = self._procs[name]
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise
            self._results[name] = Result(proc.returncode, (logs / f"{name}.out").read_text(),
                                         (logs / f"{name}.err").read_text())
        return self._results[name]

    def stop_all(self) -> None:
        for proc, _ in self._procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


ERROR_CASES = {
    # name: (extra args, text the one stderr line must contain)
    "bad_value": (["run", "--set", "optim.lr=fast"], "optim.lr: must be a number"),
    "bad_range": (["run", "--set", "model.depth=0"], "model.depth: must be in"),
    "unknown_key": (["run", "--set", "optim.slo.turbo=true"], "optim.slo.turbo: unknown key"),
    "unknown_key_in_file": (["run", "--config", "unknown.json"], "model.widht: unknown key"),
    "missing_config": (["run", "--config", "nowhere.json"], "--config: cannot read 'nowhere.json'"),
    "invalid_json": (["run", "--config", "broken.json"], "--config: broken.json is not valid JSON"),
    "bad_target": (["run", "--set", "data.target=__import__('os').system('touch pwned')"],
                   "data.target: calling attribute access is not allowed"),
}


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    (root / "unknown.json").write_text(json.dumps({"model": {"widht": 3}}))
    (root / "broken.json").write_text('{"model": {"width": 3,}}')
    runs = Launched(root)
    runs.start("run", [*RUN_ARGS, "--out", "out"])
    runs.start("compare", ["compare", "--config", "quickstart", "--steps", str(COMPARE_STEPS), "--quiet", *CPU,
                           "--out", "cmp"])
    runs.start("diverge", ["run", "--config", "quickstart", "--steps", "200", *SMALL,
                           "--set", "optim.lr=50", "--out", "div"])
    for name, (args, _) in ERROR_CASES.items():
        runs.start(name, [*args, "--out", f"err-{name}"])
    yield runs
    runs.stop_all()


def _no_traceback(res: Result) -> None:
    assert "Traceback" not in res.stderr and "Traceback" not in res.stdout, res.stderr


def _read_metrics(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


# -- run --------------------------------------------------------------------------------------

def test_run_writes_the_contract_folder(launched):
    res = launched.result("run")
    assert res.returncode == 0, res.stderr
    _no_traceback(res)
    out = launched.root / "out"
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "metrics.csv", "final.npz", "nfa.png", "heatmaps.png"} <= names
    assert not [n for n in names if n.startswith(".") or n.endswith(".tmp")]

    cfg = RunConfig.from_dict(json.loads((out / "config.json").read_text()))
    assert cfg.steps == 25 and cfg.measure.every == 10 and cfg.model.width == 24 and cfg.model.depth == 2
    assert cfg.data.target == "x0*x1 + x1*x2"

    header, rows = _read_metrics(out / "metrics.csv")
    assert header[:8] == CONTRACT_COLUMNS
    keys = [(int(r["step"]), int(r["layer"])) for r in rows]
    assert keys == [(s, l) for s in (0, 10, 20, 25) for l in (1, 2)]
    for r in rows:
        assert (r["c_nfa"] == "") == (r["step"] == "0")
        assert float(r["uc_nfa"]) <= 1 and float(r["train_loss"]) > 0 and float(r["test_loss"]) > 0
        assert (r["feature_quality"] == "") == (r["layer"] == "2")
        if r["step"] == "0":
            assert float(r["rel_movement"]) == 0.0
        else:
            assert float(r["rel_movement"]) > 0

    with np.load(out / "final.npz", allow_pickle=False) as npz:
        files = set(npz.files)
        for l, shape in ((1, (24, 20)), (2, (24, 24))):
            for key in ("W", "W0", "K", "nfm", "agop"):
                assert f"layer{l}.{key}" in files
            w, k = npz[f"layer{l}.W"], npz[f"layer{l}.K"]
            assert w.shape == shape and k.shape == (24, 24)
            for key, want in (("nfm", w.T @ w), ("agop", w.T @ k @ w)):  # a float32 run: float32 products
                assert np.abs(npz[f"layer{l}.{key}"] - want).max() <= 1e-6 * np.abs(want).max(), key
            assert not np.array_equal(w, npz[f"layer{l}.W0"])
        assert npz["out.W"].shape == (1, 24)
        assert npz["X_measure"].shape == (80, 20) and npz["Y_measure"].shape == (80, 1)
        assert int(npz["step"]) == 25
        last_w = npz["layer1.W"]
    w_rows = [r for r in rows if r["step"] == "25" and r["layer"] == "1"]
    move = np.linalg.norm(last_w - np.load(out / "final.npz")["layer1.W0"]) / np.linalg.norm(last_w)
    assert float(w_rows[0]["rel_movement"]) == pytest.approx(move, rel=1e-6)

    for png in ("nfa.png", "heatmaps.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (out / png).stat().st_size > 5000
    _assert_heatmaps_show(out / "heatmaps.png", np.load(out / "final.npz"))
    assert "UC-NFA" in res.stdout and "wrote" in res.stdout
    assert "25/25" in res.stderr  # progress


def _assert_heatmaps_show(png: Path, npz) -> None:
    """Each layer's NFM and AGOP tiles in heatmaps.png are the colours of final.npz's matrices, in order."""
    from PIL import Image

    from core import plots

    image = np.asarray(Image.open(png).convert("RGB"))
    y = plots._HEAD_PX
    for layer in (1, 2):
        heights = []
        for col, key in enumerate(("nfm", "agop")):
            tile, scale, _ = plots.heatmap_tile(npz[f"layer{layer}.{key}"])
            x, top = plots._MARGIN_PX + col * (plots.TILE_PX + plots._STRIP_PX + plots._GAP_PX), y + plots._TITLE_PX
            shown = image[top:top + tile.shape[0], x:x + tile.shape[1]]
            assert np.array_equal(shown, tile), (layer, key)
            heights.append(tile.shape[0])
        y += plots._TITLE_PX + max(heights) + plots._MARGIN_PX


def test_run_config_json_reproduces_the_run(launched):
    assert launched.result("run").returncode == 0
    root = launched.root
    launched.start("rerun", ["run", "--config", "out/config.json", "--out", "again", "--quiet"])
    res = launched.result("rerun")
    assert res.returncode == 0, res.stderr
    _no_traceback(res)
    assert (root / "again" / "metrics.csv").read_text() == (root / "out" / "metrics.csv").read_text()
    assert (root / "again" / "config.json").read_text() == (root / "out" / "config.json").read_text()
    with np.load(root / "out" / "final.npz") as a, np.load(root / "again" / "final.npz") as b:
        assert set(a.files) == set(b.files)
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key])


# -- compare ------------------------------------------------------------------------------------

def test_compare_three_arms(launched):
    res = launched.result("compare")
    assert res.returncode == 0, res.stderr
    _no_traceback(res)
    cmp = launched.root / "cmp"
    for side, enabled, boost in (("baseline", False, 10.0), ("control", True, 1.0), ("slo", True, 10.0)):
        assert {"config.json", "metrics.csv", "final.npz", "nfa.png", "heatmaps.png"} <= {p.name for p in (cmp / side).iterdir()}
        cfg = json.loads((cmp / side / "config.json").read_text())
        assert cfg["optim"]["slo"]["enabled"] is enabled and cfg["steps"] == COMPARE_STEPS
        assert cfg["optim"]["slo"]["boost"] == boost
    with np.load(cmp / "baseline" / "final.npz") as a, np.load(cmp / "slo" / "final.npz") as b, \
            np.load(cmp / "control" / "final.npz") as c:
        np.testing.assert_array_equal(a["layer1.W0"], b["layer1.W0"])  # same start
        np.testing.assert_array_equal(a["layer1.W0"], c["layer1.W0"])
        np.testing.assert_array_equal(a["X_measure"], b["X_measure"])
        assert not np.array_equal(a["layer1.W"], b["layer1.W"])
    with open(cmp / "compare.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and {"arm", "step", "layer", "uc_nfa", "feature_quality", "step_norm"} <= set(rows[0])
    assert {r["arm"] for r in rows} == {"baseline", "control", "slo"}
    first = {r["arm"]: r["uc_nfa"] for r in rows if r["step"] == "0" and r["layer"] == "1"}
    assert len(set(first.values())) == 1  # identical initial networks

    def last(arm, key):
        return float([r for r in rows if r["arm"] == arm and r["step"] == str(COMPARE_STEPS)
                      and r["layer"] == "1"][0][key])

    assert last("slo", "uc_nfa") > last("baseline", "uc_nfa") + 0.1
    assert last("slo", "feature_quality") > last("baseline", "feature_quality") + 0.1
    assert last("slo", "uc_nfa") > last("control", "uc_nfa")  # the boost, not the normalised steps
    assert "SLO target" in res.stdout and (cmp / "compare.png").is_file()


# -- divergence -----------------------------------------------------------------------------------

def test_divergence_exit_3_keeps_files(launched):
    res = launched.result("diverge")
    assert res.returncode == 3, res.stderr
    _no_traceback(res)
    msg = [line for line in res.stderr.splitlines() if "diverged at step" in line]
    assert len(msg) == 1 and "lower optim.lr (now 50)" in msg[0]
    step = int(msg[0].split("diverged at step ")[1].split(":")[0])
    assert 0 < step < 200
    div = launched.root / "div"
    assert {"config.json", "metrics.csv", "final.npz", "nfa.png", "heatmaps.png"} <= {p.name for p in div.iterdir()}
    hist = History.read_csv(div / "metrics.csv")
    steps = sorted({r["step"] for r in hist.rows})
    assert steps[0] == 0 and steps[-1] < step
    assert all(np.isfinite(r["train_loss"]) for r in hist.rows)
    with np.load(div / "final.npz", allow_pickle=False) as npz:
        assert np.isfinite(npz["layer1.W"]).all() and int(npz["step"]) == steps[-1]


# -- user errors: exit 2, one line on stderr --------------------------------------------------------

@pytest.mark.parametrize("name", sorted(ERROR_CASES))
def test_user_errors_exit_2_with_one_line(launched, name):
    res = launched.result(name)
    expected = ERROR_CASES[name][1]
    assert res.returncode == 2, (res.returncode, res.stderr)
    _no_traceback(res)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: ") and expected in lines[0], lines[0]
    assert res.stdout == ""
    assert not (launched.root / "pwned").exists()
    assert not (launched.root / f"err-{name}" / "metrics.csv").exists()


def _main(capsys, *args) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("args,expected", [
    (["run", "--steps", "abc"], "invalid int value"),
    (["run", "--steps", "-5"], "steps: must be in"),
    (["launch"], "invalid choice"),
    (["run", "--set", "novalue"], "--set: expects KEY=VALUE"),
    (["run", "--set", "optim.slo.enabled=yes"], "optim.slo.enabled: must be true or false"),
    (["compare", "--set", "optim.slo.target_layer=9"], "optim.slo.target_layer"),
    (["run", "--config", "quickstart", "--set", "data.target=log(x0)"], "data.target: gives non-finite values"),
    (["run", "--set", "data.kind=file", "--set", "data.path=missing.csv"], "data.path: no such file"),
    (["run", "--set", "model.widht=3"], "model.widht: unknown key"),
])
def test_user_errors_in_process(tmp_path, monkeypatch, capsys, args, expected):
    monkeypatch.chdir(tmp_path)
    code, out, err = _main(capsys, *args, "--out", str(tmp_path / "o")) if args[0] in ("run", "compare") \
        else _main(capsys, *args)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and expected in err, err
    assert not (tmp_path / "o" / "metrics.csv").exists()


def test_binary_config_file_is_a_user_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    np.savez(tmp_path / "final.npz", a=np.ones(3))
    code, _, err = _main(capsys, "run", "--config", str(tmp_path / "final.npz"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--config" in err, err


def test_out_that_is_a_file_fails_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "taken").write_text("x")
    code, out, err = _main(capsys, "run", "--out", "taken", "--steps", "3", *SMALL)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--out" in err, err
    assert out == ""


def test_small_run_in_process(tmp_path, capsys):
    code, out, err = _main(capsys, "run", "--steps", "5", "--quiet", *SMALL, "--set", "model.depth=1",
                           "--set", "optim.slo.enabled=true", "--out", str(tmp_path / "r"))
    assert code == 0, err
    assert "SLO on (layer 1, boost 10, speed 0.02)" in err and "wrote" in out
    header, rows = _read_metrics(tmp_path / "r" / "metrics.csv")
    assert [r["step"] for r in rows] == ["0", "5"]
