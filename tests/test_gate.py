"""The accuracy gate: known answers, the table, and the command's exit."""

from __future__ import annotations

import json

import pytest

from quantpipe import gate
from quantpipe.params import GateParams
from tests.conftest import REPO_ROOT

COMPARE = {
    "q8": {"bits": 8, "r2_delta": -0.001, "pred_rmse": 0.005, "pred_p99_abs": 0.01},
    "q4": {"bits": 4, "r2_delta": -0.03, "pred_rmse": 0.12, "pred_p99_abs": 0.3},
    "q16": {"bits": 16, "r2_delta": 0.0005, "pred_rmse": 0.002, "pred_p99_abs": 0.004},
    "float16": {"bits": 16, "r2_delta": 0.0, "pred_rmse": 0.02, "pred_p99_abs": 0.02},
}
BUDGET = GateParams(
    budgets=(
        ("q8", (("max_r2_drop", 0.002), ("max_pred_rmse", 0.01))),
        ("q4", (("max_r2_drop", 0.002),)),
        ("q16", (("max_pred_rmse", 0.001), ("max_pred_p99", 0.01))),
        ("q2", (("max_pred_rmse", 0.5),)),  # not built: ignored
    )
)


def test_check_gate_known_answer():
    checks = {(c.variant, c.metric): c for c in gate.check_gate(COMPARE, BUDGET)}
    assert checks["q8", "R² drop"].value == 0.001
    assert checks["q8", "R² drop"].passed
    assert checks["q8", "RMS Δpred"].passed
    assert not checks["q4", "R² drop"].passed
    assert ("q4", "RMS Δpred") not in checks  # q4 has no RMS budget
    assert not checks["q16", "RMS Δpred"].passed
    assert checks["q16", "p99 |Δpred|"].passed
    assert checks["float16", "RMS Δpred"].limit is None  # not gated: reported only
    assert checks["float16", "RMS Δpred"].passed
    assert {c.variant for c in checks.values()} == set(COMPARE)


def test_an_r2_gain_is_no_drop():
    budget = GateParams(budgets=(("q16", (("max_r2_drop", 0.0),)),))
    (check,) = gate.check_gate({"q16": COMPARE["q16"]}, budget)
    assert check.value == -0.0005
    assert check.passed


def test_markdown_marks_failures_and_escapes_pipes():
    table = gate.markdown(gate.check_gate(COMPARE, BUDGET)).splitlines()
    assert table[0] == "| variant | check | value | budget | |"
    assert "| float16 | RMS Δpred | 0.02 | none | pass |" in table
    assert "| q16 | RMS Δpred | 0.002 | 0.001 | **FAIL** |" in table
    assert "| q16 | p99 \\|Δpred\\| | 0.004 | 0.01 | pass |" in table


MNIST_FP32 = {"param_count": 12810, "accuracy": 0.983}
MNIST_COMPARE = {"q8": {"accuracy_delta": -0.001, "agreement": 0.998}}


def _run(tmp_path, monkeypatch, capsys, compare, fp32=MNIST_FP32, mnist=MNIST_COMPARE):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text((REPO_ROOT / "params.yaml").read_text())
    if compare is not None:
        (tmp_path / "compare.json").write_text(compare)
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "fp32.json").write_text(json.dumps(fp32))
    (tmp_path / "mnist.json").write_text(json.dumps(mnist))
    argv = [
        "--compare",
        "compare.json",
        "--mnist-eval-dir",
        "eval",
        "--mnist-compare",
        "mnist.json",
    ]
    status = gate.main(argv)
    return status, capsys.readouterr()


def test_gate_command_fails_with_one_line_naming_each_excess(tmp_path, monkeypatch, capsys):
    # the committed budget: q8 RMS <= 0.005, q16 RMS <= 0.001
    status, out = _run(tmp_path, monkeypatch, capsys, json.dumps(COMPARE))
    assert status == 1
    assert "| q16 | RMS Δpred | 0.002 | 0.001 | **FAIL** |" in out.out
    assert out.err == (
        "error: accuracy budget exceeded: q4 RMS Δpred 0.12 > 0.06; q16 RMS Δpred 0.002 > "
        "0.001 (budget: gate and mnist.gate in params.yaml)\n"
    )


@pytest.mark.parametrize(
    ("fp32", "mnist", "message"),
    [
        (
            {"param_count": 25000, "accuracy": 0.99},
            MNIST_COMPARE,
            "mnist fp32 parameters 25000 >= 25000",
        ),
        (
            {"param_count": 9000, "accuracy": 0.9799},
            MNIST_COMPARE,
            "mnist fp32 accuracy 0.9799 < 0.98",
        ),
        (
            MNIST_FP32,
            {"q8": {"accuracy_delta": -0.0031, "agreement": 0.999}},
            "mnist q8 accuracy drop 0.0031 > 0.003",
        ),
        (
            MNIST_FP32,
            {"q8": {"accuracy_delta": 0.0, "agreement": 0.9949}},
            "mnist q8 agreement 0.9949 < 0.995",
        ),
    ],
)
def test_the_digits_gates_fail_ci(tmp_path, monkeypatch, capsys, fp32, mnist, message):
    """Fewer than 25,000 parameters, fp32 accuracy >= 0.98, q8's budget: each fails alone."""
    status, out = _run(
        tmp_path, monkeypatch, capsys, json.dumps({"q8": COMPARE["q8"]}), fp32, mnist
    )
    assert status == 1
    budget = "(budget: gate and mnist.gate in params.yaml)"
    assert out.err == f"error: accuracy budget exceeded: {message} {budget}\n"


def test_gate_command_passes(tmp_path, monkeypatch, capsys):
    status, out = _run(tmp_path, monkeypatch, capsys, json.dumps({"q8": COMPARE["q8"]}))
    assert status == 0
    assert out.err == ""
    assert out.out.count("pass") == 2 + 4  # q8's two, and the digits' four


@pytest.mark.parametrize(
    ("compare", "message"),
    [
        (None, "error: compare.json: not found; run `dvc repro` first\n"),
        ("{", "error: compare.json: not valid JSON (Expecting property name"),
    ],
)
def test_gate_command_without_metrics(tmp_path, monkeypatch, capsys, compare, message):
    status, out = _run(tmp_path, monkeypatch, capsys, compare)
    assert status == 1
    assert out.err.startswith(message)
