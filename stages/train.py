"""Stage ``train``: fit ``LinearRegression`` on the training split.

Writes the estimator (``models/fp64.joblib``, for scikit-learn users) and its parameters in
the pickle-free model format (``models/fp64.npz``) that the later stages and the inference
path read.

The coefficients are the exact least-squares solution of the training data, rounded once
(:func:`stages.numerics.lstsq`), not LAPACK's, whose last bits depend on the CPU's BLAS
kernels: the same bytes on every machine. They agree with ``LinearRegression().fit`` to a
relative 1.4e-11 on this data set.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import joblib
import numpy as np
from sklearn.linear_model import LinearRegression

from stages import cli, metrics, numerics, paths
from stages.dataset import Dataset, load_dataset
from stages.io import atomic_path
from stages.modelfile import float_model_arrays, save_model
from stages.params import load_params
from stages.quantization import predict

log = logging.getLogger("quantpipe.train")


def fit(train: Dataset) -> LinearRegression:
    """Ordinary least squares with an intercept, as a fitted ``LinearRegression``.

    The estimator is scikit-learn's own, with the attributes its ``fit`` sets
    (``n_features_in_``, ``coef_``, ``rank_``, ``singular_``, ``intercept_``), filled from
    the exact solution (:func:`stages.numerics.lstsq`) instead of LAPACK's, so that the
    same data give the same bits on every machine. It predicts, scores and pickles as one
    fitted by ``fit``.

    Parameters
    ----------
    train : Dataset
        X of shape (n_samples, n_features), y of shape (n_samples,).

    Returns
    -------
    LinearRegression
        Fitted; ``coef_`` of shape (n_features,).
    """
    solution = numerics.lstsq(train.X, train.y)
    model = LinearRegression()
    model.n_features_in_ = train.X.shape[1]
    model.coef_ = solution.coef
    model.rank_ = solution.rank
    model.singular_ = solution.singular
    model.intercept_ = np.float64(solution.intercept)
    return model


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
