"""Data sets: synthetic targets with ground truth, scikit-learn's digits, user files.

Every data set is split into train and test, standardised with training statistics
(``data.standardize``: per feature, per channel or none), and carries a fixed
measurement subset of the training set (the points K and AGOP are averaged over; all
of them when ``measure.n_points`` is 0). Classification labels become one-hot vectors minus 1/c.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.config import ConfigError, RunConfig
from core.expr import parse_target
from core.iofiles import npz_members, read_bytes_bounded, read_npz, regular_file

MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_FILE_FEATURES = 4096
MAX_CLASSES = 50
MAX_UNPACKED_BYTES = 256 * 1024 * 1024
"""An NPZ's X and y may unpack to at most this many bytes (as float64)."""


@dataclass(frozen=True)
class Dataset:
    """Tensors on the CPU in the run's dtype; ``g_star`` is the ground-truth AGOP or None."""

    x_train: torch.Tensor  # (n_train, d)
    y_train: torch.Tensor  # (n_train, c)
    x_test: torch.Tensor  # (n_test, d)
    y_test: torch.Tensor  # (n_test, c)
    measure_index: torch.Tensor  # (n_points,) indices into the training set
    g_star: torch.Tensor | None  # (d, d)
    classes: int  # 0 for regression
    description: str

    @property
    def measures_all(self) -> bool:
        """True when the measurement set is the whole training set (``measure.n_points = 0``)."""
        return self.measure_index.shape[0] == self.x_train.shape[0] and bool(
            (self.measure_index == torch.arange(self.x_train.shape[0])).all())

    @property
    def x_measure(self) -> torch.Tensor:
        """The measurement inputs (the training tensor itself, no copy, when they are all of it)."""
        return self.x_train if self.measures_all else self.x_train[self.measure_index]

    @property
    def y_measure(self) -> torch.Tensor:
        return self.y_train if self.measures_all else self.y_train[self.measure_index]

    @property
    def d(self) -> int:
        return self.x_train.shape[1]

    @property
    def outputs(self) -> int:
        return self.y_train.shape[1]


def load_dataset(cfg: RunConfig) -> Dataset:
    """Builds the data set a config describes (deterministic in ``cfg.seed``)."""
    dtype = getattr(torch, cfg.dtype)
    kind = cfg.data.kind
    if kind == "synthetic":
        return _synthetic(cfg, dtype)
    if kind == "digits":
        x, y = digits_arrays()
        return _finite(cfg, x, y, dtype, "digits (scikit-learn, 8x8 images, 10 classes)")
    x, y = read_table(cfg.data.path, cfg.data.label_column)
    return _finite(cfg, x, y, dtype, f"file {Path(cfg.data.path).name}")


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits (1797 x 64 pixels, labels 0-9) read straight from its csv.gz.

    The same file and rows as ``sklearn.datasets.load_digits`` without importing scikit-learn
    (about 1 s at start-up); falls back to it if the file is not where it ships.
    """
    import gzip
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    if spec is None:
        raise ConfigError("data.kind", "digits needs scikit-learn installed (its bundled data file)")
    for root in spec.submodule_search_locations or ():
        path = Path(root) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            with gzip.open(path, "rt") as f:
                data = np.loadtxt(f, delimiter=",", dtype=np.float64)
            return data[:, :-1], data[:, -1]
    from sklearn.datasets import load_digits

    raw = load_digits()
    return raw.data.astype(np.float64), raw.target.astype(np.float64)


def _generator(seed: int, stream: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1009 + stream)


def _synthetic(cfg: RunConfig, dtype: torch.dtype) -> Dataset:
    dc = cfg.data
    target = parse_target(dc.target, dc.d)
    g = _generator(cfg.seed, 1)
    n = dc.n_train + dc.n_test
    x = torch.randn(n, dc.d, generator=g, dtype=torch.float64)
    y = target(x)
    if not torch.isfinite(y).all():
        raise ConfigError("data.target", "gives non-finite values on the inputs (log or sqrt of a negative number?)")
    if dc.noise > 0:
        y = y + dc.noise * torch.randn(n, generator=g, dtype=torch.float64)
    x_train, x_test = x[: dc.n_train], x[dc.n_train:]
    mean, std = standardization(x_train, dc.standardize)
    index = _measure_index(cfg, dc.n_train)
    check_range(y, dtype, "data.target")
    xs_train = (x_train - mean) / std
    g_star = ground_truth_agop(target, xs_train[index], mean, std)
    return Dataset(
        x_train=xs_train.to(dtype), y_train=y[: dc.n_train, None].to(dtype),
        x_test=((x_test - mean) / std).to(dtype), y_test=y[dc.n_train:, None].to(dtype),
        measure_index=index, g_star=g_star.to(dtype), classes=0,
        description=f"synthetic, d={dc.d}, y = {target.text}",
    )


def ground_truth_agop(target, x_std: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """G* = mean of grad f* grad f*^T, with the gradient taken w.r.t. the standardised input."""
    x = x_std.detach().to(torch.float64).clone().requires_grad_(True)
    y = target(x * std + mean)
    if not y.requires_grad:  # a constant target (``1``, ``sin(1)``): its gradient is 0, so G* = 0
        return torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64)
    (grad,) = torch.autograd.grad(y.sum(), x)  # (n, d)
    return grad.T @ grad / x.shape[0]


def check_range(values: torch.Tensor, dtype: torch.dtype, key: str, what: str = "the target values") -> None:
    """Refuses data that is not finite in the run's dtype, or whose squared error would overflow it.

    Such data makes the loss infinite at once; that is a data error naming ``key``, not a divergence.
    """
    limit = float(torch.finfo(dtype).max) ** 0.5 / 16  # (y - f)^2 summed over a batch stays finite
    v = values.to(torch.float64)
    finite = torch.isfinite(v)
    if not bool(finite.all()):
        raise ConfigError(key, f"{what} are not finite (NaN or Inf); check the data")
    peak = float(v.abs().max()) if v.numel() else 0.0
    if peak > limit:
        name = str(dtype).replace("torch.", "")
        raise ConfigError(key, f"{what} reach {peak:.3g}, too large for {name} (the squared error would overflow "
                               f"past {limit:.3g}); rescale the data" + ("" if dtype == torch.float64
                                                                          else " or set dtype to float64"))


def standardization(x: torch.Tensor, kind: str = "per_feature") -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) of the training inputs x (n, d), each of shape (d,); inputs become (x - mean) / std.

    ``per_feature``: each column's own mean and (unbiased) std; ``per_channel``: one mean and
    one std over every entry (the inputs here have one channel, as the authors' code computes
    per colour channel); ``none``: mean 0, std 1. A zero std becomes 1 (constant inputs stay 0).
    """
    d = x.shape[1]
    if kind == "none":
        return torch.zeros(d, dtype=x.dtype), torch.ones(d, dtype=x.dtype)
    if kind == "per_channel":
        mean, std = x.mean().expand(d).clone(), x.std().expand(d).clone()
    else:
        mean, std = x.mean(0), x.std(0)
    return mean, torch.where(std > 1e-12, std, torch.ones_like(std))


def _measure_index(cfg: RunConfig, n_train: int) -> torch.Tensor:
    """The measurement subset: ``n_points`` training points drawn once, or all of them when 0."""
    if cfg.measure.n_points == 0:
        return torch.arange(n_train)
    perm = torch.randperm(n_train, generator=_generator(cfg.seed, 2))
    return perm[: min(cfg.measure.n_points, n_train)].sort().values


def _finite(cfg: RunConfig, x: np.ndarray, y: np.ndarray, dtype: torch.dtype, desc: str) -> Dataset:
    """Splits, standardises and encodes a finite data set (digits or a file)."""
    n = x.shape[0]
    n_test = cfg.data.n_test if cfg.data.n_train + cfg.data.n_test <= n else min(cfg.data.n_test, n // 4)
    n_test = max(1, n_test)
    n_train = min(cfg.data.n_train, n - n_test)
    if n_train < 2:
        raise ConfigError("data.path", f"has {n} rows; at least 3 are needed")
    perm = torch.randperm(n, generator=_generator(cfg.seed, 3)).numpy()
    x_t = torch.from_numpy(x[perm]).to(torch.float64)
    y_enc, classes = _encode_labels(cfg, y[perm])
    x_train, x_test = x_t[:n_train], x_t[n_train:n_train + n_test]
    mean, std = standardization(x_train, cfg.data.standardize)
    bad = (~torch.isfinite(std)) | (~torch.isfinite(mean))
    if bool(bad.any()):
        j = int(torch.nonzero(bad)[0])
        raise ConfigError("data.path" if cfg.data.kind == "file" else "data.kind",
                          f"feature column {j + 1} has values too large to standardise (up to "
                          f"{float(x_train[:, j].abs().max()):.3g}); rescale the data")
    key = "data.path" if cfg.data.kind == "file" else "data.kind"
    check_range(y_enc, dtype, key, "the labels")
    check_range((x_t[:n_train + n_test] - mean) / std, dtype, key, "the standardised features")
    return Dataset(
        x_train=((x_train - mean) / std).to(dtype), y_train=y_enc[:n_train].to(dtype),
        x_test=((x_test - mean) / std).to(dtype), y_test=y_enc[n_train:n_train + n_test].to(dtype),
        measure_index=_measure_index(cfg, n_train), g_star=None, classes=classes,
        description=f"{desc}, {n_train} train / {n_test} test",
    )


def _encode_labels(cfg: RunConfig, y: np.ndarray) -> tuple[torch.Tensor, int]:
    if y.ndim == 2 and y.shape[1] > 1:
        if cfg.data.task == "classification":
            raise ConfigError("data.task", "classification needs one label per row, not a matrix")
        return torch.from_numpy(y).to(torch.float64), 0
    y = y.reshape(-1)
    is_int = bool(np.all(np.mod(y, 1) == 0))
    values = np.unique(y)
    task = cfg.data.task
    if task == "auto":
        task = "classification" if is_int and len(values) <= MAX_CLASSES else "regression"
    if task == "regression":
        return torch.from_numpy(y[:, None]).to(torch.float64), 0
    if len(values) > MAX_CLASSES:
        raise ConfigError("data.task", f"classification allows at most {MAX_CLASSES} classes; the labels have {len(values)}")
    if len(values) < 2:
        key = "data.path" if cfg.data.kind == "file" else "data"
        raise ConfigError(key, f"every label is {values[0]:g}: a single class; classification needs at least 2 "
                               "(or set data.task to regression)")
    codes = np.searchsorted(values, y)
    c = len(values)
    onehot = np.eye(c)[codes] - 1.0 / c
    return torch.from_numpy(onehot), c


# -- user files ------------------------------------------------------------------------

def read_table(path: str, label_column: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Reads a user's CSV or NPZ into float arrays (X (n, d), y (n,) or (n, c)); raises ConfigError."""
    p = Path(path)
    size = regular_file(p, "data.path", MAX_FILE_BYTES, "data file")  # no FIFO, device or folder
    if size == 0:
        raise ConfigError("data.path", "the file is empty")
    suffix = p.suffix.lower()
    if suffix == ".npz":
        x, y = _read_npz(p)
    elif suffix in (".csv", ".txt"):
        x, y = _read_csv(p, label_column)
    else:
        raise ConfigError("data.path", f"must be a .csv or .npz file; got {p.suffix or 'no extension'!r}")
    return _check_table(x, y)


def check_npz_headers(p: Path, key: str = "data.path") -> None:
    """Refuses, from the zip and .npy headers alone, an NPZ whose X or y is not a loadable table.

    Shapes, dtypes and unpacked sizes are checked before anything is decompressed, so a
    small file that would unpack to gigabytes (a zip bomb) costs nothing.
    """
    with open(p, "rb") as f:
        if f.read(6) == b"\x93NUMPY":
            raise ConfigError(key, "is a single .npy array, not an NPZ with arrays 'X' and 'y' (numpy.savez)")
    try:
        members = npz_members(p, key)
    except ConfigError as err:
        if "Python objects" in str(err):
            raise ConfigError(key, "object arrays are not allowed (no pickles)") from None
        raise
    missing = [k for k in ("X", "y") if k not in members]
    if missing:
        raise ConfigError(key, f"the NPZ needs arrays 'X' and 'y'; it has {', '.join(members) or 'none'}"[:300])
    (xs, xd), (ys, yd) = members["X"], members["y"]
    if xd.kind not in "biuf" or yd.kind not in "biuf":
        raise ConfigError(key, f"arrays must be numeric; X is {xd}, y is {yd}")
    if len(xs) != 2:
        raise ConfigError(key, f"X must be 2-D (rows, features); its shape is {xs}")
    if xs[1] > MAX_FILE_FEATURES:
        raise ConfigError(key, f"has {xs[1]} feature columns; allowed 1..{MAX_FILE_FEATURES}")
    unpacked = 8 * (int(np.prod(xs)) + int(np.prod(ys)))  # as float64
    if unpacked > MAX_UNPACKED_BYTES:
        raise ConfigError(key, f"X and y unpack to {unpacked / 2**20:.0f} MiB as float64; "
                               f"at most {MAX_UNPACKED_BYTES // 2**20} MiB")


def _read_npz(p: Path) -> tuple[np.ndarray, np.ndarray]:
    check_npz_headers(p)
    arrays = read_npz(p, "data.path", MAX_UNPACKED_BYTES)
    x, y = arrays["X"], arrays["y"]
    if x.dtype.kind not in "biuf" or y.dtype.kind not in "biuf":
        raise ConfigError("data.path", f"arrays must be numeric; X is {x.dtype}, y is {y.dtype}")
    if x.ndim != 2:
        raise ConfigError("data.path", f"X must be 2-D (rows, features); its shape is {x.shape}")
    if y.ndim not in (1, 2) or y.shape[0] != x.shape[0]:
        raise ConfigError("data.path", f"y must have one row per row of X; shapes are {x.shape} and {y.shape}")
    return x.astype(np.float64), y.astype(np.float64)


def _read_csv(p: Path, label_column: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        text = read_bytes_bounded(p, "data.path", MAX_FILE_BYTES, "data file").decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError("data.path", "the CSV is not UTF-8 text") from None
    rows = [r for r in csv.reader(io.StringIO(text)) if r and any(c.strip() for c in r)]
    if not rows:
        raise ConfigError("data.path", "the CSV has no rows")
    header = None
    if not all(_is_number(c) for c in rows[0]):
        header, rows = [c.strip() for c in rows[0]], rows[1:]
    if not rows:
        raise ConfigError("data.path", "the CSV has a header but no data rows")
    width = len(header) if header else len(rows[0])
    for i, r in enumerate(rows):
        if len(r) != width:
            line = i + (2 if header else 1)
            raise ConfigError("data.path", f"ragged CSV: line {line} has {len(r)} cells, expected {width}")
    if width < 2:
        raise ConfigError("data.path", "the CSV needs at least one feature column and a label column")
    col = _label_index(label_column, header, width)
    table = np.empty((len(rows), width))
    for i, r in enumerate(rows):
        for j, cell in enumerate(r):
            try:
                table[i, j] = float(cell)
            except ValueError:
                line = i + (2 if header else 1)
                raise ConfigError("data.path", f"non-numeric cell {cell.strip()[:20]!r} at line {line}, column {j + 1}") from None
    return np.delete(table, col, axis=1), table[:, col]


def _is_number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def _label_index(label_column: str, header: list[str] | None, width: int) -> int:
    if label_column == "":
        return width - 1
    if header and label_column in header:
        return header.index(label_column)
    try:
        index = int(label_column)
    except ValueError:
        names = ", ".join(header) if header else "the CSV has no header"
        raise ConfigError("data.label_column", f"no column {label_column!r}; columns: {names}"[:300]) from None
    if not -width <= index < width:
        raise ConfigError("data.label_column", f"index {index} is outside 0..{width - 1}")
    return index % width


def _check_table(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if x.shape[0] < 3:
        raise ConfigError("data.path", f"has {x.shape[0]} rows; at least 3 are needed")
    if x.shape[1] < 1 or x.shape[1] > MAX_FILE_FEATURES:
        raise ConfigError("data.path", f"has {x.shape[1]} feature columns; allowed 1..{MAX_FILE_FEATURES}")
    for name, arr in (("X", x), ("y", y)):
        bad = ~np.isfinite(arr)
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise ConfigError("data.path", f"{name} has NaN or Inf (first in row {row + 1})")
    return x, y
