"""Known-answer tests for the evaluation metrics and the comparison."""

from __future__ import annotations

import numpy as np
import pytest

from quantpipe.metrics import (
    accuracy,
    compare,
    fidelity,
    markdown_table,
    predictions_csv,
    width_points,
)


def test_accuracy_known_answer():
    got = accuracy(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]))
    # residuals 0, 0, 2: mse 4/3, mae 2/3, max 2; r2 = 1 - 4 / 2.
    assert got == {
        "r2": -1.0,
        "mse": pytest.approx(4 / 3),
        "mae": pytest.approx(2 / 3),
        "max_error": 2.0,
    }


def test_fidelity_known_answer():
    ref = np.zeros(100)
    pred = np.zeros(100)
    pred[:10] = 0.1
    pred[99] = -2.0
    got = fidelity(ref, pred)
    assert got["rmse"] == pytest.approx(np.sqrt((10 * 0.01 + 4.0) / 100))
    assert got["max_abs"] == 2.0
    assert got["p99_abs"] == pytest.approx(0.1 + 0.01 * (2.0 - 0.1), rel=1e-9)


def test_fidelity_of_identical_predictions_is_zero():
    x = np.linspace(-1, 1, 7)
    assert fidelity(x, x) == {"rmse": 0.0, "p99_abs": 0.0, "max_abs": 0.0}


def test_fidelity_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"need two non-empty 1-D arrays of one shape, got \(3,\)"):
        fidelity(np.zeros(3), np.zeros(4))


def _report(bits, r2, fid=None):
    report = {
        "bits": bits,
        "accuracy": {"r2": r2, "mse": 1 - r2, "mae": 0.1, "max_error": 1.0},
        "size": {"param_bytes": bits, "file_bytes": 1000 + bits},
    }
    if fid is not None:
        report["fidelity"] = {"rmse": fid, "p99_abs": 2 * fid, "max_abs": 3 * fid}
    return report


def test_compare_and_markdown_table():
    reports = {"fp64": _report(64, 0.6), "q8": _report(8, 0.59, 0.01)}
    got = compare(reports)
    assert set(got) == {"q8"}
    assert got["q8"]["r2_delta"] == pytest.approx(-0.01)
    assert got["q8"]["pred_rmse"] == 0.01
    assert got["q8"]["param_bytes_ratio"] == 0.125
    table = markdown_table(reports).splitlines()
    assert table[2] == "| fp64 | 64 | 0.6000 | — | 0.4000 | — | — | — | 64 | 1064 |"
    assert table[3] == (
        "| q8 | 8 | 0.5900 | -0.0100 | 0.4100 | 1.00e-02 | 2.00e-02 | 3.00e-02 | 8 | 1008 |"
    )


def test_plot_csv_has_one_column_of_values_per_file():
    y = np.array([1.0, 2.0])
    predictions = {"fp64": np.array([1.5, 2.0]), "q8": np.array([1.25, 2.5])}
    assert predictions_csv(y, predictions, "predicted") == (
        "variant,actual,predicted\nfp64,1,1.5\nfp64,2,2\nq8,1,1.25\nq8,2,2.5\n"
    )
    assert predictions_csv(y, predictions, "residual") == (
        "variant,actual,residual\nfp64,1,-0.5\nfp64,2,0\nq8,1,-0.25\nq8,2,-0.5\n"
    )
    # the reference is left out of the deltas: they are zero by definition
    assert (
        predictions_csv(y, predictions, "delta") == "variant,actual,delta\nq8,1,-0.25\nq8,2,0.5\n"
    )


def test_width_points_are_the_quantized_variants_by_width():
    def report(bits, rmse=None):
        r = {"bits": bits, "size": {"param_bytes": bits * 9}}
        if rmse is not None:
            r["fidelity"] = {"rmse": rmse, "p99_abs": 2 * rmse}
        return r

    reports = {"fp64": report(64), "q16": report(16, 0.001), "q8": report(8, 0.1)}
    assert width_points(reports, ("pred_rmse", "pred_p99_abs")) == [
        {"variant": "q8", "bits": 8, "pred_rmse": 0.1, "pred_p99_abs": 0.2},
        {"variant": "q16", "bits": 16, "pred_rmse": 0.001, "pred_p99_abs": 0.002},
    ]
    assert width_points(reports, ("param_bytes",)) == [
        {"variant": "q8", "bits": 8, "param_bytes": 72},
        {"variant": "q16", "bits": 16, "param_bytes": 144},
    ]
