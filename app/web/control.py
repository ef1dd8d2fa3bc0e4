"""Wiring of the run controls whose timing matters: Pause and Step.

* Pause runs in its own concurrency group, so it never waits in Gradio's queue behind
  other sessions' training; it clears ``playing`` at once (a running tick stops at its
  next step) and is followed by ``sync_status``, which re-sends the status and timer as
  they are after the pause. A tick answer can still arrive after both (its plots are
  serialised after the session's lock is released); its status line carries an older
  pause mark than theirs, and the page script does not show it (``app.web.pagejs``).
* Step clicks are counted by the page itself (a capture-phase click listener, so even a
  click Gradio does not send is counted) and every Step event carries the running total;
  with ``trigger_mode="always_last"`` clicks made while an update runs are done by the
  next one. No click is dropped: each shows in the step counter and the "N Step clicks" note.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from app.web import handlers

CONTROL = "control"
"""Concurrency group of Pause and its status refresh."""

CLICKS_HEAD = """<script>
document.addEventListener("click", (e) => {
  if (e.target && e.target.closest && e.target.closest("#nfa-step")) {
    window.nfaStepClicks = (window.nfaStepClicks || 0) + 1;
  }
}, true);
</script>"""
"""Counts Step clicks in the page (goes into the page's <head>)."""

STEP_JS = ("(steps, layer, centered, clicks, win, scale) => "
           "[steps, layer, centered, window.nfaStepClicks || 0, win, scale]")
"""Sends the page's running click total with each Step event."""


def wire_pause(w: Any, view_in: list, view: tuple[str, ...]) -> None:
    """Pause (status and timer only: the pictures already show the snapshot it stops at), then a re-sync."""
    c, names = w.c, ["status", "timer"]
    quick = dict(concurrency_id=CONTROL, concurrency_limit=w.app.settings.workers, show_progress="hidden")
    c["pause"].click(w.bind(handlers.pause, names), view_in, w.outputs(names), **quick).then(
        w.bind(handlers.sync_status, ["status", "timer"]), None, w.outputs(["status", "timer"]), **quick)


def wire_step(w: Any, run_in: list, view: tuple[str, ...], every: dict) -> None:
    """Step with the page's click total after (steps, layer, centered) (API callers leave it 0: one click per call).

    ``run_in`` is (steps, layer, centered, then the other view inputs); the handler takes
    ``clicks`` right after ``centered``.
    """
    c = w.c
    c["clicks"] = gr.Number(0, precision=0, visible=False, label="Step clicks so far (0: one click)")
    inputs = run_in[:3] + [c["clicks"]] + run_in[3:]
    c["step"].click(w.bind(handlers.step, list(view)), inputs, w.outputs(list(view)),
                    api_name="step", js=STEP_JS, trigger_mode="always_last", **every)
