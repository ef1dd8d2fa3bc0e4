"""Export, load and upload: the files a visitor takes away or brings in.

Everything is written into the session's own folder (one unguessable subfolder per
export); Gradio serves a copy from its cache under an unguessable URL. Loading a run
unpacks a zip safely, checks its config against the web's limits, and never lets the
archive name a file on the server: a ``file`` data set must travel inside the zip.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image, ImageDraw

from app.web.archive import safe_extract, write_zip
from app.web.handlers import (COMPARE_START, WebApp, layer_update, paused_timer, session_of, setup_outputs,
                              guarded, render)
from app.web import charts
from app.web.panels import chart_list, clamp_layer, heat_pair
from app.web.sessions import Run, Session
from app.web.views import SCALE, WINDOW, View, view_of
from core.config import ConfigError, load_config
from core.data import read_table
from core.engine import Engine, Snapshot
from core.iofiles import atomic_write_text
from core.plots import heatmap_rgb, pyplot
from core.raster import font

DATA_SUFFIXES = (".csv", ".npz")
TILE = 220


# -- the current view as one PNG -------------------------------------------------------

def _tile(m: np.ndarray, caption: str) -> Image.Image:
    rgb = Image.fromarray(heatmap_rgb(m)).resize((TILE, TILE), Image.Resampling.NEAREST)
    tile = Image.new("RGB", (TILE, TILE + 22), (255, 255, 255))
    tile.paste(rgb, (0, 22))
    ImageDraw.Draw(tile).text((2, 3), caption, fill=(40, 40, 40), font=font(13))
    return tile


def _heat_tiles(runs: list[Run], snaps: list[Snapshot], layer: int, centered: bool) -> list[Image.Image]:
    tiles = []
    for run, snap in zip(runs, snaps):
        nfm, agop, n_name, a_name = heat_pair(snap, layer, centered)
        prefix = f"{run.arm.name} " if run.arm else ""
        tiles += [_tile(nfm, f"{prefix}{n_name} {nfm.shape[0]}x{nfm.shape[1]}"),
                  _tile(agop, f"{prefix}{a_name.split('<')[0]} (UC-NFA {snap.layer(layer).uc_nfa:.3f})")]
    if snaps[0].g_star is not None and layer == 1:
        tiles.append(_tile(snaps[0].g_star, "ground-truth AGOP G*"))
    if len(snaps) == 1:
        s = snaps[0].layer(layer)
        tiles += [_tile(s.K, f"K {s.K.shape[0]}x{s.K.shape[1]}"), _tile(s.utku, f"U^T K U (diag {s.diag_share:.2f})")]
    return tiles


MPL_DASH = {"solid": "-", "dash": "--", "dot": ":", "dashdot": "-.", "longdash": (0, (8, 3))}


def charts_image(chart_list: list[charts.Chart], width: int) -> Image.Image:
    """The view's charts drawn with matplotlib (2 per row), for the exported PNG."""
    rows = -(-len(chart_list) // 2)
    plt = pyplot()
    fig, axes = plt.subplots(rows, 2, figsize=(width / 100, 2.6 * rows), dpi=100, squeeze=False)
    for ax, chart in zip(axes.flat, chart_list):
        for line in chart.lines:
            y = np.where(line.y > 0, line.y, np.nan) if chart.log_y else line.y
            ax.plot(line.x, y, color=line.color, linestyle=MPL_DASH.get(line.dash, "-"), linewidth=line.width * 0.8,
                    label=line.name if line.legend else None)
        if chart.log_y:
            ax.set_yscale("log")
        elif chart.y_range:
            ax.set_ylim(*chart.y_range)
        ax.set_title(chart.title, fontsize=9, loc="left")
        ax.set_xlabel("step", fontsize=8)
        ax.set_ylabel(chart.y_title, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if any(line.legend for line in chart.lines):
            ax.legend(fontsize=6, loc="upper right")  # "best" searches every point: seconds at 10^6 steps
    for ax in list(axes.flat)[len(chart_list):]:
        ax.axis("off")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def view_image(session: Session, view: View) -> Image.Image:
    """Heatmaps of the selected layer over the curves (the same charts as the page), with a title line."""
    runs = session.runs()
    snaps = [r.snapshot() for r in runs]
    layer = clamp_layer(snaps[0], view.layer)
    tiles = _heat_tiles(runs, snaps, layer, view.centered)
    width = len(tiles) * (TILE + 8) + 16
    curves = charts_image(chart_list(runs, snaps, view), max(width - 16, 900))
    width = max(width, curves.width + 16)
    canvas = Image.new("RGB", (width, 36 + TILE + 30 + curves.height + 8), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    title = (f"NFA Explorer · layer {layer} · step {snaps[0].step} · {snaps[0].data_description} · "
             f"{' vs '.join(s.optimizer for s in snaps)}")
    draw.text((8, 10), title, fill=(20, 20, 20), font=font(15))
    for i, tile in enumerate(tiles):
        canvas.paste(tile, (8 + i * (TILE + 8), 36))
    canvas.paste(curves, (8, 36 + TILE + 30))
    return canvas


# -- export ----------------------------------------------------------------------------

def arms_csv(runs) -> str:
    """compare.csv in long format: every arm's metrics.csv rows under an ``arm`` column."""
    lines = []
    for run in runs:
        header, *rows = run.engine.history.to_csv_text().splitlines()
        if not lines:
            lines.append("arm," + header)
        lines += [f"{run.arm.name},{row}" for row in rows]
    return "\n".join(lines) + "\n"


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
def export(app: WebApp, key: str, layer: int = 1, centered: bool = False,
        window: str = WINDOW, scale: str = SCALE) -> dict:
    """config.json, metrics.csv, final.npz, a PNG of the view, and the zipped run folder(s)."""
    session = session_of(app, key)
    with session.lock:
        out_dir = session.new_file("export")
        out_dir.mkdir()
        view_image(session, view_of(layer, centered, window, scale)).save(out_dir / "view.png")
        if session.compare is not None:
            zips = [_save_run(session, run, out_dir / run.arm.name) for run in session.compare]
            atomic_write_text(out_dir / "compare.csv", arms_csv(session.compare))
            files = [out_dir / "view.png", out_dir / "compare.csv"] + [
                z.rename(out_dir / f"{run.arm.name}-run.zip") for z, run in zip(zips, session.compare)]
        else:
            zipped = _save_run(session, session.run, out_dir / "run")
            files = [out_dir / "view.png"] + [out_dir / "run" / n for n in ("config.json", "metrics.csv", "final.npz")]
            files.append(zipped)
        note = "exported: download the files below (the .zip loads back)"
        out = render(session, view_of(layer, centered, window, scale), note)
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
def load_run(app: WebApp, key: str, path: str | None, layer: int = 1, centered: bool = False,
        window: str = WINDOW, scale: str = SCALE) -> dict:
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
        out = render(session, view_of(layer, centered, window, scale), note)
        out.update(setup_outputs(session, engine.config), layer=layer_update(session, layer),
                   timer=paused_timer(), compare_button=gr.Button(value=COMPARE_START))
        return out


# -- upload a data set -------------------------------------------------------------------

@guarded
def upload_data(app: WebApp, key: str, path: str | None, label_column: str = "",
                layer: int = 1, centered: bool = False,
        window: str = WINDOW, scale: str = SCALE) -> dict:
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
        out = render(session, view_of(layer, centered, window, scale), note)
        return {**out, "data_kind": "file"}
