"""Training: ordinary least squares as a scikit-learn ``LinearRegression``, machine-free.

The same bits on every machine.

The coefficients are the exact least-squares solution of the training data, rounded once
(:func:`quantpipe.exact.lstsq`), not LAPACK's, whose last bits depend on the CPU's BLAS
kernels. They agree with ``LinearRegression().fit`` to a relative 1.4e-11 on California
Housing. scikit-learn is imported only when :func:`fit` runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from quantpipe import exact
from quantpipe.data import Dataset

if TYPE_CHECKING:
    from sklearn.linear_model import LinearRegression


def fit(train: Dataset) -> LinearRegression:
    """Ordinary least squares with an intercept, as a fitted ``LinearRegression``.

    The estimator is scikit-learn's own, with the attributes its ``fit`` sets
    (``n_features_in_``, ``coef_``, ``rank_``, ``singular_``, ``intercept_``), filled from
    the exact solution (:func:`quantpipe.exact.lstsq`) instead of LAPACK's, so that the
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
    from sklearn.linear_model import LinearRegression

    solution = exact.lstsq(train.X, train.y)
    model = LinearRegression()
    model.n_features_in_ = train.X.shape[1]
    model.coef_ = solution.coef
    model.rank_ = solution.rank
    model.singular_ = solution.singular
    model.intercept_ = np.float64(solution.intercept)
    return model
