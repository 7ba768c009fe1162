"""Stage ``mnist_fetch``: the four MNIST files, checked, as ``data/mnist/digits.npz``.

Reads ``train-images-idx3-ubyte.gz`` and its three siblings from ``mnist/`` in the data folder
(``QUANTPIPE_DATA``, else ``~/.cache/quantpipe``), downloading any that is missing from the
mirrors torchvision lists; each file's decompressed content is checked against the canonical
sha256 before it is parsed (:func:`quantpipe.mnist.source.fetch_digits`). Without a network:
``QUANTPIPE_DATA=/path/to/folder dvc repro``, the folder whose ``mnist/`` holds the files.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from quantpipe import cli, paths
from quantpipe.mnist.data import save_digits
from quantpipe.mnist.source import fetch_digits
from quantpipe.params import load_params
from quantpipe.source import ENV_DATA

log = logging.getLogger("quantpipe.mnist")


def _body(args: argparse.Namespace) -> None:
    load_params(args.params)
    data = fetch_digits(args.data_folder)
    save_digits(args.out, data)
    log.info(
        "wrote %s: %d training and %d test images", args.out, len(data.x_train), len(data.x_test)
    )


def main(argv: Sequence[str] | None = None, prog: str = "python -m stages.mnist_fetch") -> int:
    """Run the stage; returns the exit status."""
    p = cli.parser(prog, __doc__.split("\n\n")[0])
    p.add_argument(
        "--data-folder",
        default=os.environ.get(ENV_DATA),
        help=f"the folder whose mnist/ holds the four .gz files (env {ENV_DATA}; "
        "else ~/.cache/quantpipe)",
    )
    p.add_argument("--params", type=Path, default=paths.PARAMS, help="params file")
    p.add_argument("--out", type=Path, default=paths.MNIST_DATA, help="output .npz")
    return cli.run(_body, p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
