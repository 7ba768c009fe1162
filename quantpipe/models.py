"""A loaded model, ready to predict.

A float, quantized or cast linear model, or an integer-only one;
:mod:`quantpipe.modelfile` reads them from their files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from quantpipe.errors import PredictionError
from quantpipe.quant.integer import IntegerLinear
from quantpipe.quant.linear import predict_checked


def finite_predictions(predictions: np.ndarray) -> np.ndarray:
    """``predictions``, shape (n_samples,), if every one is a finite number.

    Finite inputs can still overflow (``1.7e308`` times a coefficient above 1): the
    prediction is then infinite or NaN, which no caller can use or even write as JSON.

    Raises
    ------
    PredictionError
        Naming the first row (0-based) whose prediction is not finite.
    """
    finite = np.isfinite(predictions)
    if not finite.all():
        row = int(np.argmin(finite))
        raise PredictionError(row, float(predictions[row]))
    return predictions


@dataclass(frozen=True)
class LinearModel:
    """A loaded model, float or quantized, ready to predict.

    Attributes
    ----------
    variant : str
        ``fp64``, ``q{bits}`` or a cast (``float16`` ...).
    weights : ndarray of shape (n_features,), float64
        Coefficients (dequantized, for a quantized model).
    intercept : float
    header : dict
        The file's JSON header.
    param_bytes : int
        Bytes of the stored parameters at their stored widths (packed codes, scales, zero
        points, intercept), header excluded.
    bits : int
        Width of the stored coefficients: 64 for fp64, the code width, or the cast's width.
    """

    variant: str
    weights: np.ndarray
    intercept: float
    header: dict[str, Any] = field(repr=False)
    param_bytes: int
    bits: int

    def predict(self, X: np.ndarray, threads: int = 1, out: np.ndarray | None = None) -> np.ndarray:
        """Predictions for ``X`` of shape (n_samples, n_features); returns shape (n_samples,).

        ``threads`` > 1 splits a large batch over threads; the result is the same bits.
        ``out``, an array of shape (n_samples,), float64, receives the predictions and is
        returned (:func:`quantpipe.numerics.output_array`); after an error its contents are
        unspecified.

        Raises
        ------
        PredictionError
            Naming the first row (0-based) whose prediction overflows (is not finite).
        TypeError
            If ``out`` is not a float64 numpy array.
        ValueError
            If ``out`` is not a writable C-contiguous array of that shape, or overlaps
            ``X``.
        """
        predictions, bad = predict_checked(
            X, self.weights, self.intercept, threads=threads, out=out
        )
        if bad >= 0:
            raise PredictionError(bad, float(predictions[bad]))
        return predictions

    def saturated_rows(self, X: np.ndarray) -> int:
        """Rows whose inputs a float model must clip: none."""
        return 0


@dataclass(frozen=True)
class IntegerModel:
    """A loaded integer-only model (:class:`quantpipe.quant.integer.IntegerLinear`)."""

    variant: str
    model: IntegerLinear
    header: dict[str, Any] = field(repr=False)
    param_bytes: int
    bits: int

    def predict(self, X: np.ndarray, threads: int = 1, out: np.ndarray | None = None) -> np.ndarray:
        """Predictions for ``X`` of shape (n_samples, n_features); returns shape (n_samples,).

        Integer arithmetic runs on one thread (``threads`` is accepted for a common API);
        ``out`` as :meth:`LinearModel.predict`'s.

        Raises
        ------
        PredictionError
            If a prediction is not finite (:func:`finite_predictions`).
        TypeError
            If ``out`` is not a float64 numpy array.
        ValueError
            If an input is NaN, or ``out`` is not a writable C-contiguous array of shape
            (n_samples,) apart from ``X``.
        """
        return finite_predictions(self.model.predict(X, out=out))

    def saturated_rows(self, X: np.ndarray) -> int:
        """Rows with a feature outside the calibrated input range (clipped to it)."""
        return int(self.model.input_codes(X)[1].sum())


Model = LinearModel | IntegerModel
