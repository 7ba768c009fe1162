"""Dataset validation, the fetch stage's errors, and the real data."""

from __future__ import annotations

import urllib.error

import numpy as np
import pytest
import sklearn.datasets

from quantpipe import data as fetch
from quantpipe.data import (
    FEATURE_NAMES,
    Dataset,
    load_dataset,
    save_dataset,
    split_dataset,
    validate_dataset,
)
from quantpipe.errors import DataError


def small(n=10):
    rng = np.random.default_rng(0)
    return Dataset(X=rng.normal(size=(n, 8)), y=rng.normal(size=n))


def test_dataset_round_trip(tmp_path):
    data = small()
    save_dataset(tmp_path / "d.npz", data)
    loaded = load_dataset(tmp_path / "d.npz", n_rows=10)
    np.testing.assert_array_equal(loaded.X, data.X)
    assert loaded.feature_names == FEATURE_NAMES


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (Dataset(np.zeros((3, 7)), np.zeros(3)), r"d: X has shape \(3, 7\), expected \(n, 8\)"),
        (Dataset(np.zeros((3, 8)), np.zeros(4)), r"d: y has shape \(4,\), expected \(3,\)"),
        (Dataset(np.zeros((0, 8)), np.zeros(0)), r"d: no rows"),
        (
            Dataset(np.zeros((3, 8), np.float32), np.zeros(3)),
            r"d: arrays are float32/float64, expected float64",
        ),
        (
            Dataset(np.zeros((3, 8)), np.zeros(3), ("x",) * 8),
            r"d: features are \['x', .*\], expected \['MedInc'",
        ),
    ],
)
def test_validate_dataset_errors(data, message):
    with pytest.raises(DataError, match=message):
        validate_dataset(data, "d")


def test_validate_dataset_names_the_row_of_a_nan():
    data = small()
    data.X[7, 3] = np.nan
    with pytest.raises(DataError, match=r"d: X has a NaN or infinite value in row 7"):
        validate_dataset(data, "d")


def test_validate_dataset_row_count():
    with pytest.raises(DataError, match=r"d: 10 rows, expected 20640"):
        validate_dataset(small(), "d", n_rows=20640)


def test_missing_data_file(tmp_path):
    with pytest.raises(DataError, match=r"train.npz: not found; run `dvc repro` to build it"):
        load_dataset(tmp_path / "train.npz")


def test_corrupt_data_file(tmp_path):
    path = tmp_path / "train.npz"
    path.write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(
        DataError, match=r"train.npz: corrupt or truncated \(.*\); delete it and run `dvc repro`"
    ):
        load_dataset(path)


def test_data_file_without_y(tmp_path):
    np.savez(tmp_path / "d.npz", X=np.zeros((2, 8)), feature_names=np.array(FEATURE_NAMES))
    with pytest.raises(DataError, match=r"d.npz: lacks \['y'\]; delete it and run `dvc repro`"):
        load_dataset(tmp_path / "d.npz")


def test_split_sizes_and_determinism():
    data = small(100)
    train, test = split_dataset(data, seed=3, test_size=0.25)
    assert train.X.shape == (75, 8)
    assert test.X.shape == (25, 8)
    again, _ = split_dataset(data, seed=3, test_size=0.25)
    np.testing.assert_array_equal(train.X, again.X)
    other, _ = split_dataset(data, seed=4, test_size=0.25)
    assert not np.array_equal(train.X, other.X)


def test_offline_download_failure_says_how_to_use_a_local_copy(tmp_path, monkeypatch):
    def no_network(**kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(sklearn.datasets, "fetch_california_housing", no_network)
    with pytest.raises(DataError) as info:
        fetch.fetch_dataset(tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("could not download California Housing (<urlopen error Name")
    assert "SCIKIT_LEARN_DATA=/path/to/scikit_learn_data dvc repro" in message


def test_unreadable_cache_says_to_delete_it(tmp_path, monkeypatch):
    (tmp_path / fetch.CACHE_FILE).write_bytes(b"junk")
    with pytest.raises(DataError, match=r"cal_housing_py3.pkz: unreadable \(.*\); delete it"):
        fetch.fetch_dataset(tmp_path)


def test_content_that_differs_from_the_canonical_data_is_refused(sklearn_data_home, monkeypatch):
    real = sklearn.datasets.fetch_california_housing

    def tampered(**kwargs):
        X, y = real(**kwargs)
        X = X.copy()
        X[0, 0] += 1e-9
        return X, y

    monkeypatch.setattr(sklearn.datasets, "fetch_california_housing", tampered)
    with pytest.raises(DataError, match=r"X differs from the canonical data set \(sha256"):
        fetch.fetch_dataset(sklearn_data_home)


def test_fetch_real_data(sklearn_data_home):
    data = fetch.fetch_dataset(sklearn_data_home)
    assert data.X.shape == (20640, 8)
    assert data.y.min() == pytest.approx(0.14999)
    assert data.y.max() == pytest.approx(5.00001)
