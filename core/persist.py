"""Saving and loading runs: JSON + NPZ, no pickles, every file written atomically.

A run folder holds the contract's files (config.json, metrics.csv, final.npz, and with
``figures`` nfa.png and heatmaps.png) plus ``state.npz`` and ``state.json``, which carry
the exact weights, optimiser state and position in the batch order so that a loaded run
resumes bit-for-bit on CPU.
"""

from __future__ import annotations

import copy
import json
import zipfile
from pathlib import Path

import numpy as np
import torch

from core.config import ConfigError, load_config
from core.history import History
from core.iofiles import atomic_write_npz, atomic_write_text, read_npz

STATE_VERSION = 1


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


def save_engine(engine, folder: Path, figures: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    snap = engine.snapshot()
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
    atomic_write_npz(folder / "state.npz", arrays)
    meta = {"version": STATE_VERSION, "step": engine._step, "sample_pos": engine._sample_pos,
            "status": engine._status, "message": engine._message, "optim_kind": engine._optim_kind}
    atomic_write_text(folder / "state.json", json.dumps(meta, indent=2) + "\n")


def load_engine(cls, folder: Path, dataset=None):
    if not folder.is_dir():
        raise ConfigError("run folder", f"{str(folder)!r} is not a folder")
    for name in ("config.json", "state.npz", "state.json", "metrics.csv"):
        if not (folder / name).is_file():
            raise ConfigError("run folder", f"{name} is missing in {folder.name!r}; is it a saved run?")
    cfg = load_config(folder / "config.json")
    engine = cls(cfg, dataset)
    try:
        meta = json.loads((folder / "state.json").read_text(encoding="utf-8"))
        arrays = read_npz(folder / "state.npz")
        history = History.read_csv(folder / "metrics.csv")
        _restore(engine, meta, arrays, history, folder)
    except ConfigError:
        raise
    except (ValueError, KeyError, TypeError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise ConfigError("run folder", f"the saved state is damaged or from another version ({err})"[:300]) from None
    return engine


def _restore(engine, meta: dict, arrays: dict, history: History, folder: Path) -> None:
    if not isinstance(meta, dict):
        raise ValueError("state.json is not a JSON object")
    if meta.get("version") != STATE_VERSION:
        raise ValueError(f"state version {meta.get('version')!r}")
    params = list(engine.model.parameters())
    with torch.no_grad():
        for i, p in enumerate(params):
            p.copy_(_tensor(arrays[f"param.{i}"], p))
            engine._params0[i].copy_(_tensor(arrays[f"param0.{i}"], p))
    engine._w0 = [engine._params0[i].clone() for i, p in enumerate(params)
                  if any(p is w for w in engine.model.weights())]
    _restore_optimizer(engine, arrays)
    engine._step = int(meta["step"])
    engine._sample_pos = int(meta["sample_pos"])
    engine._perm_cache = None
    engine._history = history.until(engine._step)
    norms = [r.get("step_norm") for r in engine._history.rows if r["step"] == engine._step]
    if norms and all(v is not None for v in norms):
        engine._step_norms = (engine._step, tuple(norms))
    if meta.get("status") == "diverged":
        engine._status, engine._message = "diverged", str(meta.get("message", ""))
        engine._last = _diverged_snapshot(engine, read_npz(folder / "final.npz"))
        return
    engine._status, engine._message = "running", ""
    engine._last = engine._measure(record=True)


def _diverged_snapshot(engine, final: dict):
    """A diverged run's weights are not finite: its snapshot is rebuilt from final.npz (the last measured step)."""
    from core.diagnostics import restored_layer_stats
    from core.engine import DIVERGED, Snapshot, describe_optimizer

    cfg, step, g_star = engine.config, int(final["step"]), engine._g_star
    rows = {r["layer"]: r for r in engine._history.rows if r["step"] == step}
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
    for key, value in arrays.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            restored.setdefault(int(idx), {})[name] = torch.from_numpy(np.array(value))
    state["state"] = restored
    engine._optimizer.load_state_dict(state)
