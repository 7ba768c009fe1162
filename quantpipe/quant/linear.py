"""Quantization of a linear model that keeps its predictions, and the prediction kernel.

The model is ``y = X @ w + b``; every model variant predicts with :func:`predict`. No I/O.

The coefficients are quantized on standardized features (``v = w * std``, where the error
no longer depends on each feature's unit and offset), the standard deviation is folded back
into a per-feature scale, the intercept stays in float64 outside the coefficients' scale, and
it is re-centred so that the prediction at the training means is unchanged by rounding (bias
correction).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from quantpipe import exact, numerics
from quantpipe.quant.codes import as_finite_vector, dequantize_codes, per_element, quantize
from quantpipe.quant.rounding import quantize_data_aware

#: dtype of the per-feature scales stored in a quantized model file.
SCALE_DTYPE = np.dtype("<f4")


def feature_stats(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-feature mean, standard deviation and covariance of training data.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    Returns
    -------
    mean : ndarray of shape (n_features,)
    std : ndarray of shape (n_features,)
        Population standard deviation; a constant feature gets 1.0 (as scikit-learn's
        ``StandardScaler`` does), so folding never divides by zero.
    cov : ndarray of shape (n_features, n_features)
        Population covariance (``np.cov(X, rowvar=False, bias=True)``), for data-aware
        rounding.

    All three are computed exactly and rounded once (:func:`quantpipe.exact.mean_std_cov`),
    so they are the same on every machine.
    """
    mean, std, cov = exact.mean_std_cov(X)
    return mean, np.where(std > 0, std, 1.0), cov


@dataclass(frozen=True)
class QuantizedLinear:
    """A quantized linear model, as stored: ``y = X @ weights() + intercept``.

    Attributes
    ----------
    codes : ndarray of shape (n_features,), uint8 or uint16
        Unsigned codes, unpacked.
    scale : ndarray of shape (n_features,), float32
        Per-feature step in the units of the raw feature: the step on the standardized
        coefficient divided by the feature's standard deviation (the folded statistic).
    zero_point : ndarray of shape (k,), dtype of ``codes``
        ``k == 1`` per-tensor, ``k == n_features`` per-channel.
    intercept : float
        Kept in float64, outside the coefficients' scale; with bias correction, re-centred
        on the training means.
    bits : int
    step : ndarray of shape (k,), float64
        The quantization step(s) on the coefficients as quantized (standardized ones when
        ``standardize``), for the file header and for error bounds.
    """

    codes: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray
    intercept: float
    bits: int
    step: np.ndarray

    def weights(self) -> np.ndarray:
        """Dequantized coefficients, shape (n_features,), float64."""
        return dequantize_codes(self.codes, self.scale, self.zero_point)


def quantize_linear(
    coef: np.ndarray,
    intercept: float,
    mean: np.ndarray,
    std: np.ndarray,
    *,
    bits: int,
    symmetric: bool = True,
    per_channel: bool = False,
    standardize: bool = True,
    bias_correction: bool = True,
    rounding: str = "nearest",
    cov: np.ndarray | None = None,
) -> QuantizedLinear:
    """Post-training quantization of a linear model ``y = X @ coef + intercept``.

    Parameters
    ----------
    coef : ndarray of shape (n_features,)
        Float coefficients.
    intercept : float
    mean, std : ndarray of shape (n_features,)
        Training-set feature statistics (see :func:`feature_stats`); ``std`` must be > 0.
    bits : int
        2 to 16.
    symmetric, per_channel : bool
        Passed to :func:`quantize`.
    standardize : bool, default=True
        Quantize ``coef * std`` (the coefficients on standardized features) and fold ``std``
        back into the stored per-feature scale. Without it, ``coef`` is quantized as is and
        features measured in large units dominate the shared scale.
    bias_correction : bool, default=True
        Set the intercept so that the prediction at ``mean`` equals the float model's:
        ``intercept + (coef - w_hat) @ mean``. Without it the rounding error of every
        coefficient is multiplied by its feature's mean offset (large for latitude and
        longitude).
    rounding : {"nearest", "data-aware"}, default="nearest"
        ``data-aware`` chooses each code's floor or ceil, and the clipping range, to
        minimise the prediction error on the training data (:func:`quantize_data_aware`);
        it needs ``cov`` and applies to per-tensor scales (per-channel codes are exact
        either way).
    cov : ndarray of shape (n_features, n_features), optional
        Covariance of the training features, for ``data-aware`` rounding.

    Returns
    -------
    QuantizedLinear

    Raises
    ------
    ValueError
        On shape mismatches, non-finite inputs, a non-positive ``std`` or bad ``bits``.
    """
    w, mean, std = _checked_inputs(coef, intercept, mean, std)
    fold = std if standardize else np.ones_like(std)
    if rounding == "data-aware" and not per_channel:
        if cov is None:
            raise ValueError("data-aware rounding needs the training covariance, cov")
        # the prediction error's second moment: its variance if bias correction removes the
        # mean error, else variance plus squared mean
        moment = np.asarray(cov, dtype=np.float64)
        if not bias_correction:
            moment = moment + np.outer(mean, mean)
        tensor = quantize_data_aware(
            w * fold, moment / np.outer(fold, fold), bits, symmetric=symmetric
        )
    elif rounding in ("nearest", "data-aware"):
        tensor = quantize(w * fold, bits, symmetric=symmetric, per_channel=per_channel)
    else:
        raise ValueError(f"unknown rounding {rounding!r}; use nearest or data-aware")
    step = per_element(tensor.scale, w.shape[0])
    scale = (step / fold).astype(SCALE_DTYPE)
    w_hat = dequantize_codes(tensor.codes, scale, tensor.zero_point)
    b = float(intercept)
    if bias_correction:
        b = b + exact.dot(w - w_hat, mean)
    return QuantizedLinear(
        codes=tensor.codes,
        scale=scale,
        zero_point=tensor.zero_point,
        intercept=b,
        bits=bits,
        step=tensor.scale,
    )


def _checked_inputs(
    coef: np.ndarray, intercept: float, mean: np.ndarray, std: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``coef``, ``mean`` and ``std`` as finite float64 vectors of one length, ``std > 0``."""
    w = as_finite_vector(coef, "coef")
    mean = as_finite_vector(mean, "mean")
    std = as_finite_vector(std, "std")
    if not mean.shape == std.shape == w.shape:
        raise ValueError(
            f"coef, mean and std must have the same shape, got {w.shape}, {mean.shape}, {std.shape}"
        )
    if np.any(std <= 0):
        raise ValueError("std must be > 0 for every feature")
    if not np.isfinite(intercept):
        raise ValueError("intercept must be finite")
    return w, mean, std


#: Rows per chunk when a large batch is predicted on several threads.
PARALLEL_CHUNK_ROWS = 1 << 18


def predict(
    X: np.ndarray,
    weights: np.ndarray,
    intercept: float,
    *,
    threads: int = 1,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Predictions of a linear model, the same bits for a row whatever its batch or machine.

    BLAS matrix-vector products (``X @ w``) accumulate a row in an order that depends on the
    batch size, the row's position in it and the CPU's kernels, so one row sent alone, or
    on another machine, can differ in its last bits. Here every row is the sum of its
    products ``x_j * w_j`` in one fixed pairwise order, then ``+ intercept``, one correctly
    rounded operation at a time (:func:`quantpipe.numerics.row_dot`), so the evaluate stage,
    the batch command and the server agree bit for bit on every machine, and a large batch
    can be split over threads without changing a bit.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    weights : ndarray of shape (n_features,)
    intercept : float
    threads : int, default=1
        Threads for batches larger than :data:`PARALLEL_CHUNK_ROWS` (the compiled loop
        releases the GIL).
    out : ndarray of shape (n_samples,), float64, optional
        Where to write the predictions (:func:`quantpipe.numerics.output_array`).

    Returns
    -------
    ndarray of shape (n_samples,), float64
        ``out`` if given.

    Raises
    ------
    TypeError
        If ``out`` is not a float64 numpy array.
    ValueError
        If ``out`` is not a writable C-contiguous array of shape (n_samples,), or overlaps
        ``X``.
    """
    return predict_checked(X, weights, intercept, threads=threads, out=out)[0]


def predict_checked(
    X: np.ndarray,
    weights: np.ndarray,
    intercept: float,
    *,
    threads: int = 1,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """:func:`predict`, and the first row whose prediction is not finite (-1 if none).

    Returns
    -------
    predictions : ndarray of shape (n_samples,), float64
    first_nonfinite : int
    """
    given, X = X, np.asarray(X, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    n = X.shape[0]
    out = numerics.output_array(out, X, given)
    if threads <= 1 or n <= PARALLEL_CHUNK_ROWS:  # one call, no slices: 1 µs of a 1-row request
        return out, numerics.row_dot_checked(X, w, out, float(intercept))

    def rows(start: int, stop: int) -> int:
        bad = numerics.row_dot_checked(X[start:stop], w, out[start:stop], float(intercept))
        return -1 if bad < 0 else start + bad

    starts = range(0, n, PARALLEL_CHUNK_ROWS)
    with ThreadPoolExecutor(threads) as pool:
        bad = [
            row
            for row in pool.map(
                lambda start: rows(start, min(start + PARALLEL_CHUNK_ROWS, n)), starts
            )
            if row >= 0
        ]
    return out, min(bad, default=-1)
