"""Dataset validation, the fetch stage's errors, and the real data."""

from __future__ import annotations

import io
import math
import tarfile
from pathlib import Path

import numpy as np
import pooch
import pytest
import sklearn.datasets
from hypothesis import given
from hypothesis import strategies as st
from sklearn.model_selection import train_test_split

from quantpipe import data as fetch
from quantpipe import source
from quantpipe.data import (
    FEATURE_NAMES,
    Dataset,
    load_dataset,
    save_dataset,
    split_dataset,
    split_indices,
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


@given(
    n=st.integers(2, 400),
    test_size=st.floats(0.001, 0.999),
    seed=st.integers(0, 2**32 - 1),
)
def test_split_indices_are_those_of_scikit_learns_train_test_split(n, test_size, seed):
    rows = np.arange(n)
    if math.ceil(test_size * n) >= n:
        with pytest.raises(ValueError, match="train set will be empty"):
            train_test_split(rows, test_size=test_size, random_state=seed)
        with pytest.raises(DataError, match=rf"of {n} rows leaves {n} test and 0 training"):
            split_indices(n, test_size=test_size, seed=seed)
        return
    want_train, want_test = train_test_split(rows, test_size=test_size, random_state=seed)
    train, test = split_indices(n, test_size=test_size, seed=seed)
    np.testing.assert_array_equal(train, want_train)
    np.testing.assert_array_equal(test, want_test)


def test_split_of_the_reference_figures_is_train_test_splits():
    data = small(50)
    train, test = split_dataset(data, seed=42, test_size=0.2)
    X_train, X_test, y_train, y_test = train_test_split(
        data.X, data.y, test_size=0.2, random_state=42
    )
    for got, want in ((train.X, X_train), (test.X, X_test), (train.y, y_train), (test.y, y_test)):
        np.testing.assert_array_equal(got, want)


def test_split_that_leaves_no_test_row_is_an_error():
    with pytest.raises(DataError, match=r"test_size 0.0 of 10 rows leaves 0 test and 10 training"):
        split_indices(10, test_size=0.0, seed=0)


# -- fetch: the canonical archive, checked by content, never unpickled ------------------------


def _tgz(path, members):
    """A .tgz holding ``members`` (name to bytes)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return path


def _real_content(data_home):
    with tarfile.open(data_home / source.ARCHIVE) as tar:
        handle = tar.extractfile(source.MEMBER)
        assert handle is not None
        return handle.read()


def _serve_downloads(monkeypatch, answer):
    """pooch's HTTP downloader replaced by ``answer(url, output_file)``: the rest of pooch
    (retries, the hash check, the file's place) runs for real, offline."""
    calls = []

    def download(self, url, output_file, pooch_instance, check_only=False):
        calls.append(url)
        answer(url, output_file)

    monkeypatch.setattr(pooch.HTTPDownloader, "__call__", download)
    monkeypatch.setattr(pooch.core.time, "sleep", lambda seconds: None)  # its retries' waits
    return calls


def test_offline_download_failure_says_how_to_use_a_local_copy(tmp_path, monkeypatch):
    import requests

    def no_network(url, output_file):
        raise requests.exceptions.ConnectionError("Name or service not known")

    calls = _serve_downloads(monkeypatch, no_network)
    with pytest.raises(DataError) as info:
        source.fetch_dataset(tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("could not download cal_housing.tgz (Name or service not known)")
    assert "offline? point it at a local copy: QUANTPIPE_DATA=/path/to/folder dvc repro" in message
    assert calls == [source.ARCHIVE_URL] * 3  # two retries


def test_a_download_whose_hash_differs_is_refused(data_home, tmp_path, monkeypatch):
    """The shared copy is re-packed: its bytes are not the canonical file's."""

    def repacked(url, output_file):
        Path(output_file).write_bytes((data_home / source.ARCHIVE).read_bytes())

    _serve_downloads(monkeypatch, repacked)
    with pytest.raises(DataError, match=r"could not download cal_housing.tgz \(SHA256 hash of"):
        source.fetch_dataset(tmp_path)
    assert not (tmp_path / source.ARCHIVE).exists()


def test_download_checks_the_hash_then_reads_the_archive(data_home, tmp_path, monkeypatch):
    import hashlib

    archive = (data_home / source.ARCHIVE).read_bytes()
    monkeypatch.setattr(source, "ARCHIVE_SHA256", hashlib.sha256(archive).hexdigest())
    calls = _serve_downloads(monkeypatch, lambda url, out: Path(out).write_bytes(archive))
    data = source.fetch_dataset(tmp_path)
    assert calls == [source.ARCHIVE_URL]
    assert data.X.shape == (20640, 8)
    source.fetch_dataset(tmp_path)  # there now: no second download
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("archive", "message"),
    [
        (b"junk", r"cal_housing.tgz: unreadable \([^\n]*\); delete it so that it is downloaded"),
        ({"other.csv": b"1,2"}, r"cal_housing.tgz: has no CaliforniaHousing/cal_housing.data; del"),
        ({source.MEMBER: b"1," * 10}, r"cal_housing.data differs from the canonical data \(sha256"),
        (
            {source.MEMBER: b"0" * (source.MEMBER_MAX_BYTES + 1)},
            r"cal_housing.data is not a file of at most 4194304 bytes",
        ),
    ],
)
def test_an_archive_that_is_not_the_canonical_data_is_refused_before_parsing(
    tmp_path, archive, message
):
    path = tmp_path / source.ARCHIVE
    if isinstance(archive, bytes):
        path.write_bytes(archive)
    else:
        _tgz(path, archive)
    with pytest.raises(DataError, match=message):
        source.fetch_dataset(tmp_path)


def test_a_recompressed_copy_of_the_archive_is_accepted(data_home, tmp_path):
    _tgz(tmp_path / source.ARCHIVE, {source.MEMBER: _real_content(data_home)})
    copy, real = source.fetch_dataset(tmp_path), source.fetch_dataset(data_home)
    assert copy.X.tobytes() == real.X.tobytes()
    assert copy.y.tobytes() == real.y.tobytes()


def test_the_arrays_are_scikit_learns_bit_for_bit(data_home, tmp_path, monkeypatch):
    """scikit-learn's own fetcher, handed the same archive (its download replaced by a copy),
    gives the very arrays the fetch stage makes."""
    import shutil

    from sklearn.datasets import _california_housing

    def local_copy(remote, dirname=None, **kwargs):
        return shutil.copy(data_home / source.ARCHIVE, Path(dirname) / remote.filename)

    monkeypatch.setattr(_california_housing, "_fetch_remote", local_copy)
    X, y = sklearn.datasets.fetch_california_housing(data_home=str(tmp_path), return_X_y=True)
    data = source.fetch_dataset(data_home)
    assert data.X.tobytes() == np.ascontiguousarray(X).tobytes()
    assert data.y.tobytes() == np.ascontiguousarray(y).tobytes()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"a": 1}, r"holds a dict, not an array; delete it so that it is downloaded again"),
        (
            np.zeros((20640, 8)),
            r"holds a float64 array of shape \(20640, 8\), not the \(20640, 9\) float64 table",
        ),
        (np.zeros((20640, 9), dtype="f4"), r"holds a float32 array of shape \(20640, 9\)"),
    ],
)
def test_a_table_of_another_shape_is_refused(table, message):
    with pytest.raises(DataError, match=message):
        fetch.dataset_from_table(table, "table")


def test_the_data_folder_is_quantpipe_data_else_the_users_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("QUANTPIPE_DATA", str(tmp_path / "env"))
    assert source.data_folder() == tmp_path / "env"
    assert source.data_folder(tmp_path / "given") == tmp_path / "given"
    monkeypatch.delenv("QUANTPIPE_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert source.data_folder() == tmp_path / "xdg" / "quantpipe"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert source.data_folder() == tmp_path / ".cache" / "quantpipe"


def test_fetch_real_data(data_home):
    data = source.fetch_dataset(data_home)
    assert data.X.shape == (20640, 8)
    assert data.y.min() == pytest.approx(0.14999)
    assert data.y.max() == pytest.approx(5.00001)
