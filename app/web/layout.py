"""``build_demo``: the Gradio page, its controls, and the wiring of events to handlers.

Handlers (``app.web.handlers``, ``app.web.exports``) return dicts of named outputs;
``_Wiring.bind`` maps those names to components, shows a returned ``warning`` as a
toast, and passes Gradio's session hash as the session key.
"""

from __future__ import annotations

from typing import Any, Callable

import gradio as gr

from app.web import exports, handlers, texts
from app.web.form import FORM_KEYS
from app.web import control
from app.web.fair import Key
from app.web.handlers import COMPARE_START, WebApp
from app.web.pagejs import CHART_JS
from app.web.sessions import RECENT_POINTS
from app.web.views import SCALE, SCALES, WINDOW, WINDOWS
from core.config import ACTIVATIONS, CORRELATIONS, DATA_KINDS, OPTIMIZERS, PRESETS, STANDARDIZE

TICK_SECONDS = 0.2
DEFAULT_STEPS_PER_UPDATE = 25
ENGINE = "engine"
"""Concurrency group of every event that trains or measures."""


class _Wiring:
    """Named components and the adapter from handler dicts to Gradio outputs."""

    def __init__(self, app: WebApp):
        self.app = app
        self.c: dict[str, Any] = {}
        self.form: list[gr.components.Component] = []

    def group(self, name: str) -> list | None:
        """The components of a name that stands for several (the form's controls, the charts)."""
        if name == "form":
            return self.form
        value = self.c[name]
        return value if isinstance(value, list) else None

    def outputs(self, names: list[str]) -> list:
        out = []
        for name in names:
            out += self.group(name) or [self.c[name]]
        return out

    def finish(self, result: dict, names: list[str]) -> list:
        """Shows a returned warning as a toast and orders the named results as ``outputs(names)``."""
        if result.get("warning"):
            gr.Warning(result["warning"])
        values: list = []
        for name in names:
            group = self.group(name)
            if group is not None:
                values += list(result[name]) if name in result else [gr.skip()] * len(group)
            else:
                values.append(result.get(name, gr.skip()))
        return values

    def bind(self, fn: Callable[..., dict], names: list[str], n_form: int = 0) -> Callable:
        """A Gradio function calling ``fn(app, session_hash, *inputs)``.

        With ``n_form`` the first inputs are the form's controls, passed on as one list.
        """
        app, form_len = self.app, len(self.form)

        def handler(request: gr.Request, *args):
            if n_form:
                args = (list(args[:form_len]),) + args[form_len:]
            return self.finish(fn(app, caller(request), *args), names)

        handler.__name__ = getattr(fn, "__name__", "handler")
        return handler


def caller(request: gr.Request) -> Key:
    """The session key of an event: Gradio's session hash, carrying the caller's address."""
    client = getattr(request, "client", None)
    return Key.of(request.session_hash, getattr(client, "host", "") or "")


def _controls(w: _Wiring) -> None:
    """The setup form (stored in ``c["made"]`` by key): what needs a Reset, then what applies live."""
    lim, c, made = w.app.limits, w.c, {}
    gr.Markdown(texts.RESET_HEAD)
    c["preset"] = gr.Dropdown(list(PRESETS), value="quickstart", label="Preset", info="fills the form below")
    with gr.Group():
        made["data.kind"] = gr.Radio(list(DATA_KINDS), label="Data set")
        made["data.target"] = gr.Textbox(label="Target y = f(x)", info=texts.TARGET_INFO)
        with gr.Row():
            made["data.d"] = gr.Number(label="Dimension d", precision=0, minimum=1, maximum=lim.max_d, min_width=80)
            made["data.n_train"] = gr.Number(label="Train points", precision=0, minimum=2, maximum=lim.max_n,
                                             min_width=80)
            made["data.noise"] = gr.Number(label="Label noise", minimum=0, min_width=80)
        c["upload"] = gr.File(label="Upload CSV (label: last column) or NPZ (arrays X, y)", file_types=[".csv", ".npz"],
                              type="filepath", visible=False)
        made["data.label_column"] = gr.Textbox(label="CSV label column (name or index; empty: last)", visible=False)
        made["data.standardize"] = gr.Radio(list(STANDARDIZE), label="Standardise inputs",
                                            info="per_channel: one mean and std for all features, as the authors' code")
    with gr.Group():
        with gr.Row():
            made["model.depth"] = gr.Number(label="Depth", precision=0, minimum=1, maximum=lim.max_depth, min_width=80)
            made["model.width"] = gr.Number(label="Width", precision=0, minimum=1, maximum=lim.max_width, min_width=80)
            made["model.init_scale"] = gr.Number(label="Init scale", minimum=0.001, min_width=80)
        with gr.Row():
            made["model.activation"] = gr.Dropdown(list(ACTIVATIONS), label="Activation", min_width=100)
            made["model.bias"] = gr.Checkbox(label="Biases", min_width=80)
        with gr.Row():
            made["measure.n_points"] = gr.Number(label="Measurement points (0: all)", precision=0, minimum=0,
                                                 maximum=lim.max_points, min_width=80)
            made["seed"] = gr.Number(label="Seed", precision=0, minimum=0, min_width=80)
    gr.Markdown(texts.LIVE_HEAD)
    with gr.Group():
        with gr.Row():
            made["optim.name"] = gr.Dropdown(list(OPTIMIZERS), label="Optimiser", min_width=80)
            made["optim.lr"] = gr.Number(label="Learning rate", minimum=0, min_width=80)
        with gr.Row():
            made["optim.momentum"] = gr.Number(label="SGD momentum", minimum=0, maximum=0.999, min_width=80)
            made["optim.batch_size"] = gr.Number(label="Batch size", precision=0, minimum=1, min_width=80)
        with gr.Row():
            made["optim.weight_decay"] = gr.Number(label="Weight decay λ", minimum=0, min_width=80)
            made["optim.warmup_steps"] = gr.Number(label="Warm-up steps (plain SGD)", precision=0, minimum=0,
                                                   min_width=80)
            made["optim.warmup_lr"] = gr.Number(label="Warm-up lr", minimum=0, min_width=80)
        with gr.Row():
            made["measure.every"] = gr.Number(label="Measure every N steps", precision=0, minimum=1, min_width=80)
            made["measure.every_epochs"] = gr.Number(label="…or every N epochs (0: off)", precision=0, minimum=0,
                                                     min_width=80)
            made["steps"] = gr.Number(label="Run length (steps)", precision=0, minimum=0, maximum=lim.max_steps,
                                      min_width=80)
        with gr.Row():
            made["measure.correlation"] = gr.Radio(list(CORRELATIONS), label="Correlation ρ", min_width=80)
            made["measure.alpha"] = gr.Radio([("1", 1.0), ("1/2", 0.5)], label="AGOP power α", min_width=80)
    c["made"] = made


def _slo_controls(w: _Wiring) -> dict[str, Any]:
    lim = w.app.limits
    made = {}
    with gr.Group():
        made["optim.slo.enabled"] = gr.Checkbox(label="SLO on", elem_id="nfa-slo-on")
        with gr.Row():
            made["optim.slo.target_layer"] = gr.Dropdown([(str(i), i) for i in range(1, lim.max_depth + 1)],
                                                         label="Target layer")
            made["optim.slo.boost"] = gr.Number(label="Boost β", minimum=1)
        made["optim.slo.speed"] = gr.Number(label="Speed η (step size of every layer)", minimum=0)
    return made


def _view_column(w: _Wiring) -> None:
    """Heatmaps of the selected layer, then the four charts (2x2), then what they show."""
    readme = w.app.settings.readme_url
    w.c["heat"] = gr.HTML("<div class='nfa-dim'>Loading…</div>", elem_id="nfa-heat")
    plots = []
    for row in range(2):
        with gr.Row(elem_classes="nfa-chart-row"):
            for col in range(2):
                plots.append(gr.Plot(show_label=False, container=False, elem_id=f"nfa-chart-{2 * row + col + 1}",
                                     elem_classes="nfa-chart", min_width=260))
    w.c["curves"] = plots
    gr.HTML(texts.curves_help(readme))
    gr.HTML(texts.heat_help(readme))


def _view_controls(w: _Wiring) -> None:
    """How the pictures are shown: the curves' step window and the heatmaps' colour scale."""
    with gr.Row(elem_id="nfa-viewctl"):
        w.c["window"] = gr.Radio(list(WINDOWS), value=WINDOW, label="Curves", min_width=140, elem_id="nfa-window",
                                 info=f"whole run (min/max per pixel) or the last {RECENT_POINTS} measurements")
        w.c["scale"] = gr.Radio(list(SCALES), value=SCALE, label="Heatmap scale", min_width=140, elem_id="nfa-scale",
                                info="max |entry|, or the 99th percentile (an outlier cannot wash it out)")


def _side_column(w: _Wiring) -> None:
    c = w.c
    _view_controls(w)
    with gr.Tabs():
        with gr.Tab("SLO", id="slo"):
            slo = _slo_controls(w)
            c["compare_button"] = gr.Button(COMPARE_START, elem_id="nfa-compare")  # near Play on a phone too
            gr.Markdown(texts.slo_help())
            gr.Markdown(texts.COMPARE_HELP)
        with gr.Tab("Setup", id="setup"):
            _controls(w)
        with gr.Tab("Export", id="export"):
            c["export_button"] = gr.Button("⤓ Export run", elem_id="nfa-export")
            c["files"] = gr.File(label="Downloads: view.png, config.json, metrics.csv, final.npz, run .zip",
                                 file_count="multiple", interactive=False)
            c["load"] = gr.File(label="Load a saved run (.zip from Export) and continue", file_types=[".zip"],
                                type="filepath")
            c["share"] = gr.Textbox(label="Link to this setup (query string)", interactive=False, buttons=["copy"],
                                    elem_id="nfa-share")
            gr.Markdown(texts.SHARE_HELP)
    made = {**c.pop("made"), **slo}
    w.form = [made[k] for k in FORM_KEYS]


def _transport(w: _Wiring) -> None:
    c = w.c
    with gr.Row(elem_id="nfa-transport", equal_height=True):
        c["play"] = gr.Button("▶ Play", variant="primary", elem_id="nfa-play", scale=1, min_width=90)
        c["pause"] = gr.Button("▮▮ Pause", elem_id="nfa-pause", scale=1, min_width=90)
        c["step"] = gr.Button("▸ Step", elem_id="nfa-step", scale=1, min_width=90)
        c["reset"] = gr.Button("↺ Reset", variant="secondary", elem_id="nfa-reset", scale=1, min_width=90)
        c["steps"] = gr.Slider(1, w.app.settings.max_steps_per_update, value=DEFAULT_STEPS_PER_UPDATE, step=1,
                               label="Steps per update", scale=3, elem_id="nfa-steps")
        c["layer"] = gr.Radio([("1", 1)], value=1, label="Layer", scale=2, elem_id="nfa-layer")
        c["centered"] = gr.Checkbox(label="Centered (dW only)", scale=2, min_width=190, elem_id="nfa-centered")
    c["status"] = gr.HTML("", elem_id="nfa-status")


def build_demo(app: WebApp | None = None) -> gr.Blocks:
    """The page. ``app`` holds settings and sessions; a fresh one (from the environment) by default."""
    app = app or WebApp.create()
    w = _Wiring(app)
    with gr.Blocks(title="NFA Explorer", analytics_enabled=False, delete_cache=(600, 3600)) as demo:
        w.c["timer"] = gr.Timer(TICK_SECONDS, active=False)
        gr.HTML(texts.header(app.settings.readme_url), elem_id="nfa-top")
        _transport(w)
        with gr.Row():
            with gr.Column(scale=5, min_width=520, elem_id="nfa-view"):
                _view_column(w)
            with gr.Column(scale=2, min_width=300, elem_id="nfa-side"):
                _side_column(w)
        with gr.Accordion("README", open=False, elem_id="readme"):
            gr.Markdown(texts.readme_markdown())
        _wire(w, demo)
    demo.nfa_app = app  # the session store, for tests and for closing on shutdown
    app.store.forget = lambda key: forget_gradio_state(demo, key)
    return demo


def forget_gradio_state(demo: gr.Blocks, key: str) -> bool:
    """Drops what Gradio keeps for a session hash that cannot come back; True if it held any.

    Gradio keeps a ``SessionState`` (a copy of every component's config, about 170 KiB for
    this page) for each session hash it has seen, closed or not, until 10,000 newer ones
    push it out (``launch(state_session_capacity=...)``); only ``gr.State`` values expire.
    """
    holder = getattr(demo, "state_holder", None)  # set when the demo is launched
    if holder is None:
        return False
    with holder.lock:
        holder.time_last_used.pop(key, None)
        return holder.session_data.pop(key, None) is not None


VIEW = ("status", "heat", "curves")
LOADED = (*VIEW, "form", "preset", "layer", "share", "timer", "compare_button")
"""Outputs of a page load and of loading a saved run: the whole page."""


def _wire(w: _Wiring, demo: gr.Blocks) -> None:
    c, app = w.c, w.app
    view_in = [c["layer"], c["centered"], c["window"], c["scale"]]
    run_in = [c["steps"]] + view_in
    every = dict(concurrency_id=ENGINE, show_progress="hidden")

    def on_load(request: gr.Request):
        return w.finish(handlers.load_page(app, caller(request), dict(request.query_params)), list(LOADED))

    def on_unload(request: gr.Request):
        handlers.unload(app, request.session_hash)

    demo.load(on_load, None, w.outputs(list(LOADED)), **every)
    demo.load(None, None, None, js=CHART_JS)
    demo.unload(on_unload)

    c["timer"].tick(w.bind(handlers.tick, [*VIEW, "timer"]), run_in, w.outputs([*VIEW, "timer"]), **every)
    c["play"].click(w.bind(handlers.play, [*VIEW, "timer"]), view_in, w.outputs([*VIEW, "timer"]), **every)
    control.wire_pause(w, view_in, VIEW)
    control.wire_step(w, run_in, VIEW, every)
    for comp in view_in:
        comp.input(w.bind(handlers.show, list(VIEW)), view_in, w.outputs(list(VIEW)), **every)
    reset_names = [*VIEW, "layer", "timer", "share"]
    c["reset"].click(w.bind(handlers.reset, reset_names, n_form=1), w.form + view_in, w.outputs(reset_names),
                     api_name="reset", **every)
    cmp_names = [*VIEW, "timer", "compare_button", "layer"]
    c["compare_button"].click(w.bind(handlers.toggle_compare, cmp_names, n_form=1), w.form + view_in,
                              w.outputs(cmp_names), **every)
    _wire_form(w, view_in, every)
    _wire_files(w, view_in, every)
    c["share"].change(None, c["share"], None, js=SHARE_JS)


SHARE_JS = """(q) => { if (q) { const u = new URL(window.location.href); u.search = q;
  window.history.replaceState(null, "", u); } return []; }"""


def _wire_form(w: _Wiring, view_in: list, every: dict) -> None:
    c = w.c
    names = [*VIEW, "share"]
    apply = w.bind(handlers.change_settings, names, n_form=1)
    for comp in w.form:
        if isinstance(comp, (gr.Textbox, gr.Number)):
            for event in (comp.submit, comp.blur):
                event(apply, w.form + view_in, w.outputs(names), **every)
        else:
            comp.input(apply, w.form + view_in, w.outputs(names), **every)
    preset_names = [*VIEW, "form", "preset", "share"]
    c["preset"].input(w.bind(handlers.choose_preset, preset_names), [c["preset"]] + view_in,
                      w.outputs(preset_names), **every)
    kind = w.form[FORM_KEYS.index("data.kind")]
    synthetic = [w.form[FORM_KEYS.index(k)] for k in ("data.target", "data.d", "data.noise")]
    files = [c["upload"], w.form[FORM_KEYS.index("data.label_column")]]
    kind.change(lambda k: [gr.update(visible=k == "synthetic")] * 3 + [gr.update(visible=k == "file")] * 2,
                kind, synthetic + files, show_progress="hidden")


def _wire_files(w: _Wiring, view_in: list, every: dict) -> None:
    c = w.c
    label = w.form[FORM_KEYS.index("data.label_column")]
    up_names = [*VIEW, "data_kind"]
    c["data_kind"] = w.form[FORM_KEYS.index("data.kind")]
    c["upload"].upload(w.bind(exports.upload_data, up_names), [c["upload"], label] + view_in, w.outputs(up_names),
                       **every)
    c["export_button"].click(w.bind(exports.export, [*VIEW, "files"]), view_in, w.outputs([*VIEW, "files"]),
                             api_name="export", **every)
    c["load"].upload(w.bind(exports.load_run, list(LOADED)), [c["load"]] + view_in, w.outputs(list(LOADED)),
                     **every)
