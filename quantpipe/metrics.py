"""Evaluation metrics: pure functions of prediction arrays.

Accuracy (``r2``, ``mse``, ``mae``, ``max_error``) is measured against the true targets.
Fidelity (``rmse``, ``p99_abs``, ``max_abs`` of the prediction difference) is measured
against the float model's predictions on the same rows: it isolates what quantization did,
which R² alone hides.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from quantpipe import exact, numerics

#: Significant digits kept in metrics files: far below the metrics' own noise, and stable
#: across runs so that ``git diff`` of the metrics shows real changes only.
SIGNIFICANT_DIGITS = 10


def _round(value: float) -> float:
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"need two non-empty 1-D arrays of one shape, got {a.shape} and {b.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("metrics of non-finite values (NaN or inf)")
    return a, b


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Regression accuracy: R², MSE, MAE and the largest error.

    As scikit-learn's ``r2_score``, ``mean_squared_error``, ``mean_absolute_error`` and
    ``max_error`` define them.

    Every sum is correctly rounded (:func:`quantpipe.numerics.sum_exact`), so the figures are
    the same on every machine.

    Parameters
    ----------
    y_true, y_pred : ndarray of shape (n_samples,)

    Returns
    -------
    dict
        ``r2``, ``mse``, ``mae``, ``max_error``. ``r2`` is 1.0 for a perfect fit of a
        constant target and 0.0 for an imperfect one (scikit-learn's ``force_finite``).

    Raises
    ------
    ValueError
        If the shapes differ, are empty, or a value is not finite.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    n = y_true.size
    err = y_true - y_pred
    ss_res = numerics.sum_exact(err * err)
    dev = y_true - exact.mean(y_true)
    ss_tot = numerics.sum_exact(dev * dev)
    # a constant target (ss_tot == 0) scores 1.0 if fitted exactly, else 0.0 (force_finite)
    r2 = 1.0 - ss_res / ss_tot if ss_tot else float(ss_res == 0)
    return {
        "r2": _round(r2),
        "mse": _round(ss_res / n),
        "mae": _round(numerics.sum_exact(np.abs(err)) / n),
        "max_error": _round(float(np.max(np.abs(err)))),
    }


def fidelity(reference: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """How far predictions are from a reference model's on the same rows.

    Parameters
    ----------
    reference, y_pred : ndarray of shape (n_samples,)

    Returns
    -------
    dict
        ``rmse``, ``p99_abs`` and ``max_abs`` of ``y_pred - reference``.

    Raises
    ------
    ValueError
        If the shapes differ, are empty, or a value is not finite.
    """
    reference, y_pred = _pair(reference, y_pred)
    delta = np.abs(y_pred - reference)
    return {
        "rmse": _round(math.sqrt(numerics.sum_exact(delta * delta) / delta.size)),
        "p99_abs": _round(float(np.percentile(delta, 99))),
        "max_abs": _round(float(delta.max())),
    }


def compare(
    reports: dict[str, dict[str, Any]], reference: str = "fp64"
) -> dict[str, dict[str, Any]]:
    """Each variant against the reference, for ``metrics/compare.json``.

    Parameters
    ----------
    reports : dict
        Variant name to its evaluation report (``accuracy``, ``size`` and, for quantized
        variants, ``fidelity`` sections), the reference among them.
    reference : str

    Returns
    -------
    dict
        For every variant but the reference: the change in ``r2`` and ``mse``, the fidelity
        figures, the bytes and the size ratio to the reference.
    """
    ref = reports[reference]
    out: dict[str, dict[str, Any]] = {}
    for name, report in reports.items():
        if name == reference:
            continue
        out[name] = {
            "bits": report["bits"],
            "r2_delta": _round(report["accuracy"]["r2"] - ref["accuracy"]["r2"]),
            "mse_delta": _round(report["accuracy"]["mse"] - ref["accuracy"]["mse"]),
            **{f"pred_{k}": v for k, v in report["fidelity"].items()},
            "param_bytes": report["size"]["param_bytes"],
            "param_bytes_ratio": _round(report["size"]["param_bytes"] / ref["size"]["param_bytes"]),
        }
    return out


def width_points(reports: dict[str, dict[str, Any]], fields: Sequence[str]) -> list[dict[str, Any]]:
    """One record per quantized variant, by width, for a ``dvc plots`` of ``fields``.

    Parameters
    ----------
    reports : dict
        As for :func:`compare`.
    fields : sequence of str
        Any of ``pred_rmse``, ``pred_p99_abs`` (fidelity) and ``param_bytes``.

    Returns
    -------
    list of dict
        ``variant``, ``bits`` and ``fields``, sorted by width.
    """
    values = {
        "pred_rmse": lambda r: r["fidelity"]["rmse"],
        "pred_p99_abs": lambda r: r["fidelity"]["p99_abs"],
        "param_bytes": lambda r: r["size"]["param_bytes"],
    }
    points = [
        {"variant": name, "bits": r["bits"], **{f: values[f](r) for f in fields}}
        for name, r in reports.items()
        if "fidelity" in r
    ]
    return sorted(points, key=lambda p: p["bits"])


#: Test rows kept for the prediction plots: enough to see the shape, small enough for git.
PLOT_ROWS = 500


def predictions_csv(
    y_true: np.ndarray,
    predictions: dict[str, np.ndarray],
    column: str,
    reference: str = "fp64",
) -> str:
    """Long-format CSV for one ``dvc plots``: ``variant,actual,<column>``.

    ``column`` is ``predicted``, ``residual`` (actual minus predicted) or ``delta`` (the
    variant's prediction minus ``reference``'s for the same row: what quantization changed,
    which an overlay of every variant's predictions cannot show; ``reference`` itself is
    left out).

    Parameters
    ----------
    y_true : ndarray of shape (n_samples,)
    predictions : dict of str to ndarray of shape (n_samples,)
        Each variant's predictions on the same rows, ``reference`` among them.
    column : {"predicted", "residual", "delta"}
    reference : str

    Returns
    -------
    str
        The first :data:`PLOT_ROWS` rows of every variant, values to 6 significant digits.
    """
    actual = y_true[:PLOT_ROWS]
    base = predictions[reference][:PLOT_ROWS]
    value = {
        "predicted": lambda a, p, b: p,
        "residual": lambda a, p, b: a - p,
        "delta": lambda a, p, b: p - b,
    }[column]
    lines = [f"variant,actual,{column}"]
    for name, pred in predictions.items():
        if column == "delta" and name == reference:
            continue
        lines += [
            f"{name},{a:.6g},{value(a, p, b):.6g}"
            for a, p, b in zip(actual, pred[:PLOT_ROWS], base, strict=True)
        ]
    return "\n".join(lines) + "\n"


def markdown_table(reports: dict[str, dict[str, Any]], reference: str = "fp64") -> str:
    """A markdown table of every variant against the reference (``metrics/compare.md``).

    Parameters
    ----------
    reports : dict
        As for :func:`compare`, in the order the rows should appear.
    reference : str

    Returns
    -------
    str
        The table, ending with a newline.
    """
    ref_r2 = reports[reference]["accuracy"]["r2"]
    lines = [
        "| variant | bits | R² | ΔR² | MSE | RMS Δpred | p99 \\|Δpred\\| | max \\|Δpred\\| "
        "| param bytes | file bytes |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, report in reports.items():
        acc, size = report["accuracy"], report["size"]
        fid = report.get("fidelity")
        cells = [
            name,
            str(report["bits"]),
            f"{acc['r2']:.4f}",
            "—" if name == reference else f"{acc['r2'] - ref_r2:+.4f}",
            f"{acc['mse']:.4f}",
            *(
                ["—"] * 3
                if fid is None
                else [f"{fid[k]:.2e}" for k in ("rmse", "p99_abs", "max_abs")]
            ),
            str(size["param_bytes"]),
            str(size["file_bytes"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
