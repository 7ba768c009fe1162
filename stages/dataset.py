"""The California Housing arrays, their validation and their file format."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stages.errors import DataError
from stages.io import load_npz, save_npz

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
