"""The engine: owns data, model, optimiser and history; advances and measures a run.

Front ends call ``step(n)``, change settings with ``configure(cfg)``, and render
``snapshot()``, a frozen view of detached CPU numpy arrays. All public methods hold one
lock, so one UI thread and one training thread can share an engine.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.nn import functional as F

from core import optim as optim_lib
from core.config import RunConfig, flat_items
from core.data import Dataset, load_dataset
from core.diagnostics import LayerStats, init_gram, measure_with_outputs
from core.history import History
from core.model import MLP

LIVE_PREFIXES = ("optim.", "measure.every", "measure.correlation", "measure.alpha", "steps")
"""Config keys that apply mid-run; every other change needs a reset (a new network)."""

LARGE_LABELS = 1e6
"""A divergence with labels above this names the data first (``data.target`` / ``data.path``)."""
RUNNING, DIVERGED, DEAD = "running", "diverged", "dead"
"""Run states: a run that is not RUNNING has stopped for good (until reset)."""


@dataclass(frozen=True)
class Snapshot:
    """What a front end renders: the run's state at ``step``, layers as of ``measured_step``."""

    step: int
    measured_step: int
    status: str
    message: str
    train_loss: float
    test_loss: float
    test_accuracy: float | None
    layers: tuple[LayerStats, ...]
    g_star: np.ndarray | None
    optimizer: str
    config: RunConfig
    history: History = field(repr=False)
    out_weight: np.ndarray = field(repr=False, default=None)
    data_description: str = ""
    biases: tuple[np.ndarray, ...] = field(repr=False, default=())
    """b_1..b_L and the output layer's bias (float64) when the model has biases, else ()."""

    @property
    def diverged(self) -> bool:
        return self.status == DIVERGED

    @property
    def stopped(self) -> bool:
        """True when the run cannot go on: it diverged, or a whole layer's units died."""
        return self.status != RUNNING

    def layer(self, index: int) -> LayerStats:
        """Hidden layer ``index`` (1-based)."""
        return self.layers[index - 1]


def resolve_device(name: str) -> torch.device:
    """``auto`` means CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        from core.config import ConfigError

        raise ConfigError("device", "cuda was asked for but no CUDA device is available; use auto or cpu")
    return torch.device(name)


def describe_optimizer(cfg: RunConfig) -> str:
    o = cfg.optim
    if o.slo.enabled:
        return f"SLO on (layer {o.slo.target_layer}, boost {o.slo.boost:g}, speed {o.slo.speed:g})"
    extra = f", momentum {o.momentum:g}" if o.name == "sgd" and o.momentum else ""
    return f"{o.name} lr {o.lr:g}{extra}, SLO off"


def needs_reset(old: RunConfig, new: RunConfig) -> list[str]:
    """Dotted keys whose change only takes effect on reset."""
    a, b = flat_items(old), flat_items(new)
    return [k for k in a if a[k] != b[k] and not k.startswith(LIVE_PREFIXES)]


class Engine:
    """A training run that can be stepped, measured, reconfigured, saved and resumed."""

    def __init__(self, config: RunConfig, dataset: Dataset | None = None):
        self._lock = threading.RLock()
        self.config = copy.deepcopy(config)
        self.device = resolve_device(config.device)
        self.dtype = getattr(torch, config.dtype)
        self._dataset = dataset or load_dataset(self.config)
        self._place_data()
        self._init_run()

    # -- setup ---------------------------------------------------------------------

    def _place_data(self) -> None:
        ds, dev = self._dataset, self.device
        self._x, self._y = ds.x_train.to(dev), ds.y_train.to(dev)
        self._x_test, self._y_test = ds.x_test.to(dev), ds.y_test.to(dev)
        self._x_measure, self._y_measure = ds.x_measure.to(dev), ds.y_measure.to(dev)
        rest = torch.ones(ds.x_train.shape[0], dtype=torch.bool)
        rest[ds.measure_index] = False  # the training points outside the measurement set
        self._x_rest, self._y_rest = ds.x_train[rest].to(dev), ds.y_train[rest].to(dev)
        self._g_star = ds.g_star

    def _init_run(self) -> None:
        cfg = self.config
        gen = torch.Generator().manual_seed(cfg.seed * 1009 + 4)
        self.model = MLP(self._dataset.d, self._dataset.outputs, cfg.model, gen, self.dtype).to(self.device)
        self._w0 = [w.detach().clone() for w in self.model.weights()]
        self._params0 = [p.detach().clone() for p in self.model.parameters()]
        self._optimizer = optim_lib.build_optimizer(self.model.layers, cfg.optim)
        self._optim_kind = optim_lib.kind_of(cfg.optim)
        self._step = 0
        self._sample_pos = 0
        self._step_norms: tuple[int, tuple[float, ...]] | None = None
        self._perm_cache: tuple[int, torch.Tensor] | None = None
        self._status, self._message = RUNNING, ""
        self._history = History()
        self._last: Snapshot | None = None
        self._measure(record=True)

    @property
    def dataset(self) -> Dataset:
        return self._dataset

    @property
    def step_count(self) -> int:
        return self._step

    @property
    def status(self) -> str:
        return self._status

    @property
    def history(self) -> History:
        return self._history

    def reset(self, config: RunConfig | None = None) -> Snapshot:
        """Starts over at step 0 (with a new config, if given); same seed gives the same start.

        A config whose data cannot be loaded raises ConfigError and leaves the run as it was.
        """
        with self._lock:
            if config is not None:
                self._switch_config(config)
            self._init_run()
            return self._last

    def _switch_config(self, config: RunConfig) -> None:
        reload = needs_reset(self.config, config)
        device_changed = config.device != self.config.device or config.dtype != self.config.dtype
        data_changed = any(k.startswith(("data.", "seed", "dtype", "measure.n_points")) for k in reload)
        device = resolve_device(config.device) if device_changed else self.device
        dataset = load_dataset(config) if data_changed else self._dataset
        self.config, self.device, self.dtype = copy.deepcopy(config), device, getattr(torch, config.dtype)
        self._dataset = dataset
        if data_changed or device_changed:
            self._place_data()

    def configure(self, config: RunConfig) -> list[str]:
        """Applies the live settings of ``config`` now; returns the keys that wait for reset()."""
        with self._lock:
            pending = needs_reset(self.config, config)
            live = copy.deepcopy(config)
            for section in ("data", "model"):
                setattr(live, section, copy.deepcopy(getattr(self.config, section)))
            live.seed, live.device, live.dtype = self.config.seed, self.config.device, self.config.dtype
            live.measure.n_points = self.config.measure.n_points
            self.config = live
            self._apply_optim()
            return pending

    def _apply_optim(self) -> None:
        kind = optim_lib.kind_of(self.config.optim)
        if kind != self._optim_kind:
            self._optimizer = optim_lib.build_optimizer(self.model.layers, self.config.optim)
            self._optim_kind = kind
        else:
            optim_lib.apply_settings(self._optimizer, self.config.optim)

    # -- training ------------------------------------------------------------------

    def _batch_indices(self) -> torch.Tensor:
        """The next minibatch: epochs are seeded permutations; a batch never spans two epochs."""
        n = self._x.shape[0]
        epoch, offset = divmod(self._sample_pos, n)
        if self._perm_cache is None or self._perm_cache[0] != epoch:
            gen = torch.Generator().manual_seed(self.config.seed * 1_000_003 + epoch)
            self._perm_cache = (epoch, torch.randperm(n, generator=gen).to(self.device))
        size = min(self.config.optim.batch_size, n - offset)
        self._sample_pos += size
        return self._perm_cache[1][offset:offset + size]

    def _train_step(self, last: bool = False) -> torch.Tensor:
        """One minibatch step (a plain SGD warm-up step while ``step < optim.warmup_steps``).

        When a measurement may follow (``last`` or the schedule says so), each hidden layer's
        step norm ||W_after - W_before||_F is kept for it.
        """
        idx = self._batch_indices()
        o = self.config.optim
        record = last or self._measure_due(self._step + 1)
        before = [w.detach().clone() for w in self.model.weights()] if record else None
        self._optimizer.zero_grad(set_to_none=True)
        loss = F.mse_loss(self.model(self._x[idx]), self._y[idx])
        loss.backward()
        if self._step < o.warmup_steps:
            optim_lib.warmup_step(self.model.parameters(), o.warmup_lr, o.weight_decay)
        else:
            self._optimizer.step()
        self._step += 1
        if before is not None:
            with torch.no_grad():
                norms = tuple(float(torch.linalg.matrix_norm(w - b)) for w, b in zip(self.model.weights(), before))
            self._step_norms = (self._step, norms)
        return loss

    def _measure_due(self, step: int) -> bool:
        """Whether the schedule measures after ``step`` (the step being taken now, or the last one).

        The end of the warm-up is always measured, as the authors' code measures after its
        warm-up epoch whatever its cadence: that is the paper code's first (early) point.
        """
        m, warmup = self.config.measure, self.config.optim.warmup_steps
        if warmup and step == warmup:
            return True
        if m.every_epochs:
            n = self._x.shape[0]
            return self._sample_pos % n == 0 and (self._sample_pos // n) % m.every_epochs == 0
        return step % m.every == 0

    def steps_to_next_measure(self) -> int:
        """Steps from now to the next scheduled measurement (``measure.every`` or ``every_epochs``)."""
        with self._lock:
            warmup = self.config.optim.warmup_steps
            steps = self._scheduled_steps_to_next()
            return min(steps, warmup - self._step) if self._step < warmup else steps

    def _scheduled_steps_to_next(self) -> int:
        m = self.config.measure
        if not m.every_epochs:
            return m.every - self._step % m.every
        n, b = self._x.shape[0], min(self.config.optim.batch_size, self._x.shape[0])
        done, offset = divmod(self._sample_pos, n)
        target = -(-(done + 1) // m.every_epochs) * m.every_epochs
        return -(-(n - offset) // b) + (target - done - 1) * -(-n // b)

    def step(self, n: int = 1, should_stop: Callable[[], bool] | None = None) -> int:
        """Trains up to ``n`` steps (measuring every ``measure.every``); returns the steps done.

        Stops early when the run diverges or ``should_stop()`` turns true.
        """
        done = 0
        with self._lock:
            model = self.model
            model.train()
            while done < n and self._status == RUNNING:
                if should_stop is not None and should_stop():
                    break
                loss = self._train_step(last=done == n - 1)
                done += 1
                if not torch.isfinite(loss):
                    self._diverge(f"the training loss is {float(loss.detach())}")
                elif self._measure_due(self._step):
                    self._measure(record=True)
        return done

    def _diverge(self, why: str) -> None:
        self._status = DIVERGED
        o = self.config.optim
        hint = (f"lower optim.slo.speed (now {o.slo.speed:g}) or optim.slo.boost" if o.slo.enabled
                else f"lower optim.lr (now {o.lr:g})")
        peak = float(self._y.abs().max()) if self._y.numel() else 0.0
        if peak > LARGE_LABELS:  # huge labels make huge gradients: the data is the first suspect
            key = "data.path" if self.config.data.kind == "file" else "data.target"
            hint = f"the labels reach {peak:.3g}: rescale {key}, or {hint}"
        self._message = f"diverged at step {self._step}: {why}; {hint} and reset"
        if self._last is not None:
            self._last = _replace(self._last, step=self._step, status=DIVERGED, message=self._message)

    def _check_dead(self, layers: list[LayerStats]) -> None:
        """A layer whose K is exactly 0 has no live unit on any measured point: the run stops as ``dead``."""
        dead = [s.layer for s in layers if not np.any(s.K)]
        if self._status != RUNNING or not dead:
            return
        layer = max(dead)  # K of every layer below a dead one is 0 too: the top one is the cause
        o = self.config.optim
        hint = (f"lower optim.slo.speed (now {o.slo.speed:g})" if o.slo.enabled
                else f"lower optim.lr (now {o.lr:g})")
        self._status = DEAD
        self._message = (f"dead at step {self._step}: every unit of layer {layer} is inactive on every measured "
                         f"point (K = 0), so no gradient reaches it; {hint} and reset")

    def run(self, steps: int | None = None, on_measure: Callable[[Snapshot], None] | None = None,
            should_stop: Callable[[], bool] | None = None) -> Snapshot:
        """Trains ``steps`` (default ``config.steps``) and measures the last step."""
        total = self.config.steps if steps is None else steps
        target = self._step + total
        while self._step < target and self._status == RUNNING:
            if should_stop is not None and should_stop():
                break
            chunk = min(self.steps_to_next_measure(), target - self._step)
            self.step(chunk)
            if on_measure is not None:
                on_measure(self.snapshot())
        return self.snapshot()

    # -- measuring -----------------------------------------------------------------

    def _losses_apart(self) -> tuple[torch.Tensor, float, float | None]:
        """The training loss's sum of squares over the points outside the measurement set, the test
        loss and accuracy: everything but the measured points, whose outputs the K sweep gives."""
        model = self.model
        with torch.no_grad():
            rest = F.mse_loss(model(self._x_rest), self._y_rest, reduction="sum") if len(self._x_rest) else None
            out = model(self._x_test)
            test = float(F.mse_loss(out, self._y_test))
            acc = None
            if self._dataset.classes:
                acc = float((out.argmax(1) == self._y_test.argmax(1)).to(torch.float64).mean())
        rest = torch.zeros((), dtype=torch.float64) if rest is None else rest.to(torch.float64)
        return rest, test, acc

    def _train_loss(self, rest: torch.Tensor, measured_outputs: torch.Tensor) -> float:
        """The mean squared error over every training point, from the two parts' sums of squares."""
        with torch.no_grad():
            measured = F.mse_loss(measured_outputs, self._y_measure, reduction="sum").to(torch.float64)
        return float((rest.to(measured.device) + measured) / self._y.numel())

    def _weights_finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for p in self.model.parameters())

    def _measure(self, record: bool) -> Snapshot:
        if not self._weights_finite():
            self._diverge("a weight became non-finite")
            return self._last
        cfg = self.config
        was_training = self.model.training
        self.model.train(False)
        rest, test, acc = self._losses_apart()
        if not (torch.isfinite(rest) and np.isfinite(test)):  # diverged before the sweep runs
            self.model.train(was_training)
            self._diverge(f"the loss is {float(rest) if not torch.isfinite(rest) else test}")
            if self._last is not None:
                return self._last
        measured, outputs = measure_with_outputs(self.model, self._w0, self._x_measure, cfg.measure.correlation,
                                                 cfg.measure.alpha, self._g_star, detailed=self._detail_due(),
                                                 init_grams=self._init_grams())
        train = self._train_loss(rest, outputs)
        self.model.train(was_training)
        if not np.isfinite(train) and self._status != DIVERGED:
            self._diverge(f"the loss is {train}")
            if self._last is not None:
                return self._last
        layers = self._with_step_norms(measured)
        if record and self._history.last_step != self._step:
            self._history = self._history.extend(self._rows(layers, train, test, acc))
        self._check_dead(layers)
        self._last = Snapshot(
            step=self._step, measured_step=self._step, status=self._status, message=self._message,
            train_loss=train, test_loss=test, test_accuracy=acc, layers=tuple(layers),
            g_star=None if self._g_star is None else self._g_star.to(torch.float64).cpu().numpy(),
            optimizer=describe_optimizer(cfg), config=copy.deepcopy(cfg), history=self._history,
            out_weight=self.model.out.weight.detach().to(torch.float64).cpu().numpy(),
            data_description=self._dataset.description, biases=self._biases(),
        )
        return self._last

    def _detail_due(self) -> bool:
        """Whether this measurement computes the SEs and diag_share (``measure.detail_every``).

        Counted in measurements already recorded, so a resumed run picks the same ones; step 0,
        the end of the warm-up and the configured last step always do.
        """
        every = self.config.measure.detail_every
        index = len(self._history) // max(1, self.config.model.depth)
        return (every <= 1 or index % every == 0 or self._step in (0, self.config.steps)
                or self._step == self.config.optim.warmup_steps)

    def _init_grams(self) -> list[torch.Tensor]:
        """W0^T W0 per layer (float64), kept while ``_w0`` is the same list."""
        cached = getattr(self, "_init_gram_cache", None)
        if cached is None or cached[0] is not self._w0:
            cached = (self._w0, [init_gram(w0) for w0 in self._w0])
            self._init_gram_cache = cached
        return cached[1]

    def _with_step_norms(self, layers: list[LayerStats]) -> list[LayerStats]:
        """Layers with ``step_norm`` set when the last step's norms were kept (None at step 0)."""
        if self._step_norms is None or self._step_norms[0] != self._step or self._step == 0:
            return layers
        return [s.replaced(step_norm=v) for s, v in zip(layers, self._step_norms[1])]  # keeps the prefetched SVDs

    def _biases(self) -> tuple[np.ndarray, ...]:
        if self.model.out.bias is None:
            return ()
        return tuple(layer.bias.detach().to(torch.float64).cpu().numpy() for layer in self.model.layers)

    def _rows(self, layers: list[LayerStats], train: float, test: float, acc: float | None) -> list[dict]:
        m = self.config.measure
        common = {"step": self._step, "train_loss": train, "test_loss": test, "test_accuracy": acc,
                  "correlation": m.correlation, "alpha": m.alpha}
        return [{"layer": s.layer, **common, **s.scalars()} for s in layers]

    def measure(self) -> Snapshot:
        """Measures now (recorded in the history) and returns the snapshot."""
        with self._lock:
            if self._status != RUNNING:
                return self._last
            return self._measure(record=True)

    def snapshot(self) -> Snapshot:
        """The current snapshot, measuring first if the last measurement is older than this step."""
        with self._lock:
            last = self._last
            if self._status == RUNNING and (last.measured_step != self._step
                                            or last.config.measure != self.config.measure
                                            or last.config.optim != self.config.optim):
                return self._measure(record=True)
            return last

    # -- persistence ---------------------------------------------------------------

    def save(self, folder: Path | str, figures: bool = False, measure: bool = True) -> Path:
        """Writes config.json, metrics.csv, final.npz and state.npz (all atomic).

        ``measure=False`` saves a checkpoint without measuring the current step first.
        """
        from core import persist

        with self._lock:
            return persist.save_engine(self, Path(folder), figures=figures, measure=measure)

    @classmethod
    def load(cls, folder: Path | str, dataset: Dataset | None = None) -> "Engine":
        """Reopens a saved run; stepping it continues bit-for-bit on CPU."""
        from core import persist

        return persist.load_engine(cls, Path(folder), dataset)


def _replace(snap: Snapshot, **changes) -> Snapshot:
    import dataclasses

    return dataclasses.replace(snap, **changes)
