"""Stage ``fetch``: download California Housing and write ``data/raw/california_housing.npz``.

Reads the StatLib archive ``cal_housing.tgz`` from the data folder (``QUANTPIPE_DATA``, else
``~/.cache/quantpipe``), downloading it from its canonical address first if it is not there;
the content is checked against the canonical data set's sha256 before it is parsed, and
nothing is unpickled (:func:`quantpipe.source.fetch_dataset`). Without a network, point it
at a folder that holds a copy of the archive: ``QUANTPIPE_DATA=/path/to/folder dvc repro``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from quantpipe import cli, paths
from quantpipe.data import save_dataset
from quantpipe.params import load_params
from quantpipe.source import ENV_DATA, fetch_dataset

log = logging.getLogger("quantpipe.fetch")


def _body(args: argparse.Namespace) -> None:
    load_params(args.params)
    data = fetch_dataset(args.data_folder)
    save_dataset(args.out, data)
    log.info("wrote %s: %d rows, %d features", args.out, *data.X.shape)


def main(argv: Sequence[str] | None = None, prog: str = "python -m stages.fetch") -> int:
    """Run the stage; returns the exit status."""
    p = cli.parser(prog, __doc__.split("\n\n")[0])
    p.add_argument(
        "--data-folder",
        default=os.environ.get(ENV_DATA),
        help=f"the folder holding cal_housing.tgz (env {ENV_DATA}; else ~/.cache/quantpipe)",
    )
    p.add_argument("--params", type=Path, default=paths.PARAMS, help="params file")
    p.add_argument("--out", type=Path, default=paths.RAW_DATA, help="output .npz")
    return cli.run(_body, p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
