"""Stage ``split``: split the data once into ``data/split/train.npz`` and ``test.npz``.

The rows of scikit-learn's ``train_test_split(X, y, test_size=data.test_size,
random_state=data.seed)`` (:func:`quantpipe.data.split_indices`, without importing it); with
the defaults (0.2, 42) this is the split every published figure for this data set uses. Later
stages read these files and never split again.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from quantpipe import cli, paths
from quantpipe.data import N_ROWS, load_dataset, save_dataset, split_dataset
from quantpipe.params import load_params

log = logging.getLogger("quantpipe.split")


def _body(args: argparse.Namespace) -> None:
    params = load_params(args.params)
    data = load_dataset(args.data, n_rows=N_ROWS)
    train, test = split_dataset(data, test_size=params.data.test_size, seed=params.data.seed)
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
