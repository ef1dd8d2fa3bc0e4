"""Pure render functions: snapshots and matrices in, rich renderables out.

Widgets hold state and call these with their current size; nothing here touches
Textual, so every function can be tested and benchmarked on its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np
from rich.console import Group
from rich.style import Style
from rich.table import Table
from rich.text import Text
from rich import box

from app.tui.heatmaps import fit_tokens
from core.arms import Arm
from core.diagnostics import LayerStats
from core.engine import Snapshot
from core.series import HistoryView

SPARK_BARS = "▁▂▃▄▅▆▇█"
SELECTED = "bold on grey23"
"""Style of the selected layer's row."""


# -- numbers -----------------------------------------------------------------------------

def fmt(value: float | None, digits: int = 3) -> str:
    """A correlation-style number, or ``n/a`` when undefined."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}f}"


LOSS_WIDTH = 9


def fmt_loss(value: float | None) -> str:
    """A loss with four significant digits in a fixed-width field (``inf`` when it blew up)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a".rjust(LOSS_WIDTH)
    return f"{value:.4g}".rjust(LOSS_WIDTH)


def sparkline(values: Iterable[float], width: int, lo: float = 0.0, hi: float = 1.0) -> str:
    """The last ``width`` values as bar characters on a fixed [lo, hi] scale (blank where NaN)."""
    tail = list(values)[-width:] if width > 0 else []
    chars = []
    for v in tail:
        if v is None or not math.isfinite(v):
            chars.append(" ")
            continue
        frac = (min(max(v, lo), hi) - lo) / (hi - lo)
        chars.append(SPARK_BARS[min(int(frac * len(SPARK_BARS)), len(SPARK_BARS) - 1)])
    return "".join(chars).ljust(width)


# -- status and table --------------------------------------------------------------------

def optimizer_label(snap: Snapshot) -> str:
    """``sgd lr 0.05 · SLO off`` or ``SLO on (layer k, boost b) · speed s``."""
    o = snap.config.optim
    if o.slo.enabled:
        return f"SLO on (layer {o.slo.target_layer}, boost {o.slo.boost:g}) · speed {o.slo.speed:g}"
    momentum = f" momentum {o.momentum:g}" if o.name == "sgd" and o.momentum else ""
    return f"{o.name} lr {o.lr:g}{momentum} · SLO off"


STATE_STYLES = {"playing": "bold green", "paused": "bold yellow", "finished": "bold cyan",
                "diverged": "bold red", "dead": "bold red", "error": "bold red", "working": "bold magenta"}
STATE_WIDTH = max(len(s) for s in STATE_STYLES)
STEP_WIDTH = 9
"""Room for a step count up to 9,999,999 with separators."""
HINT = "space plays until paused · n: to the next measurement · ? help"
"""The status bar's second line when there is no message (so the bar never changes height)."""


def step_field(step: int) -> str:
    """``step     12,345``: a fixed-width step count."""
    return f"step {step:>{STEP_WIDTH},}"


def state_field(state: str) -> Text:
    """The play state, padded to the longest state's width."""
    return Text(state.ljust(STATE_WIDTH), style=STATE_STYLES.get(state, ""))


def loss_fields(snap: Snapshot) -> list:
    """`` loss  0.01234 test  0.02345 acc 0.953``, every number in a fixed-width field.

    A run that diverged between measurements shows ``n/a``: its last measured losses belong
    to an earlier step than the one the status names (the message gives the loss that blew up).
    """
    stale = snap.diverged and snap.measured_step != snap.step  # the step it names was never measured
    train, test, acc = (None, None, None) if stale else (snap.train_loss, snap.test_loss, snap.test_accuracy)
    parts = [(" loss", "dim"), fmt_loss(train), (" test", "dim"), fmt_loss(test)]
    if snap.config.data.kind == "digits" or acc is not None:
        parts += [(" acc ", "dim"), fmt(acc).rjust(5)]
    return parts


def status_text(snap: Snapshot | None, state: str, detail: str = "", step: int | None = None) -> Group:
    """Two lines: step, state and losses; then the optimiser and the message (or a hint).

    ``step`` is a newer step count than the snapshot's, while a long frame is still training.
    Every field has a fixed width and both lines are always there, so nothing moves.
    """
    if snap is None:
        return Group(_line(state_field(state)), _line(Text(detail or HINT, style="dim")))
    shown = max(snap.step, step or 0)
    first = Text.assemble((step_field(shown), "bold"), " ", state_field(state), " ", *loss_fields(snap))
    message = detail or snap.message
    if message:
        second = Text.assemble((message, "red" if state in ("diverged", "dead", "error") else "italic"), "  ",
                               optimizer_label(snap))
    else:
        second = Text.assemble(optimizer_label(snap), "  ", (HINT, "dim"))
    return Group(_line(first), _line(second))


def _line(text: Text) -> Text:
    """One status line: never wrapped (an ellipsis ends what does not fit)."""
    text.no_wrap, text.overflow = True, "ellipsis"
    return text


def _recent(view: HistoryView | None, key: str, layer: int) -> np.ndarray:
    if view is None:
        return np.zeros(0)
    return view.series(key, layer, recent=True)[1]


@dataclass(frozen=True)
class Column:
    """A table column: header, cell text of a layer's stats, width, and drop order (0: kept)."""

    header: str
    cell: Callable[[LayerStats], str]
    width: int
    drop: int


def _se(s: LayerStats, key: str) -> str:
    v = getattr(s, key, None)
    return "" if v is None else "±" + fmt(v)


COLUMNS = (
    Column("UC-NFA", lambda s: fmt(s.uc_nfa), 7, 0),
    Column("±se", lambda s: _se(s, "uc_nfa_se"), 7, 2),
    Column("C-NFA", lambda s: fmt(s.c_nfa), 7, 0),
    Column("±se", lambda s: _se(s, "c_nfa_se"), 7, 3),
    Column("NFM~I", lambda s: fmt(getattr(s, "nfm_identity", None)), 7, 4),
    Column("AGOP~I", lambda s: fmt(getattr(s, "agop_identity", None)), 7, 4),
    Column("move", lambda s: fmt(s.rel_movement), 7, 1),
)
"""The per-layer numbers; narrow screens drop the highest ``drop`` first (sparklines go before any)."""


SPARK_MIN = 6
"""Narrower sparklines are left out (the curve panel shows the selected layer's trend)."""


def table_columns(width: int, quality: bool) -> tuple[list[Column], int]:
    """The number columns that fit ``width`` and the width of each of the two sparklines (0: none).

    Sparklines go first, then whole number columns in ``drop`` order; a number is never cut.
    """
    fixed = 6 + 8 + (8 if quality else 0)  # layer, shape and quality, each with its gap
    cols = list(COLUMNS)
    while True:
        used = fixed + sum(c.width + 1 for c in cols)
        if used <= width or all(c.drop == 0 for c in cols):
            spark = (width - used - 2) // 2
            return cols, spark if spark >= SPARK_MIN else 0
        worst = max(c.drop for c in cols)
        cols = [c for c in cols if c.drop != worst]


def layer_table(snap: Snapshot | None, selected: int, width: int, view: HistoryView | None = None) -> Table:
    """The per-layer table: shape, UC-NFA and C-NFA with their standard errors, the identity
    baselines rho(NFM, I) and rho(AGOP, I), relative movement, quality, and both correlations'
    recent history as sparklines."""
    quality = snap is not None and snap.g_star is not None
    cols, spark = table_columns(width, quality)
    table = Table(box=box.SIMPLE_HEAD, expand=bool(spark), padding=0, pad_edge=False,
                  show_edge=False)
    table.add_column("layer", justify="right", no_wrap=True, width=5)
    table.add_column("shape", justify="right", no_wrap=True, width=7)
    for c in cols:
        table.add_column(c.header, justify="right", no_wrap=True, width=c.width)
    if quality:
        table.add_column("quality", justify="right", no_wrap=True, width=7)
    if spark:
        table.add_column("UC trend", no_wrap=True, min_width=spark, ratio=1, overflow="crop")
        table.add_column("C trend", no_wrap=True, min_width=spark, ratio=1, overflow="crop")
    for s in (snap.layers if snap is not None else ()):
        mark = "▶" if s.layer == selected else " "
        row = [f"{mark}{s.layer}", f"{s.shape[0]}x{s.shape[1]}", *(c.cell(s) for c in cols)]
        if quality:
            row.append(fmt(s.feature_quality) if s.layer == 1 else "")
        if spark:
            row += [Text(sparkline(_recent(view, "uc_nfa", s.layer), spark), style="cyan"),
                    Text(sparkline(_recent(view, "c_nfa", s.layer), spark), style="magenta")]
        table.add_row(*row, style=SELECTED if s.layer == selected else "")
    return table


def measure_caption(snap: Snapshot) -> str:
    """Which setting produced the numbers: correlation kind, AGOP power, measured step."""
    m = snap.config.measure
    return f"rho = {m.correlation}, alpha = {m.alpha:g}, measured at step {snap.measured_step}"


def help_rows(bindings: Sequence[tuple[str, str]]) -> Table:
    """A two-column table of keys and what they do."""
    table = Table(box=None, show_header=False, padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    for key, what in bindings:
        table.add_row(key, what)
    return table


def compare_table(arms: Sequence[Arm], snaps: Sequence[Snapshot], layer: int) -> Table:
    """The selected layer's numbers for every arm: one row per arm, in the arm's colour."""
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, show_edge=False)
    table.add_column(f"L{layer}", no_wrap=True)
    for name in ("UC-NFA", "±se", "C-NFA", "±se", "AGOP~I", "move", "test loss"):
        table.add_column(name, justify="right", no_wrap=True)
    for arm, snap in zip(arms, snaps):
        s = snap.layer(min(layer, len(snap.layers)))
        table.add_row(Text(arm.name, style=arm_colour(arm)), fmt(s.uc_nfa), _se(s, "uc_nfa_se"), fmt(s.c_nfa),
                      _se(s, "c_nfa_se"), fmt(getattr(s, "agop_identity", None)), fmt(s.rel_movement),
                      fmt_loss(snap.test_loss))
    return table


def arm_colour(arm: Arm) -> str:
    """The arm's colour as a rich style."""
    return f"bold {arm.color}"


def run_label(arm: Arm, snap: Snapshot, width: int) -> Text:
    """A compare column's one-line heading: the arm's label in its colour, then its test loss.

    The label's comma-separated parts and the loss are whole or absent (no number is cut).
    """
    parts = arm.label.split(", ")
    tokens = [(p, arm_colour(arm), i) for i, p in enumerate(parts)]
    tokens.append((f"test {fmt_loss(snap.test_loss).strip()}", "dim", 1))
    return fit_tokens(tokens, width)


def compare_status(arms: Sequence[Arm], snaps: Sequence[Snapshot], state: str, detail: str = "") -> Text:
    """Two lines: step, state, what is compared; then the message (or a hint)."""
    text = Text.assemble((step_field(snaps[0].step), "bold"), "  ", state_field(state),
                         f"  {len(arms)} arms from one initialisation and batch order: ",
                         no_wrap=True, overflow="ellipsis")
    for i, arm in enumerate(arms):
        text.append((", " if i else "") + arm.name, style=arm_colour(arm))
    text.append("\n")
    text.append(detail or HINT, style="red" if state in ("diverged", "dead", "error") else ("italic" if detail else "dim"))
    return text


def key_bar(entries: Sequence[tuple[str, str, str]], width: int) -> Text:
    """The footer: ``key description`` entries wrapped to ``width``, never split across lines.

    Each entry is (keys shown, description, click action); a click on an entry runs its action.
    """
    text, used = Text(no_wrap=True, overflow="crop"), 0
    for keys, description, action in entries:
        size = len(keys) + 1 + len(description)
        if used and used + 2 + size > width:
            text.append("\n")
            used = 0
        elif used:
            text.append("  ")
            used += 2
        meta = {"@click": action} if action else {}
        text.append(keys, Style(bold=True, color="yellow", meta=meta))
        text.append(" " + description, Style(meta=meta))
        used += size
    return text
