"""Stage ``split``: split the data once into ``data/split/train.npz`` and ``test.npz``.

Uses ``train_test_split(X, y, test_size=data.test_size, random_state=data.seed)``; with the
defaults (0.2, 42) this is the split every published figure for this data set uses. Later
stages read these files and never split again.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from sklearn.model_selection import train_test_split

from stages import cli, paths
from stages.dataset import N_ROWS, Dataset, load_dataset, save_dataset
from stages.params import DataParams, load_params

log = logging.getLogger("quantpipe.split")


def split_dataset(data: Dataset, params: DataParams) -> tuple[Dataset, Dataset]:
    """Train/test split.

    Parameters
    ----------
    data : Dataset
        n_samples rows.
    params : DataParams
        ``seed`` and ``test_size``.

    Returns
    -------
    train, test : Dataset
        ``ceil(n_samples * test_size)`` test rows, the rest for training.
    """
    X_train, X_test, y_train, y_test = train_test_split(
        data.X, data.y, test_size=params.test_size, random_state=params.seed
    )
    return (
        Dataset(X_train, y_train, data.feature_names),
        Dataset(X_test, y_test, data.feature_names),
    )


def _body(args: argparse.Namespace) -> None:
    params = load_params(args.params)
    train, test = split_dataset(load_dataset(args.data, n_rows=N_ROWS), params.data)
    save_dataset(args.train, train)
    save_dataset(args.test, test)
    log.info(
        "wrote %s (%d rows) and %s (%d rows), seed %d",
        args.train,
        len(train.y),
        args.test,
        len(test.y),
        params.data.seed,
    )


def main(argv: Sequence[str] | None = None, prog: str = "python -m stages.split") -> int:
    """Run the stage; returns the exit status."""
    p = cli.parser(prog, __doc__.split("\n\n")[0])
    p.add_argument("--params", type=Path, default=paths.PARAMS, help="params file")
    p.add_argument("--data", type=Path, default=paths.RAW_DATA, help="input .npz")
    p.add_argument("--train", type=Path, default=paths.TRAIN_DATA, help="output train .npz")
    p.add_argument("--test", type=Path, default=paths.TEST_DATA, help="output test .npz")
    return cli.run(_body, p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
