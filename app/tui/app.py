"""The NFA Explorer terminal app: a per-layer table, heatmaps and curves of a live run.

``make_app(cfg)`` builds it (the CLI and the tests share the factory); training runs in
a thread worker (``app.tui.player``) and the widgets redraw from the snapshots it posts.
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from pathlib import Path

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen

from app.tui import charts, views
from app.tui.driver import PLAY_LIMIT, default_export_folder, export_run
from app.tui.messages import FrameReady, Progress, WorkFailed
from app.tui.player import Player
from app.tui.screens import ExportScreen, HelpScreen
from app.tui.selection import MATRIX_BINDINGS, MatrixKeys
from app.tui.widgets import CurvePlot, HeatmapView, KeyBar, LayerTable, StatusBar
from core.config import RunConfig, flat_items
from core.engine import Engine, Snapshot, needs_reset

KEYS = [
    Binding("space", "toggle_play", "play/pause", key_display="space"),
    Binding("n", "step", "step"),
    Binding("r", "reset", "reset"),
    Binding("s", "toggle_slo", "SLO"),
    *MATRIX_BINDINGS,
    Binding("v", "compare", "compare"),
    Binding("e", "export", "export"),
    Binding("o", "config", "config"),
    Binding("question_mark", "help", "help", key_display="?"),
    Binding("q", "quit", "quit"),
]

KEY_HELP = {
    "toggle_play": f"play until paused (at most {PLAY_LIMIT:,} steps) / pause",
    "step": "train to the next measurement (measure.every steps), then pause",
    "reset": "start again from the same initialisation (same seed)",
    "toggle_slo": "switch speed-limited optimisation on or off, live",
    "layer(-1)": "previous layer (table row, heatmaps, correlation curves)",
    "layer(1)": "next layer",
    "toggle_centered": "centered matrices dW^T dW and dW^T K dW, or plain NFM and AGOP",
    "cycle_view": "heatmaps: NFM | AGOP, K | U^T K U, NFM_1 | ground truth G*",
    "toggle_scale": "heatmap colours scaled at the largest value (max) or the 99th percentile (p99)",
    "toggle_window": f"curves over the whole run, or the last {charts.RECENT} measurements",
    "compare": "baseline, control (SLO boost 1) and SLO from the same initialisation, side by side",
    "export": "write the run to a folder (config, metrics, final arrays, state, figures)",
    "config": "edit the config; bad values are refused with the reason",
    "help": "this screen",
    "quit": "quit (stops training at once)",
}


MAIN_ONLY = {"toggle_slo", "export", "config", "compare"}
"""Actions that act on the main run only."""


def key_help() -> list[tuple[str, str]]:
    """(key, what it does) for every binding, in footer order."""
    return [(b.key_display or b.key, KEY_HELP.get(b.action, b.description)) for b in KEYS]


class NfaApp(MatrixKeys, Player, App[int]):
    """Train an MLP step by step and watch NFM and AGOP align, layer by layer."""

    CSS_PATH = "nfa.tcss"
    TITLE = "NFA Explorer"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = KEYS
    HORIZONTAL_BREAKPOINTS = [(0, "-small"), (80, "-narrow"), (120, "-wide")]

    def __init__(self, engine: Engine) -> None:
        super().__init__()
        self.engine = engine
        self.snapshot: Snapshot = engine.snapshot()
        self.selected, self.view, self.centered = 1, views.VIEWS[0], False
        self.state, self.detail = "paused", "space trains; ? explains every key and number"
        self.frame_seconds: deque[float] = deque(maxlen=512)
        self.ui_seconds: deque[float] = deque(maxlen=512)
        self.frame_stamps: deque[float] = deque(maxlen=512)
        self.last_export: Path | None = None
        self.history_view = charts.new_view()

    @property
    def engines(self) -> list[Engine]:
        return [self.engine]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Keys of the main run are off (and hidden) while the compare view is open."""
        from app.tui.compare import CompareScreen

        if action in MAIN_ONLY and isinstance(self.screen, CompareScreen):
            return False
        return True

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        yield LayerTable(id="table")
        with Horizontal(id="main"):
            yield HeatmapView(id="heatmaps")
            with Vertical(id="curves"):
                yield CurvePlot(id="loss")
                yield CurvePlot(id="nfa")
        yield KeyBar()

    def on_mount(self) -> None:
        self.show(self.snapshot)

    # -- drawing ---------------------------------------------------------------------------

    @property
    def main_screen(self) -> Screen:
        """The screen with the run's widgets (dialogs and the compare view go on top of it)."""
        return self.screen_stack[0]

    def show(self, snap: Snapshot) -> None:
        """Hands a snapshot and the view settings to every widget of the main screen."""
        self.snapshot = snap
        self.selected = min(self.selected, len(snap.layers))
        main = self.main_screen
        self.history_view.update(snap.history)
        status = main.query_one(StatusBar)
        status.snapshot, status.state, status.detail, status.step = snap, self.state, self.detail, snap.step
        table = main.query_one(LayerTable)
        table.view, table.snapshot, table.selected = self.history_view, snap, self.selected
        heat = main.query_one(HeatmapView)
        heat.snapshot, heat.selected, heat.view, heat.centered = snap, self.selected, self.view, self.centered
        heat.robust = self.robust
        main.query_one("#loss", CurvePlot).chart = charts.loss_chart(self.history_view, self.recent)
        main.query_one("#nfa", CurvePlot).chart = charts.nfa_chart(
            self.history_view, self.selected, snap.g_star is not None, self.recent)

    def set_state(self, state: str, detail: str = "") -> None:
        """Play state and message line of the status bar."""
        self.state, self.detail = state, detail
        self.show(self.snapshot)

    def on_frame_ready(self, message: FrameReady) -> None:
        if not self.accept(message) or not self.screen_stack:
            return
        start = time.perf_counter()
        snap = message.snaps[0]
        if message.end is not None:
            self.state = message.end
        elif self.playing:
            self.state = "playing"
        self.detail = "" if self.state != "finished" else f"reached {snap.step:,} steps; space plays on"
        self.show(snap)
        self.frame_seconds.append(message.seconds)
        self.ui_seconds.append(time.perf_counter() - start)
        self.frame_stamps.append(start)

    def on_progress(self, message: Progress) -> None:
        if message.generation == self.generation and self.playing:
            self.main_screen.query_one(StatusBar).step = message.step

    def on_work_failed(self, message: WorkFailed) -> None:
        if message.generation != self.generation:
            return
        self.playing = False
        self.set_state("error", message.text)

    def on_layer_table_selected(self, message: LayerTable.Selected) -> None:
        self.selected = message.layer
        self.show(self.snapshot)

    # -- actions ---------------------------------------------------------------------------

    def action_toggle_play(self) -> None:
        """Space: play or pause."""
        if self.playing:
            self.pause()
            self.set_state("paused")
        elif self.snapshot.stopped:  # diverged or dead
            self.set_state(self.snapshot.status, f"{self.snapshot.message} (r resets)")
        else:
            self.play()
            self.set_state("playing")

    def action_step(self) -> None:
        """n: train to the next measurement."""
        if self.snapshot.stopped:
            self.set_state(self.snapshot.status, f"{self.snapshot.message} (r resets)")
            return
        self.step_once()
        self.set_state("paused")

    def action_reset(self) -> None:
        """r: a new network from the same seed, with the current config."""
        self.reset_engines([self.engine.config])
        self.set_state("working", "resetting…")

    def action_toggle_slo(self) -> None:
        """s: SLO on or off, live."""
        cfg = self.engine.config
        new = cfg.replace(**{"optim.slo.enabled": not cfg.optim.slo.enabled})
        self.run_configure(self.generation, [new])

    def lead_snapshot(self) -> Snapshot:
        return self.snapshot

    def redraw(self) -> None:
        self.show(self.snapshot)

    def action_help(self) -> None:
        """?: the help screen."""
        self.push_screen(HelpScreen(key_help()))

    def action_config(self) -> None:
        """o: the config screen; its result is applied live or by a reset."""
        from app.tui.config_screen import ConfigScreen

        self.push_screen(ConfigScreen(self.engine.config), self.apply_config)

    def apply_config(self, cfg: RunConfig | None) -> None:
        """Applies an edited config: live when it can, else by resetting the run."""
        if cfg is None:
            return
        pending = needs_reset(self.engine.config, cfg)
        if pending:
            self.reset_engines([cfg])
            self.set_state("working", f"restarting for {', '.join(pending)}")
        else:
            old, new = flat_items(self.engine.config), flat_items(cfg)
            changed = [k for k in new if new[k] != old[k]]
            self.run_configure(self.generation, [cfg])
            self.notify(f"applied live: {', '.join(changed)}" if changed else "nothing changed")

    def action_export(self) -> None:
        """e: asks for a folder, then writes the run's files there."""
        self.push_screen(ExportScreen(str(default_export_folder())), self.export_to)

    def export_to(self, folder: str | None) -> None:
        """Starts the export worker for ``folder`` (None: cancelled)."""
        if folder:
            self.notify(f"exporting to {Path(folder).expanduser().resolve()}…")
            self.run_export(folder)

    @work(thread=True, group="export", exit_on_error=False)
    def run_export(self, folder: str) -> None:
        """Worker: writes the CLI's files; reports success or the error as a notification."""
        try:
            path, written = export_run(self.engine, folder)
        except Exception as err:  # noqa: BLE001 - shown to the user
            self.call_from_thread(self.notify, f"export failed: {err}", severity="error")
            return
        self.last_export = path
        self.call_from_thread(self.notify, f"exported to {path}: {', '.join(written)}", timeout=12)

    def action_compare(self) -> None:
        """v: every arm of ``core.arms.make_arms`` from the same initialisation (pauses this run)."""
        from app.tui.compare import CompareScreen

        self.pause()
        self.set_state("paused")
        self.push_screen(CompareScreen(self.engine.config, self.engine.dataset, self.selected))

    async def action_quit(self) -> None:
        """q: stop the workers and leave."""
        self.workers.cancel_all()
        self.exit(0)


def make_app(cfg: RunConfig, engine: Engine | None = None) -> NfaApp:
    """The app on a new engine for ``cfg`` (or on ``engine``); shared by the CLI and the tests."""
    return NfaApp(engine if engine is not None else Engine(cfg))


def configure_threads(threads: int | None = None) -> None:
    """Sets torch's intra-op threads; by default one core is left to the UI thread."""
    import torch

    if threads is None:
        threads = max(1, min(torch.get_num_threads(), (os.cpu_count() or 2) - 1))
    torch.set_num_threads(threads)


def run(cfg: RunConfig) -> int:
    """Runs the app in the terminal; returns its exit status."""
    configure_threads()
    print("NFA Explorer: preparing data, network and the first measurement…", file=sys.stderr, flush=True)
    app = make_app(cfg)
    status = app.run()
    return int(status or app.return_code or 0)
