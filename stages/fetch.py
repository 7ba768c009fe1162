"""Stage ``fetch``: download California Housing and write ``data/raw/california_housing.npz``.

Downloads through scikit-learn's own fetcher, which caches the data under
``SCIKIT_LEARN_DATA`` (default ``~/scikit_learn_data``), then reads that cache; the content is
checked against the canonical data set's sha256 (:func:`quantpipe.data.fetch_dataset`).
Without a network, point it at a folder that already holds scikit-learn's cache file
``cal_housing_py3.pkz``: ``SCIKIT_LEARN_DATA=/path/to/scikit_learn_data dvc repro``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from quantpipe import cli, paths
from quantpipe.data import fetch_dataset, save_dataset
from quantpipe.params import load_params

log = logging.getLogger("quantpipe.fetch")


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
