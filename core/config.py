"""Run configuration: one dataclass tree, the single source of truth.

The JSON form is the one in ``docs/run-contract.md``. Every key is optional; defaults
fill the rest. Unknown keys, wrong types and out-of-range values raise
:class:`ConfigError`, whose message is one line naming the dotted key and what is
allowed. ``Limits`` caps sizes; a deployment tightens them with environment variables
(``NFA_MAX_WIDTH``, ``NFA_MAX_DEPTH``, ``NFA_MAX_N``, ``NFA_MAX_STEPS``, ``NFA_MAX_D``,
``NFA_MAX_POINTS``).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union, get_type_hints

from core.presets import PRESETS  # plain data (no imports); re-exported here

ACTIVATIONS = ("relu", "tanh", "gelu", "linear", "sigmoid", "silu")
DATA_KINDS = ("synthetic", "digits", "file")
OPTIMIZERS = ("sgd", "adam")
CORRELATIONS = ("pearson", "cosine")
ALPHAS = (1.0, 0.5)
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("float32", "float64")
TASKS = ("auto", "regression", "classification")
STANDARDIZE = ("per_feature", "per_channel", "none")


_CONTROL = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")


class ConfigError(ValueError):
    """A user error in a config: ``key`` is the dotted key, the message says what is allowed."""

    def __init__(self, key: str, problem: str):
        self.key = key
        self.problem = problem
        text = f"{key}: {problem}" if key else problem
        super().__init__(_CONTROL.sub(lambda m: repr(m.group())[1:-1], text))  # always one line


@dataclass
class DataConfig:
    """Where the training points come from."""

    kind: str = "synthetic"
    """``synthetic`` (x ~ N(0, I_d), label = ``target``), ``digits`` (scikit-learn's 8x8 digits) or ``file``."""
    d: int = 20
    """Input dimension of synthetic data."""
    target: str = "x0*x1"
    """Synthetic target: an expression in x0..x{d-1} (see ``core.expr``)."""
    n_train: int = 2000
    """Training points (for digits/file data: at most this many)."""
    n_test: int = 1000
    """Test points (for digits/file data: at most this many, and at most a quarter of a short file)."""
    noise: float = 0.0
    """Std of Gaussian label noise on synthetic data."""
    path: str = ""
    """``file`` data: path to a CSV (label column, numeric cells) or NPZ (arrays ``X`` and ``y``)."""
    label_column: str = ""
    """``file`` CSV data: the label column, by header name or 0-based index; empty means the last column."""
    task: str = "auto"
    """``regression``, ``classification`` (one-hot minus 1/c targets) or ``auto`` (integer labels with at most 50 values are classes)."""
    standardize: str = "per_feature"
    """Input scaling from training statistics: ``per_feature`` (each feature its own mean and std), ``per_channel`` (one mean and std over all features, as the authors' code does per colour channel) or ``none``."""


@dataclass
class ModelConfig:
    """The MLP: ``depth`` hidden layers of ``width`` units, then a linear output layer."""

    depth: int = 3
    """Number of hidden (measured) layers L."""
    width: int = 128
    """Units per hidden layer."""
    activation: str = "relu"
    """One of relu, tanh, gelu, linear, sigmoid, silu."""
    bias: bool = False
    """Biases on every layer (the paper's experiments use none)."""
    init_scale: float = 1.0
    """Factor on PyTorch's default nn.Linear initialisation."""


@dataclass
class SloConfig:
    """Speed-limited optimisation: every layer moves ``speed`` per step, the target ``speed * boost``."""

    enabled: bool = False
    """Use SLO instead of ``optim.name``."""
    target_layer: int = 1
    """Hidden layer (1..depth) that moves faster."""
    speed: float = 0.01
    """Frobenius norm of each layer's step (eta)."""
    boost: float = 10.0
    """Factor beta >= 1 on the target layer's speed."""


@dataclass
class OptimConfig:
    """The update rule; every field can change between steps without resetting a run."""

    name: str = "sgd"
    """``sgd`` (with ``momentum``) or ``adam``."""
    lr: float = 0.05
    """Learning rate of sgd/adam."""
    momentum: float = 0.0
    """SGD momentum in [0, 1)."""
    batch_size: int = 128
    """Minibatch size (capped at n_train)."""
    weight_decay: float = 0.0
    """L2 coefficient lambda: sgd and adam add lambda*W to the gradient (torch's weight_decay); SLO normalises G + lambda*W, so its steps keep their speed."""
    warmup_steps: int = 0
    """The first this many steps are plain SGD steps at ``warmup_lr`` (no momentum, with weight decay) whatever the optimiser, as the authors' first epoch; every arm of a comparison leaves warm-up with the same weights."""
    warmup_lr: float = 1e-4
    """Learning rate of the warm-up steps."""
    slo: SloConfig = field(default_factory=SloConfig)


@dataclass
class MeasureConfig:
    """When and how the diagnostics are computed."""

    every: int = 100
    """Measure every this many steps (step 0, the end of the warm-up and the last step are always measured)."""
    every_epochs: int = 0
    """When above 0: measure at the end of every this many epochs (passes over the training set) instead of every ``every`` steps."""
    n_points: int = 1000
    """Size of the fixed measurement subset of the training set used for K and AGOP; 0 means all training points."""
    correlation: str = "pearson"
    """``pearson`` (mean entry subtracted, then cosine) or ``cosine``."""
    alpha: float = 1.0
    """AGOP power in the correlations: 1 or 0.5."""
    detail_every: int = 1
    """Compute the costly extras (the jackknife SEs ``uc_nfa_se``/``c_nfa_se`` and ``diag_share``'s
    eigendecomposition) at every this many measurements; step 0, the end of the warm-up and the
    run's last step (``steps``) always have them, other rows leave them empty. 1: every measurement."""


@dataclass
class RunConfig:
    """A whole run. ``RunConfig.from_dict(cfg.to_dict()) == cfg``."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    measure: MeasureConfig = field(default_factory=MeasureConfig)
    steps: int = 2000
    """Training steps of a headless run."""
    seed: int = 0
    """Seeds data, initialisation and batch order."""
    device: str = "auto"
    """``auto`` (CUDA when available), ``cpu`` or ``cuda``."""
    dtype: str = "float32"
    """Floating point type of the network: float32 or float64."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dict (every key present)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], limits: "Limits | None" = None) -> "RunConfig":
        """Builds and validates a config; a top-level ``preset`` key names the base config."""
        if not isinstance(raw, dict):
            raise ConfigError("config", "must be a JSON object")
        raw = dict(raw)
        preset = raw.pop("preset", None)
        base = preset_config(preset, limits=None) if preset is not None else cls()
        cfg = _merge(base, raw, "")
        validate(cfg, limits or Limits.from_env())
        return cfg

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def replace(self, **changes: Any) -> "RunConfig":
        """A deep copy with dotted-key changes applied and validated: ``replace(**{"optim.lr": 0.1})``."""
        cfg = copy.deepcopy(self)
        for key, value in changes.items():
            set_dotted(cfg, key, value)
        validate(cfg, Limits.from_env())
        return cfg


@dataclass(frozen=True)
class Limits:
    """Size caps; a public deployment tightens them through environment variables."""

    max_width: int = 2048
    max_depth: int = 12
    max_n: int = 100_000
    max_steps: int = 10_000_000
    max_d: int = 4096
    max_points: int = 10_000

    @staticmethod
    def env_name(field_name: str, prefix: str = "NFA_") -> str:
        """The environment variable that sets a cap: ``max_width`` -> ``NFA_MAX_WIDTH``."""
        return prefix + field_name.upper()

    @classmethod
    def from_env(cls, prefix: str = "NFA_") -> "Limits":
        values = {}
        for f in dataclasses.fields(cls):
            env = os.environ.get(prefix + f.name.upper())
            if env is None:
                continue
            text = env.strip()
            if not (text.isdigit() and len(text) <= 12 and int(text) >= 1):
                raise ConfigError(prefix + f.name.upper(), f"must be a positive integer, got {env[:40]!r}")
            values[f.name] = int(text)
        return cls(**values)


# -- parsing ---------------------------------------------------------------------------

def _type_name(tp: Any) -> str:
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(tp, str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Checks a JSON value against a field's type (ints are accepted for floats, bools are not numbers)."""
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
        if key.endswith("label_column") and isinstance(value, int) and not isinstance(value, bool):
            return str(value)
    got = "null" if value is None else type(value).__name__
    raise ConfigError(key, f"must be {_type_name(tp)}, got {got} {value!r}"[:200])


def _merge(obj: Any, raw: dict[str, Any], prefix: str) -> Any:
    hints = get_type_hints(type(obj))
    names = {f.name for f in dataclasses.fields(obj)}
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        if key not in names:
            raise ConfigError(dotted, f"unknown key; allowed: {', '.join(sorted(names))}")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise ConfigError(dotted, "must be a JSON object")
            _merge(getattr(obj, key), value, dotted + ".")
        else:
            setattr(obj, key, _coerce(value, tp, dotted))
    return obj


MAX_JSON_DEPTH = 32
"""Nesting depth allowed in a config file or ``--set`` value (a config needs 3)."""
MAX_INT_DIGITS = 30
"""Digits allowed in a JSON integer (seeds and sizes need 10)."""
MAX_CONFIG_BYTES = 1 << 20
"""Size of a config file read (a full config is under 1 KiB)."""
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]")


def json_depth(text: str) -> int:
    """The deepest nesting of [ and { in a JSON text (strings ignored), without parsing it."""
    depth = deepest = 0
    for ch in _NOT_BRACKET.sub("", _STRINGS.sub("", text)):
        depth += 1 if ch in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _bounded_int(text: str) -> int:
    digits = text.lstrip("-")
    if len(digits) > MAX_INT_DIGITS:
        raise _TooLong(f"an integer of {len(digits)} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _no_constant(name: str) -> Any:
    raise _TooLong(f"{name} (not a JSON number; use a finite number)")


class _TooLong(ValueError):
    pass


def parse_json(text: str, key: str) -> Any:
    """``json.loads`` with depth and integer size bounded; raises ConfigError naming ``key``.

    Raises json.JSONDecodeError for text that is not JSON at all.
    """
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise ConfigError(key, f"JSON nested {depth} deep; at most {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text, parse_int=_bounded_int, parse_constant=_no_constant)
    except _TooLong as err:
        raise ConfigError(key, f"holds {err}") from None
    except RecursionError:
        raise ConfigError(key, f"JSON nested too deep; at most {MAX_JSON_DEPTH} levels") from None


def parse_scalar(text: str, key: str = "--set") -> Any:
    """Parses a ``--set`` value: JSON if it parses (numbers, true/false), else the raw string."""
    try:
        return parse_json(text, key)
    except json.JSONDecodeError:
        return text


def set_dotted(cfg: RunConfig, key: str, value: Any) -> None:
    """Sets ``optim.slo.enabled``-style keys, with the same type checks as ``from_dict``."""
    parts = key.split(".")
    obj: Any = cfg
    for i, part in enumerate(parts):
        dotted = ".".join(parts[: i + 1])
        names = {f.name for f in dataclasses.fields(obj)}
        if part not in names:
            where = ".".join(parts[:i]) or "config"
            raise ConfigError(dotted, f"unknown key in {where}; allowed: {', '.join(sorted(names))}")
        tp = get_type_hints(type(obj))[part]
        if i == len(parts) - 1:
            if dataclasses.is_dataclass(tp):
                if isinstance(value, str):
                    value = parse_scalar(value, dotted)
                if not isinstance(value, dict):
                    raise ConfigError(dotted, "must be a JSON object")
                _merge(getattr(obj, part), value, dotted + ".")
            else:
                if isinstance(value, str) and tp is not str:
                    value = parse_scalar(value, dotted)
                setattr(obj, part, _coerce(value, tp, dotted))
        else:
            if not dataclasses.is_dataclass(tp):
                raise ConfigError(dotted, "is not a section")
            obj = getattr(obj, part)


# -- validation ------------------------------------------------------------------------

def _check(ok: bool, key: str, problem: str) -> None:
    if not ok:
        raise ConfigError(key, problem)


def _one_of(value: Any, allowed: tuple, key: str) -> None:
    _check(value in allowed, key, f"must be one of {', '.join(map(str, allowed))}; got {value!r}")


def _in_range(value: float, lo: float, hi: float, key: str, lo_open: bool = False) -> None:
    ok = (value > lo if lo_open else value >= lo) and value <= hi
    bracket = "(" if lo_open else "["
    _check(ok, key, f"must be in {bracket}{lo:g}, {hi:g}]; got {value!r}")


def _capped(value: int, lo: int, limits: Limits, cap: str, key: str) -> None:
    """``lo <= value <= limits.<cap>``; above the cap, the message names the variable that sets it."""
    hi = getattr(limits, cap)
    if value > hi >= lo:
        raise ConfigError(key, f"must be in [{lo}, {hi}]; got {value!r} (the upper bound is {Limits.env_name(cap)})")
    _in_range(value, lo, hi, key)


def validate(cfg: RunConfig, limits: Limits) -> None:
    """Raises ConfigError for the first out-of-range value."""
    d, m, o, s, me = cfg.data, cfg.model, cfg.optim, cfg.optim.slo, cfg.measure
    _one_of(d.kind, DATA_KINDS, "data.kind")
    _capped(d.d, 1, limits, "max_d", "data.d")
    _capped(d.n_train, 2, limits, "max_n", "data.n_train")
    _capped(d.n_test, 1, limits, "max_n", "data.n_test")
    _in_range(d.noise, 0.0, 1e3, "data.noise")
    _one_of(d.task, TASKS, "data.task")
    _one_of(d.standardize, STANDARDIZE, "data.standardize")
    _check(len(d.target) <= 500, "data.target", "must be at most 500 characters")
    if d.kind == "file":
        _check(bool(d.path), "data.path", "is required when data.kind is 'file'")
    _capped(m.depth, 1, limits, "max_depth", "model.depth")
    _capped(m.width, 1, limits, "max_width", "model.width")
    _one_of(m.activation, ACTIVATIONS, "model.activation")
    _in_range(m.init_scale, 0.0, 100.0, "model.init_scale", lo_open=True)
    _one_of(o.name, OPTIMIZERS, "optim.name")
    _in_range(o.lr, 0.0, 100.0, "optim.lr", lo_open=True)
    _check(0.0 <= o.momentum < 1.0, "optim.momentum", f"must be in [0, 1); got {o.momentum!r}")
    _capped(o.batch_size, 1, limits, "max_n", "optim.batch_size")
    _in_range(o.weight_decay, 0.0, 10.0, "optim.weight_decay")
    _in_range(o.warmup_steps, 0, limits.max_steps, "optim.warmup_steps")
    _in_range(o.warmup_lr, 0.0, 100.0, "optim.warmup_lr", lo_open=True)
    _in_range(s.target_layer, 1, m.depth, "optim.slo.target_layer")
    _in_range(s.speed, 0.0, 100.0, "optim.slo.speed", lo_open=True)
    _in_range(s.boost, 1.0, 1e4, "optim.slo.boost")
    _capped(me.every, 1, limits, "max_steps", "measure.every")
    _in_range(me.every_epochs, 0, limits.max_steps, "measure.every_epochs")
    _capped(me.detail_every, 1, limits, "max_steps", "measure.detail_every")
    _capped(me.n_points, 0, limits, "max_points", "measure.n_points")
    _check(me.n_points or d.n_train <= limits.max_points, "measure.n_points",
           f"0 (all training points) allows data.n_train up to {limits.max_points}; got {d.n_train}")
    _one_of(me.correlation, CORRELATIONS, "measure.correlation")
    _one_of(me.alpha, ALPHAS, "measure.alpha")
    _capped(cfg.steps, 0, limits, "max_steps", "steps")
    _in_range(cfg.seed, 0, 2**31 - 1, "seed")
    _one_of(cfg.device, DEVICES, "device")
    _one_of(cfg.dtype, DTYPES, "dtype")
    if d.kind == "synthetic":
        from core.expr import parse_target  # local import: expr has no config dependency

        parse_target(d.target, d.d)


# -- presets ---------------------------------------------------------------------------

DEFAULT_PRESET = "quickstart"


def preset_config(name: str, limits: Limits | None = None) -> RunConfig:
    """The config of a named preset."""
    if not isinstance(name, str) or name not in PRESETS:
        raise ConfigError("preset", f"must be one of {', '.join(PRESETS)}; got {name!r}")
    cfg = _merge(RunConfig(), copy.deepcopy(PRESETS[name]), "")
    if limits is not None:
        validate(cfg, limits)
    return cfg


def default_config() -> RunConfig:
    """The built-in default: the ``quickstart`` preset."""
    return preset_config(DEFAULT_PRESET)


def load_config(path: Union[str, Path], limits: Limits | None = None) -> RunConfig:
    """Reads a JSON config file, a run folder's config.json, or a preset name when no such file exists.

    Only a regular file of at most ``MAX_CONFIG_BYTES`` is read (a FIFO or ``/dev/zero`` is
    refused before it is opened); JSON depth and integer size are bounded.
    """
    from core.iofiles import read_bytes_bounded  # iofiles imports this module

    p = Path(path)
    if str(path) == "":
        raise ConfigError("--config", "is empty; give a config file, a run folder or a preset "
                                      f"({', '.join(PRESETS)})")
    if not p.exists() and str(path) in PRESETS:
        return preset_config(str(path), limits or Limits.from_env())
    if p.is_dir():
        if not (p / "config.json").exists():
            raise ConfigError("--config", f"cannot read {str(path)!r}: the folder has no config.json; give a "
                                          f"config file, a run folder or a preset ({', '.join(PRESETS)})")
        p = p / "config.json"
    elif not p.exists() and not p.is_symlink():
        raise ConfigError("--config", f"cannot read {str(path)!r}: no such file, and no preset has that name "
                                      f"({', '.join(PRESETS)})")
    data = read_bytes_bounded(p, "--config", MAX_CONFIG_BYTES, "config file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError("--config", f"{p.name} is not a JSON text file (not UTF-8)") from None
    try:
        raw = parse_json(text, "--config")
    except json.JSONDecodeError as err:
        raise ConfigError("--config", f"{p.name} is not valid JSON (line {err.lineno}: {err.msg})") from None
    return RunConfig.from_dict(raw, limits)


def field_docs() -> dict[str, str]:
    """Dotted key -> the field's docstring line, for help texts in the front ends."""
    import ast
    import inspect

    docs: dict[str, str] = {}

    def walk(cls: type, prefix: str) -> None:
        tree = ast.parse(inspect.getsource(cls))
        body = tree.body[0].body
        for node, nxt in zip(body, body[1:] + [None]):
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                name = node.target.id
                if isinstance(nxt, ast.Expr) and isinstance(getattr(nxt, "value", None), ast.Constant):
                    docs[prefix + name] = str(nxt.value.value)
        for f in dataclasses.fields(cls):
            tp = get_type_hints(cls)[f.name]
            if dataclasses.is_dataclass(tp):
                walk(tp, prefix + f.name + ".")

    walk(RunConfig, "")
    return docs


def flat_items(cfg: RunConfig) -> dict[str, Any]:
    """Dotted key -> value for every leaf field."""
    out: dict[str, Any] = {}

    def walk(d: dict, prefix: str) -> None:
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, prefix + k + ".")
            else:
                out[prefix + k] = v

    walk(cfg.to_dict(), "")
    return out

