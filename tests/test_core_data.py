"""core.data: user files (every bad input is a one-line ConfigError), labels, standardisation, G*."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core import data
from core.config import ConfigError, RunConfig
from core.engine import Engine
from core.iofiles import read_npz


def _file_cfg(path, **data_over) -> RunConfig:
    d = {"kind": "file", "path": str(path), "n_train": 1000, "n_test": 1000}
    d.update(data_over)
    return RunConfig.from_dict({"data": d, "model": {"depth": 1, "width": 4}, "measure": {"n_points": 10},
                                "device": "cpu", "dtype": "float64"})


def _refused(path, match: str, label_column: str = "") -> ConfigError:
    with pytest.raises(ConfigError) as info:
        data.read_table(str(path), label_column)
    err = info.value
    assert "\n" not in str(err)
    assert err.key in ("data.path", "data.label_column")
    assert match in str(err), str(err)
    return err


def _write(tmp_path, name: str, text: str):
    p = tmp_path / name
    p.write_text(text)
    return p


# -- CSV --------------------------------------------------------------------------------

def test_csv_good_file_reads(tmp_path):
    p = _write(tmp_path, "ok.csv", "a,b,y\n1,2,3\n4,5,6\n7,8,9\n")
    x, y = data.read_table(str(p))
    np.testing.assert_array_equal(x, [[1, 2], [4, 5], [7, 8]])
    np.testing.assert_array_equal(y, [3, 6, 9])


@pytest.mark.parametrize("text,match", [
    ("a,b,y\n1,2,3\n4,5\n7,8,9\n", "ragged CSV: line 3"),
    ("1,2,3\n4,5,6,7\n1,1,1\n", "ragged CSV: line 2"),
    ("a,b,y\n1,2,3\n4,five,6\n7,8,9\n", "non-numeric cell 'five' at line 3, column 2"),
    ("a,b,y\n", "header but no data rows"),
    ("\n\n  \n", "no rows"),
    ("a,b,y\n1,2,3\nnan,5,6\n7,8,9\n", "X has NaN or Inf (first in row 2)"),
    ("a,b,y\n1,2,3\n4,5,6\n7,8,inf\n", "y has NaN or Inf (first in row 3)"),
    ("a,b,y\n1,2,3\n4,5,6\n", "has 2 rows; at least 3"),
    ("y\n1\n2\n3\n", "at least one feature column"),
])
def test_csv_bad_inputs(tmp_path, text, match):
    _refused(_write(tmp_path, "bad.csv", text), match)


def test_csv_empty_file(tmp_path):
    _refused(_write(tmp_path, "empty.csv", ""), "empty")


def test_csv_not_utf8(tmp_path):
    p = tmp_path / "latin.csv"
    p.write_bytes(b"a,b\xff,y\n1,2,3\n")
    _refused(p, "not UTF-8")


def test_oversized_file(tmp_path, monkeypatch):
    p = _write(tmp_path, "big.csv", "a,b,y\n" + "1,2,3\n" * 50)
    data.read_table(str(p))  # fine under the real cap
    monkeypatch.setattr(data, "MAX_FILE_BYTES", 100)
    _refused(p, "MiB")


@pytest.mark.parametrize("name", ["table.xlsx", "table.json", "table"])
def test_wrong_extension(tmp_path, name):
    _refused(_write(tmp_path, name, "a,b,y\n1,2,3\n4,5,6\n7,8,9\n"), "must be a .csv or .npz")


def test_missing_file(tmp_path):
    _refused(tmp_path / "nope.csv", "no such file")
    _refused(tmp_path, "is a folder, not a data file")  # a folder is not a file, and is not called missing


def test_label_column_by_name_and_index(tmp_path):
    p = _write(tmp_path, "t.csv", "a,b,label,c\n1,2,10,3\n4,5,20,6\n7,8,30,9\n")
    by_name = data.read_table(str(p), "label")
    by_index = data.read_table(str(p), "2")
    by_negative = data.read_table(str(p), "-2")
    for x, y in (by_name, by_index, by_negative):
        np.testing.assert_array_equal(y, [10, 20, 30])
        np.testing.assert_array_equal(x, [[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    x_last, y_last = data.read_table(str(p))
    np.testing.assert_array_equal(y_last, [3, 6, 9])
    err = _refused(p, "no column 'nope'", "nope")
    assert err.key == "data.label_column"
    assert _refused(p, "outside 0..3", "7").key == "data.label_column"


def test_label_column_index_without_header(tmp_path):
    p = _write(tmp_path, "t.csv", "1,10,2\n3,20,4\n5,30,6\n")
    x, y = data.read_table(str(p), "1")
    np.testing.assert_array_equal(y, [10, 20, 30])
    np.testing.assert_array_equal(x, [[1, 2], [3, 4], [5, 6]])


# -- NPZ --------------------------------------------------------------------------------

def test_npz_good_file(tmp_path):
    p = tmp_path / "ok.npz"
    np.savez(p, X=np.arange(12.0).reshape(4, 3), y=np.arange(4))
    x, y = data.read_table(str(p))
    assert x.shape == (4, 3) and y.shape == (4,) and x.dtype == np.float64


@pytest.mark.parametrize("arrays,match", [
    ({"X": np.ones((4, 2))}, "needs arrays 'X' and 'y'"),
    ({"data": np.ones((4, 2)), "labels": np.ones(4)}, "needs arrays 'X' and 'y'"),
    ({"X": np.ones(4), "y": np.ones(4)}, "X must be 2-D"),
    ({"X": np.ones((4, 2, 2)), "y": np.ones(4)}, "X must be 2-D"),
    ({"X": np.ones((4, 2)), "y": np.ones(5)}, "one row per row of X"),
    ({"X": np.ones((4, 2)), "y": np.ones((4, 1, 1))}, "one row per row of X"),
    ({"X": np.array([["a", "b"]] * 4), "y": np.ones(4)}, "must be numeric"),
    ({"X": np.ones((4, 2)) * 1j, "y": np.ones(4)}, "must be numeric"),
    ({"X": np.array([[1.0, np.nan]] * 4), "y": np.ones(4)}, "NaN or Inf"),
    ({"X": np.ones((4, 0)), "y": np.ones(4)}, "feature columns"),
])
def test_npz_bad_arrays(tmp_path, arrays, match):
    p = tmp_path / "bad.npz"
    np.savez(p, **arrays)
    _refused(p, match)


UNPICKLED: list[str] = []


def _record_unpickle(tag):
    UNPICKLED.append(tag)
    return tag


class _Trap:
    """Unpickling an instance calls _record_unpickle: proof that a reader unpickled."""

    def __reduce__(self):
        return (_record_unpickle, ("unpickled!",))


def test_npz_object_arrays_are_refused_without_unpickling(tmp_path):
    p = tmp_path / "evil.npz"
    trap = np.empty(4, dtype=object)
    trap[:] = [_Trap() for _ in range(4)]
    np.savez(p, X=trap, y=np.ones(4), allow_pickle=True)
    UNPICKLED.clear()
    _refused(p, "object arrays are not allowed")
    with pytest.raises(ValueError):
        read_npz(p)
    assert UNPICKLED == []
    # the trap works: a reader that does unpickle is caught by it
    with np.load(p, allow_pickle=True) as npz:
        npz["X"]
    assert UNPICKLED


@pytest.mark.parametrize("content", [b"PK\x03\x04 not really a zip", b"\x00" * 64, b"just text"])
def test_npz_unreadable(tmp_path, content):
    p = tmp_path / "broken.npz"
    p.write_bytes(content)
    _refused(p, "")


def test_npz_that_is_really_a_npy_file(tmp_path):
    """An .npy saved under a .npz name is a user error, not a traceback."""
    p = tmp_path / "wrong.npz"
    with open(p, "wb") as f:
        np.save(f, np.ones((5, 3)))
    _refused(p, "")


# -- labels, splits, standardisation ---------------------------------------------------------

def _csv_with_labels(tmp_path, labels, d=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(len(labels), d)) * [1.0, 5.0, 0.2][:d] + [3.0, -2.0, 10.0][:d]
    lines = [",".join([f"f{j}" for j in range(d)] + ["label"])]
    lines += [",".join([repr(float(v)) for v in row] + [str(lab)]) for row, lab in zip(x, labels)]
    p = tmp_path / "t.csv"
    p.write_text("\n".join(lines) + "\n")
    return p, x


def test_classification_is_detected_and_one_hot_minus_one_over_c(tmp_path):
    labels = [2, 5, 7] * 20
    p, _ = _csv_with_labels(tmp_path, labels)
    ds = data.load_dataset(_file_cfg(p))
    assert ds.classes == 3 and ds.outputs == 3
    y = torch.cat([ds.y_train, ds.y_test]).numpy()
    assert set(np.round(y.ravel(), 12)) == {round(1 - 1 / 3, 12), round(-1 / 3, 12)}
    np.testing.assert_allclose(y.sum(1), 0, atol=1e-12)  # one hot (sum 1) minus 3 * 1/3
    assert np.all((y > 0).sum(1) == 1)
    counts = (y > 0).sum(0)
    assert counts.sum() == 60 and np.all(counts == 20)  # every class present in train+test
    snap = Engine(_file_cfg(p)).snapshot()
    assert snap.test_accuracy is not None and snap.g_star is None and snap.layer(1).feature_quality is None


def test_regression_for_float_labels_and_forced_task(tmp_path):
    p, _ = _csv_with_labels(tmp_path, [0.5, 1.25, 2.0] * 10)
    ds = data.load_dataset(_file_cfg(p))
    assert ds.classes == 0 and ds.outputs == 1
    p2, _ = _csv_with_labels(tmp_path, [0, 1, 2] * 10)
    assert data.load_dataset(_file_cfg(p2)).classes == 3
    assert data.load_dataset(_file_cfg(p2, task="regression")).classes == 0
    many = list(range(60))  # more than 50 distinct integers: regression under auto
    p3, _ = _csv_with_labels(tmp_path, many)
    assert data.load_dataset(_file_cfg(p3)).classes == 0
    with pytest.raises(ConfigError) as info:
        data.load_dataset(_file_cfg(p3, task="classification"))
    assert info.value.key == "data.task"


def test_standardised_with_training_statistics(tmp_path):
    p, raw = _csv_with_labels(tmp_path, [0.1 * i for i in range(40)])
    ds = data.load_dataset(_file_cfg(p, n_train=30, n_test=10))
    xtr, xte = ds.x_train.numpy(), ds.x_test.numpy()
    assert xtr.shape == (30, 3) and xte.shape == (10, 3)
    np.testing.assert_allclose(xtr.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(xtr.std(0, ddof=1), 1, atol=1e-12)
    assert np.abs(xte.mean(0)).max() > 1e-3  # the test set is not standardised on its own stats
    # one affine map per column (fitted on train) carries every raw value to its standardised one
    both = np.concatenate([xtr, xte])
    for j in range(3):
        a, b = np.polyfit(np.sort(raw[:, j]), np.sort(both[:, j]), 1)
        np.testing.assert_allclose(a * np.sort(raw[:, j]) + b, np.sort(both[:, j]), atol=1e-9)
        train_raw = (xtr[:, j] - b) / a
        assert a == pytest.approx(1 / train_raw.std(ddof=1), rel=1e-9)


def test_short_file_split(tmp_path):
    p, _ = _csv_with_labels(tmp_path, [0.5 * i for i in range(12)])
    ds = data.load_dataset(_file_cfg(p))  # n_train + n_test > 12: a quarter goes to test
    assert ds.x_test.shape[0] == 3 and ds.x_train.shape[0] == 9


def _syn(seed=0, **data_over) -> RunConfig:
    d = {"kind": "synthetic", "d": 5, "target": "x0*x1", "n_train": 300, "n_test": 50}
    d.update(data_over)
    return RunConfig.from_dict({"data": d, "model": {"depth": 1, "width": 4}, "measure": {"n_points": 100},
                                "seed": seed, "device": "cpu", "dtype": "float64"})


def test_synthetic_inputs_standardised_and_labels_follow_the_target():
    ds = data.load_dataset(_syn())
    x = ds.x_train.numpy()
    np.testing.assert_allclose(x.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(x.std(0, ddof=1), 1, atol=1e-12)
    assert ds.y_train.shape == (300, 1) and ds.classes == 0


def test_ground_truth_agop_by_hand_with_standardisation():
    """f* = x0*x1, x = z*std + mean: grad_z f* = (x1*std0, x0*std1, 0, ...)."""
    from core.expr import parse_target

    gen = torch.Generator().manual_seed(4)
    z = torch.randn(50, 4, generator=gen, dtype=torch.float64)
    mean = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    std = torch.tensor([2.0, 0.5, 3.0, 1.5], dtype=torch.float64)
    g = data.ground_truth_agop(parse_target("x0*x1", 4), z, mean, std).numpy()
    x = (z * std + mean).numpy()
    grad = np.zeros((50, 4))
    grad[:, 0] = x[:, 1] * 2.0
    grad[:, 1] = x[:, 0] * 0.5
    np.testing.assert_allclose(g, grad.T @ grad / 50, rtol=1e-12, atol=1e-12)
    assert g[0, 0] == pytest.approx(np.mean(x[:, 1] ** 2) * 4.0)
    assert g[1, 1] == pytest.approx(np.mean(x[:, 0] ** 2) * 0.25)
    assert g[0, 1] == pytest.approx(np.mean(x[:, 0] * x[:, 1]))
    assert np.all(g[2:, :] == 0) and np.all(g[:, 2:] == 0)


def test_dataset_g_star_matches_hand_gradient():
    """From the noiseless labels y = x0*x1 = (s0 z0 + m0)(s1 z1 + m1) fit A=s0 s1, B=s0 m1, C=s1 m0;
    then grad_z y = (A z1 + B, A z0 + C) on the measurement points gives G* by hand."""
    ds = data.load_dataset(_syn())
    z, y = ds.x_train.numpy(), ds.y_train.numpy()[:, 0]
    feats = np.column_stack([np.ones(len(z)), z[:, 0], z[:, 1], z[:, 0] * z[:, 1]])
    coef = np.linalg.lstsq(feats, y, rcond=None)[0]
    np.testing.assert_allclose(feats @ coef, y, atol=1e-9)
    _, b, c, a = coef
    zm = ds.x_measure.numpy()
    grad = np.zeros_like(zm)
    grad[:, 0] = a * zm[:, 1] + b
    grad[:, 1] = a * zm[:, 0] + c
    np.testing.assert_allclose(ds.g_star.numpy(), grad.T @ grad / len(zm), atol=1e-9)


def test_non_finite_target_refused():
    with pytest.raises(ConfigError) as info:
        data.load_dataset(_syn(target="log(x0)"))
    assert info.value.key == "data.target" and "\n" not in str(info.value)


def test_measurement_subset_fixed_by_seed(tmp_path):
    a, b, c = data.load_dataset(_syn(0)), data.load_dataset(_syn(0)), data.load_dataset(_syn(1))
    assert torch.equal(a.measure_index, b.measure_index) and torch.equal(a.x_measure, b.x_measure)
    assert not torch.equal(a.measure_index, c.measure_index)
    idx = a.measure_index
    assert len(idx) == 100 and len(set(idx.tolist())) == 100 and int(idx.max()) < 300
    capped = data.load_dataset(_syn(0, n_train=40))
    assert len(capped.measure_index) == 40
    cfg = _syn(0).replace(**{"steps": 3, "measure.every": 3})
    engine = Engine(cfg)
    engine.step(3)
    engine.save(tmp_path / "run")
    final = read_npz(tmp_path / "run" / "final.npz")
    np.testing.assert_array_equal(final["X_measure"], a.x_measure.numpy())
    np.testing.assert_array_equal(final["Y_measure"], a.y_measure.numpy())


def test_digits_dataset():
    cfg = RunConfig.from_dict({"data": {"kind": "digits", "n_train": 200, "n_test": 50},
                               "model": {"depth": 1, "width": 4}, "measure": {"n_points": 30}, "device": "cpu"})
    ds = data.load_dataset(cfg)
    assert ds.classes == 10 and ds.d == 64 and ds.x_train.shape == (200, 64) and ds.x_test.shape == (50, 64)
    assert ds.g_star is None
