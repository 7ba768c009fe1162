"""Predictions and metrics of the digits variants: what evaluate reports and serving answers.

:func:`predict` is the one inference entry point, for the evaluate stage, the server and the
latency stage alike: a float network's float32 logits, or a quantized network's integer
logits, their argmax (the first on a tie), and class probabilities (a softmax, float32).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from quantpipe.mnist.data import N_CLASSES
from quantpipe.mnist.network import FloatNet, float_logits
from quantpipe.mnist.qnet import QuantNet, integer_logits

DigitsNet = FloatNet | QuantNet
#: Digits of the rounded figures in the metrics files.
DIGITS = 10


def logits(net: DigitsNet, images: np.ndarray) -> tuple[np.ndarray, float]:
    """The exact logits of ``images``, and the scale that turns them into real numbers.

    Returns
    -------
    logits : ndarray of shape (n, 10)
        float32 for a float network, int64 for a quantized one.
    scale : float
        1.0, or the quantized network's logit scale.
    """
    if isinstance(net, FloatNet):
        return float_logits(net, images), 1.0
    return integer_logits(net, images), net.layers[2].output_scale


def softmax(scores: np.ndarray, scale: float) -> np.ndarray:
    """Class probabilities from logits at ``scale``: shape (n, 10), float32, rows sum to 1."""
    z = scores.astype(np.float64) * scale
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def predict(net: DigitsNet, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Digits and class probabilities of uint8 images (n, 28, 28).

    Returns
    -------
    digits : ndarray of shape (n,), int64
    probabilities : ndarray of shape (n, 10), float32
    """
    scores, scale = logits(net, images)
    return scores.argmax(axis=1).astype(np.int64), softmax(scores, scale)


def predict_digits(net: DigitsNet, images: np.ndarray) -> np.ndarray:
    """The predicted digits alone (no softmax): shape (n,), int64."""
    return logits(net, images)[0].argmax(axis=1).astype(np.int64)


def confusion(labels: np.ndarray, digits: np.ndarray) -> np.ndarray:
    """Counts of (true, predicted) digit pairs: shape (10, 10), int64."""
    return np.bincount(
        labels.astype(np.int64) * N_CLASSES + digits, minlength=N_CLASSES**2
    ).reshape(N_CLASSES, N_CLASSES)


def _share(count: int, total: int) -> float:
    return round(count / total, DIGITS) if total else math.nan


def report(
    net: DigitsNet,
    digits: np.ndarray,
    labels: np.ndarray,
    reference: np.ndarray | None,
    param_bytes: int,
    file_bytes: int,
) -> dict[str, Any]:
    """One variant's metrics.

    Parameters
    ----------
    net : FloatNet or QuantNet
    digits : ndarray of shape (n,)
        Its predictions on the test images.
    labels : ndarray of shape (n,)
    reference : ndarray of shape (n,) or None
        fp32's predictions; None for fp32 itself (its agreement is 1).
    param_bytes, file_bytes : int

    Returns
    -------
    dict
        ``bits`` (32 for fp32), ``accuracy``, ``agreement``, ``errors``, ``param_count``,
        ``param_bytes``, ``file_bytes``.
    """
    n = len(labels)
    agree = n if reference is None else int(np.count_nonzero(digits == reference))
    correct = int(np.count_nonzero(digits == labels))
    return {
        "bits": 32 if isinstance(net, FloatNet) else net.bits,
        "accuracy": _share(correct, n),
        "agreement": _share(agree, n),
        "errors": n - correct,
        "param_count": net.shapes.param_count,
        "param_bytes": param_bytes,
        "file_bytes": file_bytes,
    }


def compare(
    reports: dict[str, dict[str, Any]], reference: str = "fp32"
) -> dict[str, dict[str, Any]]:
    """Each quantized variant against fp32, from the same run.

    Returns
    -------
    dict
        Per variant: ``accuracy_delta`` (its accuracy minus fp32's), ``agreement``,
        ``param_bytes_ratio`` (its parameter bytes over fp32's).
    """
    base = reports[reference]
    return {
        name: {
            "bits": r["bits"],
            "accuracy_delta": round(r["accuracy"] - base["accuracy"], DIGITS),
            "agreement": r["agreement"],
            "param_bytes_ratio": round(r["param_bytes"] / base["param_bytes"], DIGITS),
        }
        for name, r in reports.items()
        if name != reference
    }


def markdown_table(reports: dict[str, dict[str, Any]], reference: str = "fp32") -> str:
    """Every variant against fp32, as a markdown table (``metrics/mnist/compare.md``).

    Parameters
    ----------
    reports : dict
        Variant name to :func:`report`, in the order of the rows, ``reference`` among them.
    reference : str
    """
    base = reports[reference]
    lines = [
        "| variant | bits | accuracy | Δ accuracy | agreement | param bytes | of fp32's "
        "| file bytes |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in reports.items():
        delta = "—" if name == reference else f"{100 * (r['accuracy'] - base['accuracy']):+.2f} pts"
        cells = [
            name,
            str(r["bits"]),
            f"{100 * r['accuracy']:.2f} %",
            delta,
            f"{100 * r['agreement']:.2f} %",
            str(r["param_bytes"]),
            f"{100 * r['param_bytes'] / base['param_bytes']:.1f} %",
            str(r["file_bytes"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def width_points(reports: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The accuracy-by-width plot's data: one point per variant, by width."""
    points = [
        {
            "variant": name,
            "bits": r["bits"],
            "accuracy": r["accuracy"],
            "agreement": r["agreement"],
            "param_bytes": r["param_bytes"],
        }
        for name, r in reports.items()
    ]
    return sorted(points, key=lambda p: p["bits"])


def confusion_csv(labels: np.ndarray, digits: np.ndarray) -> str:
    """One ``actual,predicted`` row per test image, for DVC's confusion template."""
    rows = [f"{a},{p}" for a, p in zip(labels.tolist(), digits.tolist(), strict=True)]
    return "actual,predicted\n" + "\n".join(rows) + "\n"
