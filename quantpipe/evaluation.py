"""Evaluation: each variant's accuracy, fidelity to the float model, and bytes.

Pure: arrays and models in, reports out.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from quantpipe.metrics import accuracy, fidelity
from quantpipe.models import IntegerModel, Model
from quantpipe.params import Params
from quantpipe.variants import integer_variant_name, variant_name


def expected_variants(params: Params) -> list[str]:
    """The derived variants ``params.yaml`` asks for, in report order."""
    return (
        [variant_name(b) for b in sorted(params.quantize.bits)]
        + [integer_variant_name(b) for b in sorted(params.integer.bits)]
        + list(params.quantize.casts)
    )


def evaluate_model(
    model: Model,
    X: np.ndarray,
    y: np.ndarray,
    reference: np.ndarray | None,
    file_bytes: int,
) -> tuple[dict[str, Any], np.ndarray]:
    """The report of one variant, and its predictions.

    Parameters
    ----------
    model : LinearModel or IntegerModel
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
    reference : ndarray of shape (n_samples,) or None
        The float model's predictions on ``X``; None for the float model itself.
    file_bytes : int
        Size of the model file on disk.

    Returns
    -------
    report : dict
        ``bits``, ``accuracy``, ``fidelity`` (if ``reference`` is given; for an
        integer-only model with ``saturated_rows``, the rows clipped to the calibrated
        input range) and ``size``.
    predictions : ndarray of shape (n_samples,)
    """
    pred = model.predict(X)
    report: dict[str, Any] = {"bits": model.bits, "accuracy": accuracy(y, pred)}
    if reference is not None:
        report["fidelity"] = fidelity(reference, pred)
        if isinstance(model, IntegerModel):
            report["fidelity"]["saturated_rows"] = model.saturated_rows(X)
    report["size"] = {"param_bytes": model.param_bytes, "file_bytes": file_bytes}
    return report, pred
