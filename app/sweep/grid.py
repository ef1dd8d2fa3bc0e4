"""``--grid KEY=VALUES`` items: parsing, the runs they make, and the runs' readable names.

VALUES is a comma list (``optim.slo.boost=1,3,10``; each value read like ``--set``) or an
integer range ``START:STOP[:STEP]`` (``seed=0:5`` is 0..4). Every error names the
``--grid`` item it comes from.
"""

from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass
from math import prod
from typing import Any

from core.config import ConfigError, Limits, RunConfig, flat_items, parse_scalar, set_dotted, validate

_RANGE = re.compile(r"^\s*(-?\d+)\s*:\s*(-?\d+)\s*(?::\s*(-?\d+)\s*)?$")
_UNSAFE = re.compile(r"[^A-Za-z0-9.+-]+")
MAX_VALUES = 100_000


@dataclass(frozen=True)
class Axis:
    """One ``--grid`` item: a dotted key and its values."""

    item: str
    key: str
    values: tuple[Any, ...]


def parse_axis(item: str, base: RunConfig, limits: Limits) -> Axis:
    """Parses and checks one ``--grid`` item against ``base`` (each value alone must make a valid config)."""
    flag = f"--grid {item}"
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key or not text.strip():
        raise ConfigError(flag, "expects KEY=VALUES, e.g. optim.lr=0.01,0.1 or seed=0:5")
    is_range = bool(_RANGE.match(text))
    values = _range(text, flag) if is_range else _list(text, flag)
    for value in (values[0], values[-1]) if is_range else values:  # a range is checked at its two ends
        trial = copy.deepcopy(base)
        try:
            set_dotted(trial, key, value)
            validate(trial, limits)
        except ConfigError as err:
            raise ConfigError(flag, str(err)) from None
    return Axis(item, key, tuple(values))


def _range(text: str, flag: str) -> list[int]:
    start, stop, step = (int(g) if g is not None else None for g in _RANGE.match(text).groups())
    step = 1 if step is None else step
    if step == 0:
        raise ConfigError(flag, "the range step must not be 0")
    n = len(range(start, stop, step))
    if n == 0:
        raise ConfigError(flag, f"the range {text.strip()} is empty (START:STOP counts START up to STOP-1)")
    if n > MAX_VALUES:
        raise ConfigError(flag, f"the range has {n} values; at most {MAX_VALUES}")
    return list(range(start, stop, step))


def _list(text: str, flag: str) -> list[Any]:
    parts = [p.strip() for p in text.split(",")]
    if any(not p for p in parts):
        raise ConfigError(flag, "has an empty value; separate values with single commas")
    values = [parse_scalar(p) for p in parts]
    seen = set()
    for p, v in zip(parts, values):
        marker = repr(v)
        if marker in seen:
            raise ConfigError(flag, f"lists the value {p} twice")
        seen.add(marker)
    return values


def parse_grid(items: list[str], base: RunConfig, limits: Limits) -> list[Axis]:
    """Every ``--grid`` item, checked; a key may appear in one item only."""
    if not items:
        raise ConfigError("--grid", "give at least one, e.g. --grid optim.slo.boost=1,3,10 --grid seed=0:3")
    axes, keys = [], {}
    for item in items:
        axis = parse_axis(item, base, limits)
        if axis.key in keys:
            raise ConfigError(f"--grid {item}", f"{axis.key} is already varied by --grid {keys[axis.key]}")
        keys[axis.key] = item
        axes.append(axis)
    return axes


def grid_size(axes: list[Axis]) -> int:
    """How many runs the grid makes."""
    return prod(len(a.values) for a in axes)


def largest_item(axes: list[Axis]) -> str:
    """The ``--grid`` item with the most values (the one to blame for a huge grid)."""
    return max(axes, key=lambda a: len(a.values)).item


def combos(axes: list[Axis], base: RunConfig, limits: Limits) -> list[tuple[dict[str, Any], RunConfig]]:
    """Every combination as (key -> value, config), validated together (cross-key limits)."""
    out = []
    for values in itertools.product(*(a.values for a in axes)):
        cfg = copy.deepcopy(base)
        chosen = dict(zip((a.key for a in axes), values))
        for axis, value in zip(axes, values):
            set_dotted(cfg, axis.key, value)
        try:
            validate(cfg, limits)
        except ConfigError as err:
            where = ", ".join(f"{k}={v}" for k, v in chosen.items())
            raise ConfigError(f"--grid {axes[0].item}", f"the combination {where} is not valid: {err}") from None
        out.append((_resolved(chosen, cfg), cfg))
    return out


def _resolved(chosen: dict[str, Any], cfg: RunConfig) -> dict[str, Any]:
    """The chosen values as the config holds them (``seed=1.0`` is 1; a section key stays as given)."""
    flat = flat_items(cfg)
    return {k: flat.get(k, v) for k, v in chosen.items()}


def run_names(points: list[dict[str, Any]]) -> list[str]:
    """Readable, unique folder names, e.g. ``boost=3_seed=2`` (full dotted keys when last parts clash)."""
    keys = list(points[0]) if points else []
    shorts = [k.rsplit(".", 1)[-1] for k in keys]
    labels = [s if shorts.count(s) == 1 else k for s, k in zip(shorts, keys)]
    names = ["_".join(f"{label}={_safe(p[k])}" for label, k in zip(labels, keys)) for p in points]
    if len(set(names)) < len(names):
        width = len(str(len(names) - 1))
        names = [f"{i:0{width}d}_{n}" for i, n in enumerate(names)]
    return names


def _safe(value: Any) -> str:
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return _UNSAFE.sub("-", text).strip("-.")[:40] or "-"
