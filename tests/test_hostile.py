"""Hostile inputs against the real command line: each case is a subprocess with a timeout.

Every case asserts the exit status, one line on stderr naming the field (for user errors),
no traceback, and a bounded peak memory (RLIMIT_AS in the child; ru_maxrss from wait4).
A finished run folder that a case points at must be byte-identical afterwards. The cases
run together in a thread pool, once per module.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import resource
import signal
import struct
import subprocess
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
AS_LIMIT = 2 << 30  # address space of a child: torch and a small run fit in it, a decompression bomb does not
RSS_LIMIT_MB = 700  # peak resident memory allowed to a refused case (a torch import is about 300 MB)
TIMEOUT = 240  # seconds; generous for a loaded 2-core CI machine, short of "never returns"
TINY = ["--set", "device=cpu", "--set", "model.width=8", "--set", "model.depth=2", "--set", "data.d=4",
        "--set", "data.target=x0*x1", "--set", "data.n_train=60", "--set", "data.n_test=20",
        "--set", "measure.n_points=20", "--set", "measure.every=5", "--quiet"]
DEEP = "[" * 5000 + "]" * 5000
_LAUNCHES = itertools.count()


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str
    max_rss_mb: float
    seconds: float


def _env(extra: dict | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "MPLBACKEND": "Agg"}
    for k in list(env):
        if k.startswith("NFA_"):
            env.pop(k)
    env.update(extra or {})
    return env


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))


def launch(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.Popen:
    name = f"{hashlib.sha1(repr(args).encode()).hexdigest()[:10]}-{next(_LAUNCHES)}"  # same args: own logs
    out, err = open(cwd / f".{name}.out", "w+"), open(cwd / f".{name}.err", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", *args], cwd=cwd, env=_env(env), stdout=out,
                            stderr=err, stdin=subprocess.DEVNULL, preexec_fn=_limit_memory)
    proc._files = (out, err)  # type: ignore[attr-defined]
    return proc


def finish(proc: subprocess.Popen, timeout: float = TIMEOUT) -> Result:
    """Waits with wait4 (for the child's own peak memory); kills it at the timeout."""
    start, status, usage = time.monotonic(), None, None
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() - start > timeout:
            proc.kill()
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = -9
            raise AssertionError(f"{proc.args} did not return within {timeout} s")
        time.sleep(0.05)
    proc.returncode = os.waitstatus_to_exitcode(status)
    texts = []
    for f in proc._files:  # type: ignore[attr-defined]
        f.seek(0)
        texts.append(f.read())
        f.close()
    return Result(proc.returncode, texts[0], texts[1], usage.ru_maxrss / 1024, time.monotonic() - start)


def run_cli(args: list[str], cwd: Path, env: dict | None = None, timeout: float = TIMEOUT) -> Result:
    return finish(launch(args, cwd, env), timeout)


def tree_digest(folder: Path) -> dict[str, str]:
    """name -> sha256 of every file under ``folder`` (hidden ones too)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# -- input files the cases use ----------------------------------------------------------------

def _zip_member(name: str, payload_head: bytes, zeros: int) -> tuple[bytes, bytes]:
    """(local entry, central entry) of a deflated zip member holding ``payload_head`` then ``zeros`` zero bytes.

    The deflate stream of the zeros is one compressed 1 MiB block repeated (full flushes reset
    the compressor), so an 800 MB member costs a second to make, and is a real, valid zip entry.
    """
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block, chunk = 1 << 20, bytes(1 << 20)
    parts = [c.compress(payload_head) + c.flush(zlib.Z_FULL_FLUSH)]
    first = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    again = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    assert first == again
    full, rest = divmod(zeros, block)
    crc = zlib.crc32(payload_head)
    parts.append(first * full)
    for _ in range(full):
        crc = zlib.crc32(chunk, crc)
    parts.append(c.compress(bytes(rest)) + c.flush())
    crc = zlib.crc32(bytes(rest), crc)
    data = b"".join(parts)
    size = len(payload_head) + zeros
    fname = name.encode()
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(data), size, len(fname), 0) + fname
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0x21, crc, len(data), size,
                          len(fname), 0, 0, 0, 0, 0, 0) + fname
    return local + data, central


def write_zip_bomb(path: Path, rows: int, cols: int) -> None:
    """An NPZ whose X.npy is a ``rows`` x ``cols`` float64 array of zeros (a few hundred KiB on disk)."""
    header = {"descr": "<f8", "fortran_order": False, "shape": (rows, cols)}
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    head = b"\x93NUMPY\x01\x00" if not buf.getvalue().startswith(b"\x93NUMPY") else b""
    entries = [_zip_member("X.npy", head + buf.getvalue(), rows * cols * 8)]
    ybuf = io.BytesIO()
    np.save(ybuf, np.arange(rows) % 2)
    entries.append(_zip_member("y.npy", ybuf.getvalue(), 0))
    with open(path, "wb") as f:
        offsets, centrals = [], []
        for local, central in entries:
            offsets.append(f.tell())
            f.write(local)
            centrals.append(central)
        start = f.tell()
        for offset, central in zip(offsets, centrals):
            f.write(central[:42] + struct.pack("<I", offset) + central[46:])
        end = f.tell()
        f.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), end - start, start, 0))


def _prepare_inputs(root: Path) -> None:
    (root / "deep.json").write_text(DEEP)
    (root / "bigint.json").write_text('{"seed": ' + "9" * 5000 + "}")
    os.mkfifo(root / "fifo.json")
    os.mkfifo(root / "fifo.csv")
    (root / "emptydir").mkdir()
    (root / "adir.csv").mkdir()
    (root / "afile").write_text("x")
    (root / "huge_cell.csv").write_text("a,b,y\n" + "".join(f"{i},{i % 3},{1e300 if i == 5 else i + 0.5}\n"
                                                            for i in range(40)))
    (root / "huge_feature.csv").write_text("a,b,y\n" + "".join(f"{1e300 if i == 5 else i},{i % 3},{i + 0.5}\n"
                                                               for i in range(40)))
    (root / "one_class.csv").write_text("a,b,y\n" + "".join(f"{i},{i * 2 % 7},3\n" for i in range(40)))
    (root / "random.npz").write_bytes(np.random.default_rng(0).bytes(4096))
    write_zip_bomb(root / "bomb.npz", 40_000, 2_500)  # 800 MB of float64 zeros in about 800 KB


# -- the cases ---------------------------------------------------------------------------------

ERR = 2
# name: (args, expected exit status, text that the one stderr line must contain)
CASES: dict[str, tuple[list[str], int, str]] = {
    "config_dev_zero": (["run", "--config", "/dev/zero", *TINY], ERR, "--config: '/dev/zero' is a device"),
    "config_fifo": (["run", "--config", "fifo.json", *TINY], ERR, "--config: 'fifo.json' is a FIFO"),
    "tui_config_fifo": (["tui", "--config", "fifo.json"], ERR, "--config: 'fifo.json' is a FIFO"),
    "tui_config_dev_zero": (["tui", "--config", "/dev/zero"], ERR, "--config: '/dev/zero' is a device"),
    "config_folder_without_config": (["run", "--config", "emptydir", *TINY], ERR, "the folder has no config.json"),
    "config_deep_json": (["run", "--config", "deep.json", *TINY], ERR, "--config: JSON nested 5000 deep"),
    "tui_config_deep_json": (["tui", "--config", "deep.json"], ERR, "--config: JSON nested 5000 deep"),
    "set_deep_json": (["run", "--set", f"data={DEEP}", *TINY], ERR, "data: JSON nested 5000 deep"),
    "compare_set_deep_json": (["compare", "--set", f"optim={DEEP}", *TINY], ERR, "optim: JSON nested 5000 deep"),
    "config_int_5000_digits": (["run", "--config", "bigint.json", *TINY], ERR, "integer of 5000 digits"),
    "set_int_5000_digits": (["run", *TINY, "--set", "seed=" + "7" * 5000], ERR, "seed: holds an integer of 5000"),
    "target_400_digits": (["run", *TINY, "--set", "data.target=" + "9" * 400 + "*x0"], ERR,
                          "data.target: the number a 400-digit integer is too large"),
    "target_float32_overflow": (["run", *TINY, "--set", "data.target=x0**-16"], ERR,
                                "data.target: the target values reach"),
    # finite in float32 (labels up to 4.9e13 at the default sizes), but the data, not lr, is to blame
    "target_exp_exp": (["run", *TINY, "--set", "data.target=exp(exp(x0))", "--set", "data.d=20", "--set",
                        "data.n_train=2000", "--set", "data.n_test=1000", "--steps", "20"], 3,
                       ": rescale data.target, or lower optim.lr (now 0.05) and reset"),
    "file_1e300_cell": (["run", *TINY, "--set", "data.kind=file", "--set", "data.path=huge_cell.csv"], ERR,
                        "data.path: the labels reach 1e+300"),
    "file_1e300_feature": (["run", *TINY, "--set", "data.kind=file", "--set", "data.path=huge_feature.csv"], ERR,
                           "data.path: the standardised features reach 8.79e+298, too large for float32"),
    "web_port_99999": (["web", "--port", "99999"], ERR, "--port: must be a whole number in 1..65535"),
    "web_port_minus_1": (["web", "--port", "-1"], ERR, "--port: must be a whole number in 1..65535"),
    "out_empty_string": (["run", *TINY, "--out", ""], ERR, "--out: is empty"),
    "config_empty_string": (["run", "--config", "", *TINY], ERR, "--config: is empty"),
    "compare_out_empty_string": (["compare", *TINY, "--out", ""], ERR, "--out: is empty"),
    "out_under_a_file": (["run", *TINY, "--out", "afile/run"], ERR, "--out: cannot create the folder"),
    "data_fifo": (["run", *TINY, "--set", "data.kind=file", "--set", "data.path=fifo.csv"], ERR,
                  "data.path: 'fifo.csv' is a FIFO"),
    "data_folder": (["run", *TINY, "--set", "data.kind=file", "--set", "data.path=adir.csv"], ERR,
                    "data.path: 'adir.csv' is a folder"),
    "data_npz_bomb": (["run", *TINY, "--set", "data.kind=file", "--set", "data.path=bomb.npz"], ERR,
                      "data.path: X and y unpack to 763 MiB"),
    "data_random_bytes_npz": (["run", *TINY, "--set", "data.kind=file", "--set", "data.path=random.npz"], ERR,
                              "data.path: is not a readable NPZ file (not a zip archive)"),
    "data_single_class": (["run", *TINY, "--set", "data.kind=file", "--set", "data.path=one_class.csv"], ERR,
                          "data.path: every label is 3: a single class"),
    "nfa_max_width": (["run", *TINY, "--set", "model.width=64"], ERR, "(the upper bound is NFA_MAX_WIDTH)"),
    "nfa_max_bad_value": (["run", *TINY], ERR, "NFA_MAX_STEPS: must be a positive integer"),
    "resume_with_config": (["run", "--resume", "done", "--config", "quickstart"], ERR,
                           "--resume: --config cannot be combined"),
    "resume_not_a_run": (["run", "--resume", "emptydir"], ERR, "--resume: 'emptydir' is not a run folder"),
    "checkpoint_every_negative": (["run", *TINY, "--checkpoint-every", "-1"], ERR, "--checkpoint-every: must be"),
    # a finished run is never overwritten
    "out_existing_run": (["run", *TINY, "--steps", "3", "--out", "done"], ERR, "--out: 'done' is not empty"),
    "config_run_out_same_run": (["run", "--config", "done", "--out", "done"], ERR, "--out: 'done' is not empty"),
    "compare_out_existing_run": (["compare", *TINY, "--out", "done"], ERR, "--out: 'done' is not empty"),
    "force_over_mixed_folder": (["run", *TINY, "--steps", "3", "--out", "mixed", "--force"], ERR,
                                "holds 'notes.txt', which is not a run's file"),
    # failure is a state: exit 3, measurements kept
    "dead_adam_lr_100": (["run", *TINY, "--steps", "60", "--set", "optim.name=adam", "--set", "optim.lr=100",
                          "--out", "dead_adam"], 3, "dead at step"),
    "dead_slo_speed_100": (["run", *TINY, "--steps", "60", "--set", "optim.slo.enabled=true",
                            "--set", "optim.slo.speed=100", "--out", "dead_slo"], 3, "dead at step"),
}
ENVS = {"nfa_max_width": {"NFA_MAX_WIDTH": "32"}, "nfa_max_bad_value": {"NFA_MAX_STEPS": "lots"}}
WORKING = {  # constant targets work: G* = 0, quality n/a (and more measurement points than training points)
    "constant_1_plus_2": ["run", *TINY, "--steps", "5", "--set", "data.target=1+2", "--set", "measure.n_points=1000",
                          "--out", "const2"],
    "constant_sin_1": ["run", *TINY, "--steps", "5", "--set", "data.target=sin(1)", "--out", "const3"],
}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    _prepare_inputs(root)
    done = run_cli(["run", *TINY, "--steps", "10", "--out", "done"], root)
    assert done.returncode == 0, done.stderr
    (root / "mixed").mkdir()
    for name in ("config.json", "metrics.csv"):
        (root / "mixed" / name).write_bytes((root / "done" / name).read_bytes())
    (root / "mixed" / "notes.txt").write_text("a user's own notes")
    before = {"done": tree_digest(root / "done"), "mixed": tree_digest(root / "mixed")}
    jobs = {**{k: (v[0], ENVS.get(k)) for k, v in CASES.items()}, **{k: (v, None) for k, v in WORKING.items()}}
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(run_cli, args, root, env) for name, (args, env) in jobs.items()}
        results = {name: f.result() for name, f in futures.items()}
    yield root, results, before


def _one_line(res: Result) -> str:
    assert "Traceback" not in res.stderr and "Traceback" not in res.stdout, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    return lines[0]


@pytest.mark.parametrize("name", sorted(CASES))
def test_case(hostile, name):
    root, results, before = hostile
    args, status, text = CASES[name]
    res = results[name]
    assert res.returncode == status, (res.returncode, res.stderr[-2000:])
    assert res.max_rss_mb < RSS_LIMIT_MB, res.max_rss_mb
    if status == ERR:
        line = _one_line(res)
        assert line.startswith("error: ") and text in line, line
        assert res.stdout == ""
    else:  # a stopped run: its one-line reason on stderr after the header line, the table on stdout
        assert "Traceback" not in res.stderr
        assert text in res.stderr.strip().splitlines()[-1] and "wrote" in res.stdout, res.stderr
    assert tree_digest(root / "done") == before["done"], "a finished run was modified"
    assert tree_digest(root / "mixed") == before["mixed"], "a folder with foreign files was modified"


def test_dead_runs_keep_their_measurements(hostile):
    root, results, _ = hostile
    for folder in ("dead_adam", "dead_slo"):
        state = json.loads((root / folder / "state.json").read_text())
        assert state["status"] == "dead" and state["message"].startswith(f"dead at step {state['step']}: ")
        assert "layer" in state["message"] and ("optim.lr" in state["message"] or "optim.slo.speed" in state["message"])
        rows = (root / folder / "metrics.csv").read_text().splitlines()
        assert rows[-1].startswith(f"{state['step']},") and len(rows) > 3  # measured up to the stop, kept
        assert (root / folder / "nfa.png").is_file()


@pytest.mark.parametrize("name", sorted(WORKING))
def test_constant_targets_and_small_training_sets_work(hostile, name):
    root, results, _ = hostile
    res = results[name]
    assert res.returncode == 0, res.stderr[-2000:]
    assert "Traceback" not in res.stderr and "nan" not in res.stdout
    table = res.stdout.splitlines()
    assert table[2].split()[-1] == "n/a"  # layer 1's feature quality: G* = 0, so undefined
    folder = root / WORKING[name][-1]
    with np.load(folder / "final.npz") as final:
        assert not final["g_star"].any()
        assert final["X_measure"].shape[0] == (60 if "measure.n_points=1000" in WORKING[name] else 20)
    if "measure.n_points=1000" in WORKING[name]:
        assert "note: measure.n_points is 1000 but the training set has 60 points; K and AGOP are averaged over all 60" \
            in res.stderr


def test_default_out_names_are_unique_within_a_second(tmp_path):
    """Two runs started together without --out get two folders, both complete."""
    procs = [launch(["run", *TINY, "--steps", "1"], tmp_path) for _ in range(2)]
    results = [finish(p) for p in procs]
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    folders = sorted((tmp_path / "runs").iterdir())
    assert len(folders) == 2
    wrote = sorted(r.stdout.strip().splitlines()[-1] for r in results)
    assert wrote == sorted(f"wrote {Path('runs') / f.name}" for f in folders)
    for f in folders:
        assert (f / "final.npz").is_file() and (f / "state.json").is_file()


def test_force_replaces_an_earlier_run(tmp_path):
    first = run_cli(["run", *TINY, "--steps", "10", "--out", "r"], tmp_path)
    assert first.returncode == 0, first.stderr
    (tmp_path / "r" / ".final.npz.abcd1234.tmp.npz").write_bytes(b"left by a killed save")
    second = run_cli(["run", *TINY, "--steps", "5", "--out", "r", "--force"], tmp_path)
    assert second.returncode == 0, second.stderr
    assert json.loads((tmp_path / "r" / "state.json").read_text())["step"] == 5
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == sorted(
        ["config.json", "metrics.csv", "final.npz", "state.npz", "state.json", "nfa.png", "heatmaps.png"])


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders; see test_cli's in-process check")
def test_unwritable_out_fails_before_training(tmp_path):
    (tmp_path / "ro").mkdir()
    os.chmod(tmp_path / "ro", 0o555)
    res = run_cli(["run", *TINY, "--steps", "5", "--out", "ro"], tmp_path)
    assert res.returncode == 2 and "--out: cannot write in 'ro'" in _one_line(res)


# -- damaged run folders: one line, exit 2 -----------------------------------------------------

def _damage(folder: Path, how: str) -> None:
    if how == "metrics_cut_mid_row":
        text = (folder / "metrics.csv").read_text()
        (folder / "metrics.csv").write_text(text[: len(text) - 7])
    elif how in ("negative_sample_pos", "huge_step"):
        for name in ("state.json",):
            meta = json.loads((folder / name).read_text())
            meta["sample_pos" if how == "negative_sample_pos" else "step"] = -3 if how == "negative_sample_pos" \
                else 99_999_999_999
            (folder / name).write_text(json.dumps(meta))
        with np.load(folder / "state.npz") as npz:
            arrays = dict(npz)
        arrays["state_meta"] = np.frombuffer((folder / "state.json").read_bytes(), dtype=np.uint8)
        np.savez(folder / "state.npz", **arrays)
    elif how == "state_truncated":
        data = (folder / "state.npz").read_bytes()
        (folder / "state.npz").write_bytes(data[: len(data) // 2])
    elif how == "state_wrong_shape":
        with np.load(folder / "state.npz") as npz:
            arrays = dict(npz)
        arrays["param.0"] = np.zeros((3, 3), np.float32)
        np.savez(folder / "state.npz", **arrays)


DAMAGE = {
    "metrics_cut_mid_row": "metrics.csv: ends mid-row",
    "negative_sample_pos": "sample_pos must be a whole number >= 0; got -3",
    "huge_step": "step 99999999999 does not match metrics.csv",
    "state_truncated": "state.npz",
    "state_wrong_shape": "array 'param.0' has shape (3, 3)",
}


def test_damaged_run_folders_are_refused(tmp_path):
    base = run_cli(["run", *TINY, "--steps", "10", "--out", "base"], tmp_path)
    assert base.returncode == 0, base.stderr
    procs = {}
    for how in DAMAGE:
        folder = tmp_path / how
        folder.mkdir()
        for p in (tmp_path / "base").iterdir():
            (folder / p.name).write_bytes(p.read_bytes())
        _damage(folder, how)
        procs[how] = launch(["run", "--resume", how], tmp_path)
    for how, text in DAMAGE.items():
        res = finish(procs[how])
        line = _one_line(res)
        assert res.returncode == 2 and line.startswith("error: run folder: ") and text in line, line


# -- checkpoints, signals, resume ------------------------------------------------------------

STEPS = 2000
RESUMABLE = [*TINY, "--steps", str(STEPS), "--set", "measure.every=50", "--set", "optim.name=adam",
             "--set", "optim.lr=0.003", "--checkpoint-every", "0"]
COMPARED = ("config.json", "metrics.csv", "final.npz", "state.npz", "state.json")


def _wait_for_checkpoint(folder: Path, min_step: int = 100) -> int:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            step = json.loads((folder / "state.json").read_text())["step"]
        except (OSError, ValueError, KeyError):
            step = -1
        if step >= min_step:
            assert step < STEPS, "the run ended before it could be interrupted"
            return step
        time.sleep(0.02)
    raise AssertionError("no checkpoint appeared")


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """An uninterrupted run, and the same run killed (SIGKILL) and stopped (SIGTERM) midway, then resumed."""
    root = tmp_path_factory.mktemp("resume")
    reference = launch(["run", *RESUMABLE, "--out", "ref"], root)
    victims = {sig: launch(["run", *RESUMABLE, "--out", sig.name], root) for sig in (signal.SIGKILL, signal.SIGTERM)}
    cut, resumed = {}, {}
    for sig, proc in victims.items():
        _wait_for_checkpoint(root / sig.name)
        proc.send_signal(sig)
        cut[sig] = finish(proc)
        step = json.loads((root / sig.name / "state.json").read_text())["step"]
        resumed[sig] = (step, launch(["run", "--resume", sig.name, "--quiet"], root))
    ref = finish(reference)
    assert ref.returncode == 0, ref.stderr
    yield root, cut, {sig: (step, finish(proc)) for sig, (step, proc) in resumed.items()}


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_interrupted_run_resumes_to_the_same_files(interrupted, sig):
    root, cut, resumed = interrupted
    res = cut[sig]
    assert res.returncode == (-9 if sig == signal.SIGKILL else 143), res.stderr
    if sig == signal.SIGTERM:
        line = res.stderr.strip().splitlines()[-1]
        assert line.startswith("interrupted by SIGTERM at step ") and f" of {STEPS}; saved in SIGTERM" in line
        assert line.endswith("continue with python -m app.cli run --resume SIGTERM") and "Traceback" not in res.stderr
    stopped_at, again = resumed[sig]
    assert 0 < stopped_at < STEPS
    assert again.returncode == 0, again.stderr
    assert f"resume: {sig.name} at step {stopped_at} of {STEPS}" in again.stderr
    for name in COMPARED:
        assert (root / sig.name / name).read_bytes() == (root / "ref" / name).read_bytes(), name
    assert not [p.name for p in (root / sig.name).iterdir() if p.name.startswith(".")]


def test_ctrl_c_saves_and_resumes_in_process(tmp_path, monkeypatch, capsys):
    """SIGINT (Ctrl-C) mid-run: exit 130, the folder saved where the run was; resuming ends where a whole run ends.

    The signal is sent to this process by the checkpoint after step 60, so it always lands mid-run.
    """
    from app import cli
    from core.engine import Engine

    monkeypatch.chdir(tmp_path)
    args = ["run", *TINY, "--set", "optim.name=adam", "--set", "optim.lr=0.003", "--steps", "300",
            "--set", "measure.every=30", "--checkpoint-every", "0"]
    assert cli.main([*args, "--out", "ref"]) == 0
    save, sent = Engine.save, []

    def save_then_interrupt(self, folder, *a, **k):
        out = save(self, folder, *a, **k)
        if self.step_count >= 60 and not sent:
            sent.append(self.step_count)
            os.kill(os.getpid(), signal.SIGINT)
        return out

    monkeypatch.setattr(Engine, "save", save_then_interrupt)
    capsys.readouterr()
    code = cli.main([*args, "--out", "cut"])
    err = capsys.readouterr().err
    step = json.loads((tmp_path / "cut" / "state.json").read_text())["step"]
    assert code == 130 and f"interrupted by SIGINT at step {step} of 300; saved in cut" in err, err
    assert sent == [60] and step == 60  # stopped before the next step, saved there
    monkeypatch.setattr(Engine, "save", save)
    assert cli.main(["run", "--resume", "cut", "--quiet"]) == 0
    for name in COMPARED:
        assert (tmp_path / "cut" / name).read_bytes() == (tmp_path / "ref" / name).read_bytes(), name


def test_unwritable_out_is_found_before_any_training(tmp_path, monkeypatch, capsys):
    """In process, for root too: a folder where no file can be created stops the run before the engine starts."""
    import tempfile

    from app import cli, headless

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    monkeypatch.setattr(headless, "Engine", lambda *a, **k: pytest.fail("training started"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ro").mkdir()
    for command in ("run", "compare"):
        code = cli.main([command, *TINY, "--out", "ro"])
        err = capsys.readouterr().err
        assert code == 2 and err.strip() == "error: --out: cannot write in 'ro': Permission denied", err


RUNNER_CASES = {  # python -m app.runner CONFIG.json RUN_FOLDER: read as run --config reads it
    "dev_zero": ("/dev/zero", "CONFIG.json: '/dev/zero' is a device or socket, not a regular config file"),
    "fifo": ("fifo.json", "CONFIG.json: 'fifo.json' is a FIFO, not a regular config file"),
    "deep_json": ("deep.json", "CONFIG.json: JSON nested 5000 deep"),
    "bad_field": ("width0.json", "model.width: must be in [1, 2048]; got 0"),
    "missing": ("nope.json", "CONFIG.json: cannot read 'nope.json': no such file"),
}


@pytest.mark.parametrize("name", sorted(RUNNER_CASES))
def test_the_runner_entry_refuses_bad_configs_in_one_line(tmp_path, name):
    path, text = RUNNER_CASES[name]
    os.mkfifo(tmp_path / "fifo.json")
    (tmp_path / "deep.json").write_text(DEEP)
    (tmp_path / "width0.json").write_text('{"model": {"width": 0}}')
    proc = subprocess.run([sys.executable, "-m", "app.runner", path, "run"], cwd=tmp_path, env=_env(),
                          capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL,
                          preexec_fn=_limit_memory)
    res = Result(proc.returncode, proc.stdout, proc.stderr, 0.0, 0.0)
    assert res.returncode == ERR
    assert text in _one_line(res)
    assert not (tmp_path / "run").exists()
