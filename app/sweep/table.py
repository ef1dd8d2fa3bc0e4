"""``sweep.csv``: one row per run and hidden layer, read from the run folders alone.

Columns: ``run``, each varied key (``seed`` always), ``layer``, ``step`` (the last measured
step), the final ``uc_nfa c_nfa feature_quality train_loss test_loss test_accuracy``,
``status`` (``ok``, ``diverged``, ``dead``, ``failed``) and ``message``. A run without a
folder (failed) has one row with ``layer`` empty.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from app.runner.folders import read_runs_csv
from core.history import History
from core.iofiles import atomic_write_text

METRICS = ("uc_nfa", "c_nfa", "feature_quality", "train_loss", "test_loss", "test_accuracy")


def columns(keys: list[str]) -> list[str]:
    """The header for a sweep varying ``keys``."""
    varied = list(keys) + ([] if "seed" in keys else ["seed"])
    return ["run", *varied, "layer", "step", *METRICS, "status", "message"]


def sweep_rows(out: Path, plan: dict) -> list[dict[str, Any]]:
    """The table's rows (typed: None where undefined) for every run of ``plan`` (``sweep.json``)."""
    runs_csv = read_runs_csv(out / "runs.csv")
    rows = []
    for run in plan["runs"]:
        values = dict(run["values"])
        values.setdefault("seed", run["seed"])
        rows += _run_rows(out / "runs" / run["name"], run["name"], values, runs_csv.get(run["name"], {}))
    return rows


def _run_rows(folder: Path, name: str, values: dict, recorded: dict) -> list[dict]:
    head = {"run": name, **values}
    if not (folder / "metrics.csv").is_file() or not (folder / "state.json").is_file():
        status = recorded.get("status") or "not run"
        return [{**head, "layer": None, "step": None, **dict.fromkeys(METRICS), "status": status,
                 "message": recorded.get("message", "")}]
    state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    status = "ok" if state.get("status") == "running" else str(state.get("status"))
    history = History.read_csv(folder / "metrics.csv")
    rows = []
    layers = history.column("layer")
    for layer in history.layers():
        last = history.row(int(np.flatnonzero(layers == layer)[-1]))
        rows.append({**head, "layer": layer, "step": last["step"], **{m: last.get(m) for m in METRICS},
                     "status": status, "message": state.get("message", "")})
    return rows


def _cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v) if isinstance(v, float) else str(v)


def write_sweep_csv(path: Path, rows: list[dict], keys: list[str]) -> None:
    """Writes ``rows`` under ``columns(keys)`` atomically."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    header = columns(keys)
    writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in header])
    atomic_write_text(path, buf.getvalue())
