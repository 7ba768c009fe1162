"""The MNIST digits: the IDX file format, validation, and the data file the pipeline keeps.

The four IDX files (LeCun, Cortes & Burges) hold 60,000 training and 10,000 test images of
28x28 grey pixels (``uint8``, 0 = background) and their labels (0-9). :func:`parse_idx`
reads one file's decompressed bytes; :func:`validate_digits` checks counts, shapes and
labels; :func:`save_digits` / :func:`load_digits` keep all four arrays in one ``.npz``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from quantpipe.errors import DataError
from quantpipe.io import load_npz, save_npz

SIDE = 28
N_CLASSES = 10
N_TRAIN = 60_000
N_TEST = 10_000
IMAGE_MAGIC = 2051
LABEL_MAGIC = 2049
_MEMBERS = ("x_train", "y_train", "x_test", "y_test")


@dataclass(frozen=True)
class Digits:
    """Images and labels.

    Attributes
    ----------
    x_train : ndarray of shape (60000, 28, 28), uint8
    y_train : ndarray of shape (60000,), uint8
    x_test : ndarray of shape (10000, 28, 28), uint8
    y_test : ndarray of shape (10000,), uint8
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def parse_idx(content: bytes, magic: int, where: str) -> np.ndarray:
    """The array in one IDX file's bytes: images (n, 28, 28) or labels (n,), uint8.

    Parameters
    ----------
    content : bytes
        The decompressed file.
    magic : int
        2051 for images, 2049 for labels.
    where : str
        What to name in an error.

    Raises
    ------
    DataError
        If the header is not ``magic``'s, or the size disagrees with the header's counts.
    """
    n_dims = 3 if magic == IMAGE_MAGIC else 1
    head = 4 + 4 * n_dims
    if len(content) < head:
        raise DataError(f"{where}: {len(content)} bytes, too short for an IDX header")
    found = int.from_bytes(content[:4], "big")
    if found != magic:
        raise DataError(f"{where}: IDX magic number {found}, expected {magic}")
    dims = [int.from_bytes(content[4 + 4 * i : 8 + 4 * i], "big") for i in range(n_dims)]
    if len(content) != head + int(np.prod(dims)):
        raise DataError(f"{where}: {len(content)} bytes, the header's sizes {dims} say otherwise")
    return np.frombuffer(content, dtype=np.uint8, offset=head).reshape(dims)


def _check_part(x: np.ndarray, y: np.ndarray, n: int, part: str, where: str) -> None:
    if x.dtype != np.uint8 or x.shape != (n, SIDE, SIDE):
        raise DataError(
            f"{where}: {part} images are {x.dtype}{list(x.shape)}, expected uint8[{n}, 28, 28]"
        )
    if y.dtype != np.uint8 or y.shape != (n,):
        raise DataError(f"{where}: {part} labels are {y.dtype}{list(y.shape)}, expected uint8[{n}]")
    if y.size and int(y.max()) >= N_CLASSES:
        raise DataError(f"{where}: {part} labels hold {int(y.max())}, expected digits 0-9")


def validate_digits(data: Digits, where: str, sizes: tuple[int, int] = (N_TRAIN, N_TEST)) -> Digits:
    """Check dtypes, shapes (28x28), counts and labels (0-9); returns ``data``.

    Raises
    ------
    DataError
        Naming the first problem found.
    """
    _check_part(data.x_train, data.y_train, sizes[0], "training", where)
    _check_part(data.x_test, data.y_test, sizes[1], "test", where)
    return data


def save_digits(path: str | Path, data: Digits) -> None:
    """Write the four arrays to one ``.npz`` (atomically; the same arrays, the same bytes)."""
    save_npz(path, {name: getattr(data, name) for name in _MEMBERS})


def load_digits(path: str | Path) -> Digits:
    """Read and validate a file written by :func:`save_digits`.

    Raises
    ------
    DataError
        If the file is missing, unreadable, or not the full data set.
    """
    arrays = load_npz(path, DataError)
    missing = [name for name in _MEMBERS if name not in arrays]
    if missing:
        raise DataError(f"{path}: lacks {', '.join(missing)}; run `dvc repro` to rebuild it")
    return validate_digits(Digits(*(arrays[name] for name in _MEMBERS)), str(path))
