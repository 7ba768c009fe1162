"""Stage ``train``: fit ``LinearRegression`` on the training split.

Writes the estimator (``models/fp64.joblib``, for scikit-learn users) and its parameters in
the pickle-free model format (``models/fp64.npz``) that the later stages and the inference
path read.

The coefficients are the exact least-squares solution of the training data, rounded once
(:func:`quantpipe.training.fit`), not LAPACK's, whose last bits depend on the CPU's BLAS
kernels: the same bytes on every machine.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import joblib

from quantpipe import cli, metrics, paths
from quantpipe.data import load_dataset
from quantpipe.io import atomic_path
from quantpipe.modelfile import float_model_arrays, save_model
from quantpipe.params import load_params
from quantpipe.quant.linear import predict
from quantpipe.training import fit

log = logging.getLogger("quantpipe.train")


def _body(args: argparse.Namespace) -> None:
    params = load_params(args.params)
    train = load_dataset(args.train)
    model = fit(train)
    with atomic_path(args.estimator) as tmp:
        joblib.dump(model, tmp)
    arrays = float_model_arrays(
        model.coef_, float(model.intercept_), train.feature_names, {"data": params.data.to_dict()}
    )
    save_model(args.out, arrays)
    train_pred = predict(train.X, model.coef_, float(model.intercept_))
    log.info(
        "fitted LinearRegression on %d rows (train R² %.4f); wrote %s and %s",
        len(train.y),
        metrics.accuracy(train.y, train_pred)["r2"],
        args.estimator,
        args.out,
    )


def main(argv: Sequence[str] | None = None, prog: str = "python -m stages.train") -> int:
    """Run the stage; returns the exit status."""
    p = cli.parser(prog, __doc__.split("\n\n")[0])
    p.add_argument("--params", type=Path, default=paths.PARAMS, help="params file")
    p.add_argument("--train", type=Path, default=paths.TRAIN_DATA, help="training .npz")
    p.add_argument("--estimator", type=Path, default=paths.ESTIMATOR, help="output .joblib")
    p.add_argument("--out", type=Path, default=paths.FLOAT_MODEL, help="output model .npz")
    return cli.run(_body, p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
