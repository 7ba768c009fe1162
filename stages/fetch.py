"""Stage ``fetch``: download California Housing and write ``data/raw/california_housing.npz``.

The data comes through scikit-learn's own fetcher, which downloads the StatLib archive
(Pace & Barry, 1997) from its canonical address, checks the archive's sha256 and caches it
under ``SCIKIT_LEARN_DATA`` (default ``~/scikit_learn_data``). This stage then checks the
content: 20,640 rows, the 8 named features, finite values, and the sha256 of the arrays
themselves, so every copy of the data that passes gives byte-identical output.

Without a network, point scikit-learn at a folder that already holds its cache file
``cal_housing_py3.pkz``: ``SCIKIT_LEARN_DATA=/path/to/scikit_learn_data dvc repro``.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import pickle
import struct
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.datasets import fetch_california_housing, get_data_home

from stages import cli, paths
from stages.dataset import N_ROWS, Dataset, save_dataset, validate_dataset
from stages.errors import DataError
from stages.params import load_params

log = logging.getLogger("quantpipe.fetch")

#: sha256 of ``X.tobytes()`` and ``y.tobytes()`` (float64, C order) of the canonical data set.
X_SHA256 = "c8f43774aa27b7ec034e60db31b6124e12b4a0d42b55b0c8eb1320089e2ebc37"
Y_SHA256 = "ae80bb98487c04d7383ed8aecda8e207583dfd3e66f6679fded97597c3f6c87e"
CACHE_FILE = "cal_housing_py3.pkz"
OFFLINE_HINT = (
    "offline? point it at a local copy: SCIKIT_LEARN_DATA=/path/to/scikit_learn_data "
    f"dvc repro (the folder holding {CACHE_FILE}; see the README)"
)


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


def fetch_dataset(data_home: str | Path | None = None) -> Dataset:
    """Fetch, validate and verify California Housing.

    Parameters
    ----------
    data_home : str or Path, optional
        scikit-learn's data folder; by default ``SCIKIT_LEARN_DATA`` or
        ``~/scikit_learn_data``. The archive is downloaded there if it is not cached yet.

    Returns
    -------
    Dataset
        X of shape (20640, 8) and y of shape (20640,), float64.

    Raises
    ------
    DataError
        If the download fails (with the line that says how to work offline), the cached
        copy is unreadable, or the content is not the canonical data set.
    """
    home = Path(get_data_home(data_home))
    cached = home / CACHE_FILE
    if cached.is_file():
        log.info("loading California Housing from scikit-learn's cache %s", cached)
    else:
        log.info("downloading California Housing (about 400 kB) into %s", home)
    # scikit-learn's cache is a joblib pickle: a damaged one fails in the unpickler.
    try:
        X, y = fetch_california_housing(
            data_home=str(home), download_if_missing=True, return_X_y=True, n_retries=2, delay=1.0
        )
    except (OSError, EOFError, ValueError, zlib.error, pickle.UnpicklingError, struct.error) as exc:
        if cached.is_file():
            raise DataError(
                f"{cached}: unreadable ({exc}); delete it so that it is downloaded again"
            ) from None
        raise DataError(f"could not download California Housing ({exc}); {OFFLINE_HINT}") from None
    data = Dataset(X=np.ascontiguousarray(X, dtype=np.float64), y=np.ascontiguousarray(y))
    where = f"California Housing from {home}"
    validate_dataset(data, where, N_ROWS)
    verify_digests(data, where)
    return data


def _body(args: argparse.Namespace) -> None:
    load_params(args.params)
    data = fetch_dataset(args.data_home)
    save_dataset(args.out, data)
    log.info("wrote %s: %d rows, %d features", args.out, *data.X.shape)


def main(argv: Sequence[str] | None = None, prog: str = "python -m stages.fetch") -> int:
    """Run the stage; returns the exit status."""
    p = cli.parser(prog, __doc__.split("\n\n")[0])
    p.add_argument(
        "--data-home",
        default=os.environ.get("SCIKIT_LEARN_DATA"),
        help="scikit-learn's data folder (env SCIKIT_LEARN_DATA; else ~/scikit_learn_data)",
    )
    p.add_argument("--params", type=Path, default=paths.PARAMS, help="params file")
    p.add_argument("--out", type=Path, default=paths.RAW_DATA, help="output .npz")
    return cli.run(_body, p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
