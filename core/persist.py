"""Saving and loading runs: JSON + NPZ, no pickles, every file written atomically.

A run folder holds the contract's files (config.json, metrics.csv, final.npz, and with
``figures`` nfa.png and heatmaps.png) plus ``state.npz`` and ``state.json``, which carry
the exact weights, optimiser state and position in the batch order so that a loaded run
resumes bit-for-bit on CPU.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import zipfile
from pathlib import Path

import numpy as np
import torch

from core.config import MAX_CONFIG_BYTES, ConfigError, load_config, parse_json
from core.history import History
from core.iofiles import (RUN_FILES, atomic_write_npz, atomic_write_text, foreign_entries,  # noqa: F401
                          read_bytes_bounded, read_npz, regular_file, remove_stale_temps)

STATE_VERSION = 1
MAX_METRICS_BYTES = 1 << 30
STATES = ("running", "diverged", "dead")
META_KEY = "state_meta"
"""state.npz carries state.json's text too: a save killed between the two files cannot pair old counters with new weights."""


def final_arrays(snap, x_measure: np.ndarray, y_measure: np.ndarray, out_w: np.ndarray) -> dict[str, np.ndarray]:
    """The contract's final.npz content for a snapshot: every parameter (``layer{l}.W``,
    ``layer{l}.b`` and ``out.W``, ``out.b`` when the model has biases) and the measurements."""
    arrays: dict[str, np.ndarray] = {}
    for s in snap.layers:
        for key, value in (("W", s.W), ("W0", s.W0), ("K", s.K), ("nfm", s.nfm), ("agop", s.agop),
                           ("centered_nfm", s.centered_nfm), ("centered_agop", s.centered_agop),
                           ("utku", s.utku)):
            arrays[f"layer{s.layer}.{key}"] = np.asarray(value)
    arrays["out.W"] = out_w
    if snap.biases:
        for l, b in enumerate(snap.biases[:-1], start=1):
            arrays[f"layer{l}.b"] = np.asarray(b)
        arrays["out.b"] = np.asarray(snap.biases[-1])
    arrays["X_measure"] = x_measure
    arrays["Y_measure"] = y_measure
    if snap.g_star is not None:
        arrays["g_star"] = snap.g_star
    arrays["step"] = np.array(snap.measured_step)
    return arrays


def save_engine(engine, folder: Path, figures: bool = False, measure: bool = True) -> Path:
    """Writes the run folder; the state files last, so a kill mid-save leaves the previous state whole.

    With ``measure=False`` (a checkpoint between measurements) nothing is measured: metrics.csv and
    final.npz are those of the last measured step, state.npz that of the current step, and a run
    resumed from it records exactly the rows an uninterrupted run records.
    """
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(folder, RUN_FILES)  # left by a save that was killed
    snap = engine.snapshot() if measure else engine._last
    atomic_write_text(folder / "config.json", engine.config.to_json() + "\n")
    engine.history.write_csv(folder / "metrics.csv")
    ds = engine.dataset
    out_w = snap.out_weight
    atomic_write_npz(folder / "final.npz", final_arrays(
        snap, ds.x_measure.cpu().numpy(), ds.y_measure.cpu().numpy(), out_w))
    _save_state(engine, folder)
    if figures:
        from core import plots

        plots.write_figures(snap, folder)
    return folder


def _save_state(engine, folder: Path) -> None:
    arrays = {}
    for i, p in enumerate(engine.model.parameters()):
        arrays[f"param.{i}"] = p.detach().cpu().numpy()
    for i, p in enumerate(engine._params0):
        arrays[f"param0.{i}"] = p.cpu().numpy()
    opt_state = engine._optimizer.state_dict()["state"]
    for idx, entries in opt_state.items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                arrays[f"optim.{idx}.{key}"] = value.detach().cpu().numpy()
            elif isinstance(value, (int, float)):
                arrays[f"optim.{idx}.{key}"] = np.array(value)
    meta = {"version": STATE_VERSION, "step": engine._step, "sample_pos": engine._sample_pos,
            "status": engine._status, "message": engine._message, "optim_kind": engine._optim_kind}
    text = json.dumps(meta, indent=2) + "\n"
    arrays[META_KEY] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)  # travels with the weights it describes
    atomic_write_npz(folder / "state.npz", arrays)
    atomic_write_text(folder / "state.json", text)  # a readable copy


def load_engine(cls, folder: Path, dataset=None):
    """Reopens a run folder; anything truncated or inconsistent is refused with one line."""
    if not folder.is_dir():
        raise ConfigError("run folder", f"{str(folder)!r} is not a folder")
    for name in ("config.json", "state.npz", "state.json", "metrics.csv"):
        if not (folder / name).is_file():
            raise ConfigError("run folder", f"{name} is missing in {folder.name!r}; is it a saved run?")
    remove_stale_temps(folder, RUN_FILES)
    cfg = load_config(folder / "config.json")
    engine = cls(cfg, dataset)
    try:
        meta = _read_meta(folder / "state.json")
        arrays = read_npz(folder / "state.npz", "state.npz", _state_bytes(engine), _state_shapes(engine))
        if META_KEY in arrays:  # authoritative: written in the same file as the weights
            meta = _check_meta(parse_json(arrays.pop(META_KEY).tobytes().decode("utf-8"), "state.npz"))
        history = _read_history(folder / "metrics.csv", cfg.model.depth)
        _restore(engine, meta, arrays, history, folder)
    except ConfigError as err:
        raise ConfigError("run folder", f"{folder.name}: {err}"[:300]) from None
    except (ValueError, KeyError, TypeError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise ConfigError("run folder", f"the saved state is damaged or from another version ({err})"[:300]) from None
    return engine


def _read_meta(path: Path) -> dict:
    return _check_meta(parse_json(read_bytes_bounded(path, "state.json", MAX_CONFIG_BYTES).decode("utf-8"),
                                  "state.json"))


def _check_meta(meta) -> dict:
    if not isinstance(meta, dict):
        raise ConfigError("state.json", "is not a JSON object")
    if meta.get("version") != STATE_VERSION:
        raise ConfigError("state.json", f"has state version {meta.get('version')!r}; this program reads {STATE_VERSION}")
    for key in ("step", "sample_pos"):
        value = meta.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError("state.json", f"{key} must be a whole number >= 0; got {value!r}"[:120])
    if meta.get("status") not in STATES:
        raise ConfigError("state.json", f"status must be one of {', '.join(STATES)}; got {meta.get('status')!r}"[:120])
    return meta


def _read_history(path: Path, depth: int) -> History:
    """metrics.csv, refused when cut mid-row or when a measured step lacks a layer."""
    regular_file(path, "metrics.csv", MAX_METRICS_BYTES)
    with open(path, "rb") as f:
        f.seek(0, 2)
        if f.tell() == 0:
            raise ConfigError("metrics.csv", "is empty")
        f.seek(-1, 2)
        if f.read(1) != b"\n":
            raise ConfigError("metrics.csv", "ends mid-row (the file was cut)")
    with open(path, newline="", encoding="utf-8") as f:
        header = next(csv.reader(f), [])
        for i, row in enumerate(csv.reader(f), start=2):
            if len(row) != len(header):
                raise ConfigError("metrics.csv", f"line {i} has {len(row)} cells; the header has {len(header)}")
    history = History.read_csv(path)
    steps, layers = history.column("step"), history.column("layer")
    back = np.flatnonzero(np.diff(steps) < 0)
    if len(back):
        i = int(back[0])
        raise ConfigError("metrics.csv", f"step {steps[i + 1]} comes after step {steps[i]}")
    if not len(steps):
        raise ConfigError("metrics.csv", "has no measured step")
    starts = np.flatnonzero(np.r_[True, np.diff(steps) != 0])
    for a, b in zip(starts, [*starts[1:], len(steps)]):
        got = sorted(layers[a:b].tolist())
        if got != list(range(1, depth + 1)):
            raise ConfigError("metrics.csv", f"step {steps[a]} has rows for layers {got}; expected 1..{depth}")
    return history


def _state_shapes(engine) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for i, p in enumerate(engine.model.parameters()):
        shapes[f"param.{i}"] = shapes[f"param0.{i}"] = tuple(p.shape)
    return shapes


def _state_bytes(engine) -> int:
    """What state.npz may unpack to: weights, initial weights and two optimiser moments, as float64, plus slack."""
    n = sum(p.numel() for p in engine.model.parameters())
    return 8 * 4 * n + (1 << 20)


def _restore(engine, meta: dict, arrays: dict, history: History, folder: Path) -> None:
    params = list(engine.model.parameters())
    for i in range(len(params)):
        for name in (f"param.{i}", f"param0.{i}"):
            if name not in arrays:
                raise ConfigError("state.npz", f"has no array {name!r}")
    with torch.no_grad():
        for i, p in enumerate(params):
            p.copy_(_tensor(arrays[f"param.{i}"], p))
            engine._params0[i].copy_(_tensor(arrays[f"param0.{i}"], p))
    engine._w0 = [engine._params0[i].clone() for i, p in enumerate(params)
                  if any(p is w for w in engine.model.weights())]
    _restore_optimizer(engine, arrays)
    step, sample_pos, status = int(meta["step"]), int(meta["sample_pos"]), meta["status"]
    _check_counters(engine, step, sample_pos, status, history)
    engine._step = step
    engine._sample_pos = sample_pos
    engine._perm_cache = None
    engine._history = history.until(engine._step)
    norms = [r["step_norm"] for r in engine._history.rows_at(engine._step)]
    if norms and all(v is not None for v in norms):
        engine._step_norms = (engine._step, tuple(norms))
    if status == "diverged":
        engine._status, engine._message = "diverged", str(meta.get("message", ""))
        final = read_npz(folder / "final.npz", "final.npz", _state_bytes(engine) * 4 + (64 << 20))
        engine._last = _diverged_snapshot(engine, final)
        return
    engine._status, engine._message = "running", ""
    engine._last = engine._measure(record=history.last_step == step)  # never a row an uninterrupted run lacks


def _check_counters(engine, step: int, sample_pos: int, status: str, history: History) -> None:
    """The step, the position in the batch order and the history must tell the same story.

    Rows after ``step`` are allowed (a save killed after metrics.csv, before the state files);
    they are dropped on loading.
    """
    last = history.until(step).last_step
    if last is None:
        raise ConfigError("state.json", f"step {step} comes before every measured step of metrics.csv")
    n = engine.dataset.x_train.shape[0]
    m, batch = engine.config.measure, max(1, min(engine.config.optim.batch_size, n))
    gap = max(m.every, m.every_epochs * -(-n // batch))  # the most steps between two scheduled measurements
    lag_ok = status == "diverged" or (status == "running" and step - last < gap)  # a checkpoint between measurements
    if last != step and not lag_ok:
        raise ConfigError("state.json", f"step {step} does not match metrics.csv, whose last measured step is {last}")
    if not (step <= sample_pos <= step * n):
        raise ConfigError("state.json", f"sample_pos {sample_pos} is impossible after {step} steps of a "
                                        f"{n}-point training set (allowed {step}..{step * n})")


def _diverged_snapshot(engine, final: dict):
    """A diverged run's weights are not finite: its snapshot is rebuilt from final.npz (the last measured step)."""
    from core.diagnostics import restored_layer_stats
    from core.engine import DIVERGED, Snapshot, describe_optimizer

    cfg, step, g_star = engine.config, int(final["step"]), engine._g_star
    rows = {r["layer"]: r for r in engine._history.rows_at(step)}
    layers = tuple(restored_layer_stats(l, final, rows[l]) for l in range(1, cfg.model.depth + 1))
    row = rows[cfg.model.depth]
    return Snapshot(step=engine._step, measured_step=step, status=DIVERGED, message=engine._message,
                    train_loss=row["train_loss"], test_loss=row["test_loss"], test_accuracy=row["test_accuracy"],
                    layers=layers, g_star=None if g_star is None else g_star.to(torch.float64).cpu().numpy(),
                    optimizer=describe_optimizer(cfg), config=copy.deepcopy(cfg), history=engine._history,
                    out_weight=final["out.W"], data_description=engine.dataset.description,
                    biases=_final_biases(final, cfg.model.depth))


def _final_biases(final: dict, depth: int) -> tuple:
    """The biases final.npz holds (b_1..b_L, out.b), or () for a bias-free model."""
    if "out.b" not in final:
        return ()
    return tuple(final[f"layer{l}.b"] for l in range(1, depth + 1)) + (final["out.b"],)


def _tensor(a: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    if tuple(a.shape) != tuple(like.shape):
        raise ValueError(f"shape {a.shape} where {tuple(like.shape)} was expected")
    return torch.from_numpy(np.ascontiguousarray(a)).to(like.device, like.dtype)


def _restore_optimizer(engine, arrays: dict) -> None:
    state = engine._optimizer.state_dict()
    restored: dict[int, dict] = {}
    shapes = [tuple(p.shape) for p in engine.model.parameters()]
    for key, value in arrays.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            if not idx.isdigit() or int(idx) >= len(shapes) or (value.ndim and tuple(value.shape) != shapes[int(idx)]):
                raise ConfigError("state.npz", f"array {key[:40]!r} does not fit the model {shapes[:1]}...")
            restored.setdefault(int(idx), {})[name] = torch.from_numpy(np.array(value))
    state["state"] = restored
    engine._optimizer.load_state_dict(state)
