"""The California Housing data set: its arrays, validation, file format and split.

:mod:`quantpipe.source` reads the StatLib archive (Pace & Barry, 1997) and gives the table
to :func:`dataset_from_table`, which does scikit-learn's fetcher's arithmetic; the arrays are
then checked (20,640 rows, the 8 named features, finite values, and the sha256 of the arrays
themselves, :func:`verify_digests`), so every copy of the data that passes gives
byte-identical output. :func:`split_dataset` gives the rows of scikit-learn's
``train_test_split`` without importing scikit-learn.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from quantpipe.errors import DataError
from quantpipe.io import load_npz, save_npz

FEATURE_NAMES = (
    "MedInc",
    "HouseAge",
    "AveRooms",
    "AveBedrms",
    "Population",
    "AveOccup",
    "Latitude",
    "Longitude",
)
TARGET_NAME = "MedHouseVal"
N_ROWS = 20_640

log = logging.getLogger("quantpipe.data")


@dataclass(frozen=True)
class Dataset:
    """Features and target.

    Attributes
    ----------
    X : ndarray of shape (n_samples, 8), float64
    y : ndarray of shape (n_samples,), float64
    feature_names : tuple of str
    """

    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...] = FEATURE_NAMES


def validate_dataset(data: Dataset, where: str, n_rows: int | None = None) -> Dataset:
    """Check shapes, names, dtypes and finiteness.

    Parameters
    ----------
    data : Dataset
    where : str
        What to name in the error message (a path or a source).
    n_rows : int, optional
        The exact number of rows expected, if known.

    Returns
    -------
    Dataset
        ``data``, unchanged.

    Raises
    ------
    DataError
        Naming the first problem found.
    """
    X, y = data.X, data.y
    if tuple(data.feature_names) != FEATURE_NAMES:
        raise DataError(
            f"{where}: features are {list(data.feature_names)}, expected {list(FEATURE_NAMES)}"
        )
    if X.ndim != 2 or X.shape[1] != len(FEATURE_NAMES):
        raise DataError(f"{where}: X has shape {X.shape}, expected (n, {len(FEATURE_NAMES)})")
    if y.shape != (X.shape[0],):
        raise DataError(f"{where}: y has shape {y.shape}, expected ({X.shape[0]},)")
    if n_rows is not None and X.shape[0] != n_rows:
        raise DataError(f"{where}: {X.shape[0]} rows, expected {n_rows}")
    if X.shape[0] == 0:
        raise DataError(f"{where}: no rows")
    if X.dtype != np.float64 or y.dtype != np.float64:
        raise DataError(f"{where}: arrays are {X.dtype}/{y.dtype}, expected float64")
    for name, array in (("X", X), ("y", y)):
        bad = ~np.isfinite(array)
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise DataError(f"{where}: {name} has a NaN or infinite value in row {row}")
    return data


def save_dataset(path: str | Path, data: Dataset) -> None:
    """Write a dataset as ``.npz`` (``X``, ``y``, ``feature_names``), atomically."""
    save_npz(
        path,
        {
            "X": data.X,
            "y": data.y,
            "feature_names": np.array(data.feature_names, dtype="<U16"),
        },
    )


def load_dataset(path: str | Path, n_rows: int | None = None) -> Dataset:
    """Read and validate a dataset written by :func:`save_dataset`.

    Raises
    ------
    DataError
        If the file is missing, corrupt or fails :func:`validate_dataset`; the message says
        which stage rebuilds it.
    """
    path = Path(path)
    arrays = load_npz(path, DataError)
    missing = {"X", "y", "feature_names"} - arrays.keys()
    if missing:
        raise DataError(
            f"{path}: lacks {sorted(missing)}; delete it and run `dvc repro` to rebuild it"
        )
    data = Dataset(
        X=arrays["X"],
        y=arrays["y"],
        feature_names=tuple(str(name) for name in arrays["feature_names"].reshape(-1)),
    )
    return validate_dataset(data, str(path), n_rows)


#: sha256 of ``X.tobytes()`` and ``y.tobytes()`` (float64, C order) of the canonical data set.
X_SHA256 = "c8f43774aa27b7ec034e60db31b6124e12b4a0d42b55b0c8eb1320089e2ebc37"
Y_SHA256 = "ae80bb98487c04d7383ed8aecda8e207583dfd3e66f6679fded97597c3f6c87e"
#: What to do with a local copy of the data that is not the canonical data set.
REFETCH = "delete it so that it is downloaded again"


def verify_digests(data: Dataset, where: str) -> None:
    """Check that the arrays are the canonical California Housing data, byte for byte.

    Raises
    ------
    DataError
        Naming the array whose sha256 differs.
    """
    for name, array, expected in (("X", data.X, X_SHA256), ("y", data.y, Y_SHA256)):
        digest = hashlib.sha256(np.ascontiguousarray(array, dtype="<f8").tobytes()).hexdigest()
        if digest != expected:
            raise DataError(
                f"{where}: {name} differs from the canonical data set (sha256 {digest[:12]}…, "
                f"expected {expected[:12]}…); delete the cached copy and fetch again"
            )


def dataset_from_table(table: np.ndarray, where: str) -> Dataset:
    """Features and target from the table that scikit-learn's fetcher keeps.

    scikit-learn's fetcher keeps the archive's nine columns as one float64 array (target
    first, then median income, house age, total rooms, total bedrooms, population,
    households, latitude, longitude) and, on every call, divides rooms, bedrooms and
    population by households and the target by 100,000. This does the same arithmetic in the
    same order, so the arrays are its arrays bit for bit (:func:`verify_digests` holds them
    to that).

    Parameters
    ----------
    table : ndarray of shape (20640, 9), float64
    where : str
        What to name in the error message.

    Returns
    -------
    Dataset
        X of shape (20640, 8) and y of shape (20640,).

    Raises
    ------
    DataError
        If ``table`` is not a float64 array of that shape.
    """
    if not isinstance(table, np.ndarray):
        raise DataError(f"{where}: holds a {type(table).__name__}, not an array; {REFETCH}")
    if table.shape != (N_ROWS, 9) or table.dtype != np.float64:
        raise DataError(
            f"{where}: holds a {table.dtype} array of shape {table.shape}, not the "
            f"({N_ROWS}, 9) float64 table of California Housing; {REFETCH}"
        )
    X = table[:, 1:].copy()
    X[:, 2] /= X[:, 5]
    X[:, 3] /= X[:, 5]
    X[:, 5] = X[:, 4] / X[:, 5]
    y = table[:, 0] / 100000.0
    return Dataset(X=X, y=np.ascontiguousarray(y))


def split_indices(n_samples: int, *, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The row indices of scikit-learn's ``train_test_split``, without importing it.

    ``train_test_split(..., test_size=test_size, random_state=seed)`` (shuffled, not
    stratified) draws one permutation of the rows from ``RandomState(seed)``, holds out its
    first ``ceil(test_size * n_samples)`` entries and trains on the rest, in that order. This
    does the same (the test suite checks it against scikit-learn's own split), so the split
    stage need not spend 0.6 s importing scikit-learn and scipy.

    Parameters
    ----------
    n_samples : int
        The number of rows, at least 2.
    test_size : float
        The fraction of rows held out, in (0, 1).
    seed : int
        ``random_state`` of ``train_test_split``.

    Returns
    -------
    train, test : ndarray of shape (n_train,) and (n_test,), int
        ``n_test = ceil(n_samples * test_size)`` and ``n_train = n_samples - n_test``.

    Raises
    ------
    DataError
        If ``test_size`` leaves no row on one side.
    """
    n_test = math.ceil(test_size * n_samples)
    if not 0 < n_test < n_samples:
        raise DataError(
            f"test_size {test_size} of {n_samples} rows leaves {n_test} test and "
            f"{n_samples - n_test} training rows; both must be at least 1"
        )
    permutation = np.random.RandomState(seed).permutation(n_samples)
    return permutation[n_test:], permutation[:n_test]


def split_dataset(data: Dataset, *, test_size: float, seed: int) -> tuple[Dataset, Dataset]:
    """Train/test split, the rows of ``train_test_split(X, y, test_size, random_state=seed)``.

    Parameters
    ----------
    data : Dataset
        n_samples rows.
    test_size : float
        The fraction of rows held out, in (0, 1).
    seed : int
        ``random_state`` of ``train_test_split``.

    Returns
    -------
    train, test : Dataset
        ``ceil(n_samples * test_size)`` test rows, the rest for training (see
        :func:`split_indices`).
    """
    train, test = split_indices(len(data.y), test_size=test_size, seed=seed)
    return (
        Dataset(data.X[train], data.y[train], data.feature_names),
        Dataset(data.X[test], data.y[test], data.feature_names),
    )
