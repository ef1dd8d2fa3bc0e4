"""Export, load and upload: the files a visitor takes away or brings in.

Everything is written into the session's own folder (one unguessable subfolder per
export); Gradio serves a copy from its cache under an unguessable URL. Loading a run
unpacks a zip safely, checks its config against the web's limits, and never lets the
archive name a file on the server: a ``file`` data set must travel inside the zip.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image, ImageDraw

from app.headless import compare_csv
from app.web.archive import safe_extract, write_zip
from app.web.handlers import (COMPARE_START, WebApp, layer_update, paused_timer, session_of, setup_outputs,
                              guarded, render)
from app.web.panels import heat_pair, clamp_layer, compare_charts, single_charts
from app.web.plot import font
from app.web.sessions import Run, Session
from app.web.views import View
from core.config import ConfigError, load_config
from core.data import read_table
from core.engine import Engine, Snapshot
from core.iofiles import atomic_write_text
from core.plots import heatmap_rgb

DATA_SUFFIXES = (".csv", ".npz")
TILE = 220


# -- the current view as one PNG -------------------------------------------------------

def _tile(m: np.ndarray, caption: str) -> Image.Image:
    rgb = Image.fromarray(heatmap_rgb(m)).resize((TILE, TILE), Image.Resampling.NEAREST)
    tile = Image.new("RGB", (TILE, TILE + 22), (255, 255, 255))
    tile.paste(rgb, (0, 22))
    ImageDraw.Draw(tile).text((2, 3), caption, fill=(40, 40, 40), font=font(13))
    return tile


def _heat_tiles(session: Session, snaps: list[Snapshot], layer: int, centered: bool) -> list[Image.Image]:
    tiles = []
    names = ["baseline", "SLO"] if len(snaps) == 2 else [""]
    for name, snap in zip(names, snaps):
        nfm, agop, n_name, a_name = heat_pair(snap, layer, centered)
        prefix = f"{name} " if name else ""
        tiles += [_tile(nfm, f"{prefix}{n_name} {nfm.shape[0]}x{nfm.shape[1]}"),
                  _tile(agop, f"{prefix}{a_name.split('<')[0]} (UC-NFA {snap.layer(layer).uc_nfa:.3f})")]
    if snaps[0].g_star is not None and layer == 1:
        tiles.append(_tile(snaps[0].g_star, "ground-truth AGOP G*"))
    if len(snaps) == 1:
        s = snaps[0].layer(layer)
        tiles += [_tile(s.K, f"K {s.K.shape[0]}x{s.K.shape[1]}"), _tile(s.utku, f"U^T K U (diag {s.diag_share:.2f})")]
    return tiles


def _charts(session: Session, snap: Snapshot, layer: int) -> list[Image.Image]:
    if session.compare is not None:
        return compare_charts(*session.compare, snap, layer)
    return single_charts(session.run, snap, layer)


def view_image(session: Session, layer: int, centered: bool) -> Image.Image:
    """Heatmaps of the selected layer over the four charts, with a title line."""
    snaps = [r.snapshot() for r in session.runs()]
    layer = clamp_layer(snaps[0], layer)
    tiles = _heat_tiles(session, snaps, layer, centered)
    charts = _charts(session, snaps[0], layer)
    cw, ch = charts[0].size
    width = max(len(tiles) * (TILE + 8), 2 * cw + 8) + 16
    height = 40 + TILE + 30 + 2 * (ch + 8) + 8
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    title = (f"NFA Explorer · layer {layer} · step {snaps[0].step} · {snaps[0].data_description} · "
             f"{' vs '.join(s.optimizer for s in snaps)}")
    draw.text((8, 10), title, fill=(20, 20, 20), font=font(15))
    for i, tile in enumerate(tiles):
        canvas.paste(tile, (8 + i * (TILE + 8), 36))
    top = 36 + TILE + 30
    for i, chart in enumerate(charts):
        canvas.paste(chart, (8 + (i % 2) * (cw + 8), top + (i // 2) * (ch + 8)))
    return canvas


# -- export ----------------------------------------------------------------------------

def _save_run(session: Session, run: Run, folder: Path) -> Path:
    """Writes the contract's run folder; zips beside it what loading needs (not final.npz) and a file run's data."""
    engine = run.engine
    engine.save(folder)
    extra = {}
    if engine.config.data.kind == "file" and engine.config.data.path:
        src = Path(engine.config.data.path)
        extra[f"data{src.suffix.lower()}"] = src
    return write_zip(folder, folder.with_suffix(".zip"), extra, skip=("final.npz",))


@guarded
def export(app: WebApp, key: str, layer: int = 1, centered: bool = False) -> dict:
    """config.json, metrics.csv, final.npz, a PNG of the view, and the zipped run folder(s)."""
    session = session_of(app, key)
    with session.lock:
        out_dir = session.new_file("export")
        out_dir.mkdir()
        view_image(session, layer, centered).save(out_dir / "view.png")
        if session.compare is not None:
            base, slo = session.compare
            files = [_save_run(session, base, out_dir / "baseline"), _save_run(session, slo, out_dir / "slo")]
            atomic_write_text(out_dir / "compare.csv", compare_csv(base.engine.history, slo.engine.history))
            files = [out_dir / "view.png", out_dir / "compare.csv"] + [f.rename(out_dir / f"{n}-run.zip") for f, n in
                                                                      zip(files, ("baseline", "slo"))]
        else:
            zipped = _save_run(session, session.run, out_dir / "run")
            files = [out_dir / "view.png"] + [out_dir / "run" / n for n in ("config.json", "metrics.csv", "final.npz")]
            files.append(zipped)
        out = render(session, View(layer, centered), "exported: download the files below (the .zip loads back)")
        return {**out, "files": [str(f) for f in files]}


# -- load a saved run ----------------------------------------------------------------------

def _check_upload(path: str | None, suffixes: tuple[str, ...], app: WebApp, what: str) -> Path:
    if not path:
        raise ConfigError(what, "no file was received")
    p = Path(path)
    if p.suffix.lower() not in suffixes:
        raise ConfigError(what, f"must be a {' or '.join(suffixes)} file; got {p.suffix or 'no extension'!r}")
    if not p.is_file() or p.stat().st_size > app.settings.max_upload_mb * 2**20:
        raise ConfigError(what, f"is missing or larger than {app.settings.max_upload_mb} MiB")
    return p


def _prepare_run_folder(app: WebApp, folder: Path) -> None:
    """Checks config.json against the web limits and pins a file data set to the archive's own copy."""
    cfg = load_config(folder / "config.json", app.limits)
    if cfg.data.kind == "file":
        inside = [p for p in folder.iterdir() if p.stem == "data" and p.suffix.lower() in DATA_SUFFIXES]
        if not inside:
            raise ConfigError("run archive", "trains on a file, but the file (data.csv or data.npz) is not in the zip")
        cfg.data.path = str(inside[0])
    elif cfg.data.path:
        cfg.data.path = ""
    atomic_write_text(folder / "config.json", cfg.to_json() + "\n")


@guarded
def load_run(app: WebApp, key: str, path: str | None, layer: int = 1, centered: bool = False) -> dict:
    """Continues a zipped run folder (from Export, or ``run --out`` zipped) exactly where it stopped."""
    session = session_of(app, key)
    archive = _check_upload(path, (".zip",), app, "run archive")
    with session.lock:
        dest = session.new_file("loaded")
        folder = safe_extract(archive, dest, app.settings.max_unzip_mb * 2**20)
        _prepare_run_folder(app, folder)
        engine = Engine.load(folder)
        if engine.config.data.kind == "file":
            session.data_file = engine.config.data.path
        session.run, session.compare = Run(engine), None
        session.base, session.playing, session.pending = engine.config, False, ()
        note = f"loaded a run at step {engine.step_count}: press ▶ Play to continue"
        out = render(session, View(layer, centered), note)
        out.update(setup_outputs(session, engine.config), layer=layer_update(session, layer),
                   timer=paused_timer(), compare_button=gr.Button(value=COMPARE_START))
        return out


# -- upload a data set -------------------------------------------------------------------

@guarded
def upload_data(app: WebApp, key: str, path: str | None, label_column: str = "",
                layer: int = 1, centered: bool = False) -> dict:
    """Keeps a copy of a CSV/NPZ in the session's folder and checks it; it is used on Reset."""
    session = session_of(app, key)
    src = _check_upload(path, DATA_SUFFIXES, app, "data file")
    with session.lock:
        copy = session.new_file(f"data{src.suffix.lower()}")
        shutil.copyfile(src, copy)
        try:
            x, y = read_table(str(copy), label_column or "")
        except ConfigError:
            shutil.rmtree(copy.parent, ignore_errors=True)
            raise
        session.data_file = str(copy)
        pending = tuple(dict.fromkeys(session.pending + ("data.kind",)))
        session.pending = pending
        note = f"{src.name}: {x.shape[0]} rows, {x.shape[1]} features. Press ↺ Reset to train on it."
        out = render(session, View(layer, centered), note)
        return {**out, "data_kind": "file"}
