"""Stage ``reference``: what the training data looked like, for drift monitoring.

Writes ``models/reference.npz`` (per-feature decile bins and shares, 1,001 quantiles and
the training CDF at them; see :mod:`quantpipe.drift`), which the server ships with the models
so that it can score drift without the training data.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from quantpipe import cli, paths
from quantpipe.data import load_dataset
from quantpipe.drift import build_reference, save_reference
from quantpipe.params import load_params

log = logging.getLogger("quantpipe.reference")


def _body(args: argparse.Namespace) -> None:
    params = load_params(args.params)
    train = load_dataset(args.train)
    reference = build_reference(train.X, train.feature_names, params.monitor.bins)
    save_reference(args.out, reference)
    log.info("wrote %s: %d features, %d bins", args.out, len(train.feature_names), reference.bins)


def main(argv: Sequence[str] | None = None, prog: str = "python -m stages.reference") -> int:
    """Run the stage; returns the exit status."""
    p = cli.parser(prog, __doc__.split("\n\n")[0])
    p.add_argument("--params", type=Path, default=paths.PARAMS, help="params file")
    p.add_argument("--train", type=Path, default=paths.TRAIN_DATA, help="training .npz")
    p.add_argument("--out", type=Path, default=paths.REFERENCE, help="output .npz")
    return cli.run(_body, p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
