"""The setup form <-> RunConfig, and the config <-> the page URL's query string.

The form's controls are made from ``FORM_KEYS`` (dotted config keys). A config comes
from a *base* (a preset, the URL, or a loaded run) with the form's values laid over
it, validated against the web's limits. The URL carries the preset name plus every key
that differs from it (``?preset=quickstart&model.width=64``), readable and editable.
A URL or a form can never name a file on the server: ``data.path`` is set only from
the session's own upload.
"""

from __future__ import annotations

import copy
from typing import Any, Iterable, Mapping
from urllib.parse import urlencode

from core.config import (PRESETS, ConfigError, Limits, RunConfig, flat_items, parse_scalar, preset_config,
                         set_dotted, validate)

FORM_KEYS = (
    "data.kind", "data.target", "data.d", "data.n_train", "data.noise", "data.label_column",
    "model.depth", "model.width", "model.activation", "model.bias", "model.init_scale",
    "optim.name", "optim.lr", "optim.momentum", "optim.batch_size",
    "optim.slo.enabled", "optim.slo.target_layer", "optim.slo.speed", "optim.slo.boost",
    "measure.every", "measure.n_points", "measure.correlation", "measure.alpha",
    "steps", "seed",
    "data.standardize", "optim.weight_decay", "optim.warmup_steps", "optim.warmup_lr", "measure.every_epochs",
)
"""Config keys with a control in the page, in the order handlers receive their values."""

URL_FORBIDDEN = ("data.path", "device")
"""Keys a link may not set: a server path, and the server's hardware."""

UPLOAD_NEEDED = "upload a CSV or NPZ file first (Data set: file)"


def form_values(cfg: RunConfig) -> list[Any]:
    """The control values that show ``cfg``, in ``FORM_KEYS`` order."""
    flat = flat_items(cfg)
    return [flat[k] for k in FORM_KEYS]


def config_from_form(base: RunConfig, values: Iterable[Any], limits: Limits, data_file: str = "") -> RunConfig:
    """``base`` with the form's values set (in ``FORM_KEYS`` order); raises ConfigError.

    ``data_file`` is the session's uploaded file, the only path a ``file`` data set may use.
    """
    cfg = copy.deepcopy(base)
    for key, value in zip(FORM_KEYS, values, strict=True):
        set_dotted(cfg, key, _clean(key, value))
    if cfg.data.kind == "file":
        if not data_file:
            raise ConfigError("data.kind", UPLOAD_NEEDED)
        cfg.data.path = data_file
    else:
        cfg.data.path = ""
    validate(cfg, limits)
    return cfg


def _clean(key: str, value: Any) -> Any:
    """Turns control values into config values (Number gives floats, Textbox strings)."""
    if value is None:
        raise ConfigError(key, "is empty; enter a value")
    if isinstance(value, str) and key not in ("data.target", "data.label_column", "data.kind", "model.activation",
                                              "optim.name", "measure.correlation", "data.standardize"):
        value = parse_scalar(value.strip())
    return value


def preset_of(base: RunConfig) -> str:
    """The preset nearest to ``base`` (fewest differing keys), for URLs and the dropdown."""
    flat = flat_items(base)

    def distance(name: str) -> int:
        other = flat_items(preset_config(name))
        return sum(flat[k] != other[k] for k in flat)

    return min(PRESETS, key=distance)


def to_query(cfg: RunConfig, preset: str) -> str:
    """``preset=NAME&key=value...``: the keys where ``cfg`` differs from the preset."""
    ref = flat_items(preset_config(preset))
    diff = [(k, v) for k, v in flat_items(cfg).items() if v != ref[k] and k not in URL_FORBIDDEN]
    return urlencode([("preset", preset)] + [(k, _query_value(v)) for k, v in diff])


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{value:g}" if isinstance(value, float) else str(value)


def known_params(params: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """(the parameters that name a setting or the preset, the names of the others).

    A link may carry parameters that are not ours (tracking tags, Gradio's ``__theme``):
    they are left alone, never reported as errors.
    """
    known = set(flat_items(RunConfig())) | {"preset"}
    mine = {k: v for k, v in params.items() if k in known}
    return mine, [k for k in params if k not in known and not k.startswith("__")]


def from_query(params: Mapping[str, str], limits: Limits) -> tuple[RunConfig, str, list[str]]:
    """(config, preset, problems) from URL parameters; bad parameters are skipped and reported."""
    problems: list[str] = []
    preset = params.get("preset", "quickstart")
    if preset not in PRESETS:
        problems.append(f"preset: no preset {preset!r}; using quickstart")
        preset = "quickstart"
    base = preset_config(preset)
    items = [(k, v) for k, v in params.items() if k != "preset" and not k.startswith("__")]
    try:
        return _apply(base, items, limits), preset, problems
    except ConfigError:
        pass
    cfg = base
    for key, raw in items:
        try:
            cfg = _apply(cfg, [(key, raw)], limits)
        except ConfigError as err:
            problems.append(str(err)[:200])
    return cfg, preset, problems


def _apply(cfg: RunConfig, items: list[tuple[str, str]], limits: Limits) -> RunConfig:
    trial = copy.deepcopy(cfg)
    for key, raw in items:
        if key in URL_FORBIDDEN or (key == "data.kind" and raw == "file"):
            raise ConfigError(key, "cannot be set from a link")
        set_dotted(trial, key, raw)
    validate(trial, limits)
    return trial
