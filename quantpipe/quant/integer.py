"""Integer-only inference, in the style of TFLite / ONNX QLinear.

Quantized inputs, integer accumulation, one float rescale. No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantpipe import compiled, exact, numerics
from quantpipe.quant.codes import as_finite_vector
from quantpipe.quant.rounding import quantize_data_aware


@dataclass(frozen=True)
class IntegerLinear:
    """A linear model evaluated with integer arithmetic, in the style of TFLite / ONNX QLinear.

    Each input is quantized per feature to an unsigned ``bits``-wide code calibrated on the
    training set, ``xq = clip(rint((x - input_lo) / input_scale), 0, 2**bits - 1)``; the
    input scales and offsets are folded into the weights and the bias, so that

        acc = xq @ weight_codes + bias_code      (integer accumulation, checked for overflow)
        y   = output_scale * acc                 (one float rescale)

    Attributes
    ----------
    weight_codes : ndarray of shape (n_features,), signed integers
    output_scale : float
    bias_code : int
    input_lo, input_scale : ndarray of shape (n_features,), float64
    bits : int
    """

    weight_codes: np.ndarray
    output_scale: float
    bias_code: int
    input_lo: np.ndarray
    input_scale: np.ndarray
    bits: int

    def _arrays(self, X: np.ndarray) -> tuple[np.ndarray, ...]:
        return (
            np.ascontiguousarray(X, dtype=np.float64),
            np.ascontiguousarray(self.input_lo, dtype=np.float64),
            np.ascontiguousarray(self.input_scale, dtype=np.float64),
            np.ascontiguousarray(self.weight_codes, dtype=np.int64),
        )

    def input_codes(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Quantized inputs, and which rows saturated.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)

        Returns
        -------
        codes : ndarray of shape (n_samples, n_features), int64
        saturated : ndarray of shape (n_samples,), bool
            Whether each row fell outside the calibrated range in some feature (and was
            clipped to it).

        Raises
        ------
        ValueError
            If an input is NaN, or the shapes disagree.
        SetupError
            If the compiled loop is not built from its source (:func:`quantpipe.compiled.kernels`).
        """
        X, lo, scale, weights = self._arrays(X)
        codes = np.empty(X.shape, dtype=np.int64)
        saturated = np.empty(X.shape[0], dtype=bool)
        compiled.input_codes(X, lo, scale, weights, self.bits, codes, saturated)
        return codes, saturated

    def predict(self, X: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Predictions ``output_scale * (xq @ weight_codes + bias_code)``.

        One compiled pass (``quantpipe/_kernels.c``): each row's codes, their integer
        accumulation in int64, the check that it stays in the int32 range, and the one float
        rescale.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
        out : ndarray of shape (n_samples,), float64, optional
            Where to write the predictions (:func:`quantpipe.numerics.output_array`).

        Returns
        -------
        ndarray of shape (n_samples,), float64
            ``out`` if given.

        Raises
        ------
        OverflowError
            If an accumulator leaves the int32 range (it cannot, given the bound checked at
            construction; this guards the arithmetic).
        TypeError
            If ``out`` is not a float64 numpy array.
        ValueError
            If an input is NaN, the shapes disagree, or ``out`` is not a writable
            C-contiguous array of shape (n_samples,) apart from ``X``.
        SetupError
            If the compiled loop is not built from its source (:func:`quantpipe.compiled.kernels`).
        """
        given = X
        X, lo, scale, weights = self._arrays(X)
        out = numerics.output_array(out, X, given)
        compiled.integer_predict(
            X, lo, scale, weights, self.bits, self.bias_code, self.output_scale, out
        )
        return out


def calibrate_inputs(
    X: np.ndarray, bits: int, calibration: str = "minmax", percentile: float = 99.9
) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature input ranges for integer-only inference.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Training data.
    bits : int
    calibration : {"minmax", "percentile"}
        The full training range, or the central ``percentile`` % of it (clipping outliers
        for a finer step on typical rows).
    percentile : float
        In (50, 100].

    Returns
    -------
    input_lo, input_scale : ndarray of shape (n_features,)
    """
    X = np.asarray(X, dtype=np.float64)
    if calibration == "minmax":
        lo, hi = X.min(axis=0), X.max(axis=0)
    elif calibration == "percentile":
        lo = np.percentile(X, 100.0 - percentile, axis=0)
        hi = np.percentile(X, percentile, axis=0)
    else:
        raise ValueError(f"unknown calibration {calibration!r}; use minmax or percentile")
    span = np.where(hi > lo, hi - lo, 1.0)
    return lo, span / (2**bits - 1)


def quantize_integer(
    coef: np.ndarray,
    intercept: float,
    X_train: np.ndarray,
    *,
    bits: int,
    calibration: str = "minmax",
    percentile: float = 99.9,
) -> IntegerLinear:
    """Build an integer-only model from a float linear model and its training data.

    The weight per input code, ``w * input_scale``, is quantized symmetrically (one scale,
    ``bits`` wide) with data-aware rounding against the covariance of the input codes; the
    input offsets and the bias are folded into one integer bias, corrected so that the
    prediction at the training mean of the codes is the float model's.

    Raises
    ------
    ValueError
        On bad shapes or if the int32 accumulator could overflow for some input.
    """
    w = as_finite_vector(coef, "coef")
    lo, sx = calibrate_inputs(X_train, bits, calibration, percentile)
    w_code = w * sx  # the weight of one input code step
    levels = 2**bits - 1
    xq = np.clip(np.rint((X_train - lo) / sx), 0, levels)
    xq_mean, _, C = exact.mean_std_cov(xq)
    tensor = quantize_data_aware(w_code, C, bits, symmetric=True)
    S = float(tensor.scale[0])
    Wq = tensor.codes.astype(np.int64) - int(tensor.zero_point[0])
    # y = w @ x + b = w_code @ (x - lo) / sx + (b + w @ lo); bias-correct at the mean code
    b_folded = float(intercept) + exact.dot(w, lo) + exact.dot(w_code - S * Wq, xq_mean)
    B = int(np.rint(b_folded / S))
    bound = int(np.abs(Wq).sum()) * levels + abs(B)
    if bound > np.iinfo(np.int32).max:
        raise ValueError(f"the int32 accumulator could overflow (bound {bound}); use fewer bits")
    dtype = np.int8 if bits <= 8 else np.int16
    return IntegerLinear(
        weight_codes=Wq.astype(dtype),
        output_scale=S,
        bias_code=B,
        input_lo=lo,
        input_scale=sx,
        bits=bits,
    )
