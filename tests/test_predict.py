"""The numpy-only predictor and the batch command."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from quantpipe import batch as predict
from quantpipe.data import FEATURE_NAMES
from quantpipe.errors import InputError, ModelFileError, UnknownModelError
from quantpipe.registry import ModelRegistry, check_features
from tests.conftest import REPO_ROOT
from tests.models import rows, write_models

HEADER = ",".join(FEATURE_NAMES)


@pytest.fixture
def models(tmp_path):
    return write_models(tmp_path / "models")


def csv(X, header=True):
    lines = [HEADER] if header else []
    lines += [",".join(repr(v) for v in row) for row in X.tolist()]
    return "\n".join(lines) + "\n"


def run_predict(models, args, stdin, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    status = predict.main(["--models-dir", str(models), *args])
    out = capsys.readouterr()
    return status, out.out, out.err


def test_registry_loads_every_model_in_order(models):
    registry = ModelRegistry.from_directory(models)
    assert list(registry) == ["fp64", "q8", "q16"]
    assert registry.feature_names == FEATURE_NAMES
    with pytest.raises(UnknownModelError, match=r"unknown model 'q4'; available: fp64, q8, q16"):
        registry.get("q4")


def test_registry_orders_fp64_then_widths_then_integer_then_casts(tmp_path):
    from quantpipe.modelfile import cast_model_arrays, integer_model_arrays, save_model
    from quantpipe.quant.casts import cast_values
    from quantpipe.quant.integer import quantize_integer
    from tests.models import COEF, INTERCEPT

    directory = write_models(tmp_path / "models", bits=(16, 4, 8))
    quantized = directory / "quantized"
    for dtype in ("bfloat16", "float16", "float32"):
        stored, _ = cast_values(np.append(COEF, INTERCEPT), dtype)
        arrays = cast_model_arrays(stored[:-1], stored[-1:], dtype, FEATURE_NAMES, {})
        save_model(quantized / f"{dtype}.npz", arrays)
    for bits in (8, 4):
        model = quantize_integer(COEF, INTERCEPT, rows(200), bits=bits)
        arrays = integer_model_arrays(model, f"q{bits}i", FEATURE_NAMES, {})
        save_model(quantized / f"q{bits}i.npz", arrays)
    registry = ModelRegistry.from_directory(directory)
    assert list(registry) == [
        "fp64", "q4", "q8", "q16", "q4i", "q8i", "float32", "float16", "bfloat16"
    ]  # fmt: skip


def test_every_model_predicts_into_the_out_given(tmp_path):
    from quantpipe.errors import PredictionError
    from quantpipe.modelfile import integer_model_arrays, save_model
    from quantpipe.quant.integer import quantize_integer
    from tests.models import COEF, INTERCEPT

    directory = write_models(tmp_path / "models")
    model = quantize_integer(COEF, INTERCEPT, rows(200), bits=8)
    save_model(
        directory / "quantized" / "q8i.npz", integer_model_arrays(model, "q8i", FEATURE_NAMES, {})
    )
    registry = ModelRegistry.from_directory(directory)
    X, out = rows(50), np.empty(50)
    for name in ("fp64", "q8", "q16", "q8i"):
        out[:] = np.nan
        assert registry.get(name).predict(X, out=out) is out
        assert_array_equal(out, registry.get(name).predict(X))
    X[7, [0, 3]] = 1.7e308  # 0.44 and 0.78 of it add past the largest double: refused as ever
    with pytest.raises(PredictionError, match=r"^row 7: the prediction is inf, not a finite"):
        registry.get("fp64").predict(X, out=out)


def test_registry_of_an_empty_directory(tmp_path):
    with pytest.raises(ModelFileError, match=r"no model files \(fp64.npz, quantized/\*.npz\)"):
        ModelRegistry.from_directory(tmp_path)


def test_registry_refuses_a_renamed_model_file(models):
    (models / "quantized" / "q8.npz").rename(models / "quantized" / "q4.npz")
    with pytest.raises(ModelFileError, match=r"q4.npz: header says variant 'q8', file name"):
        ModelRegistry.from_directory(models)


def test_registry_refuses_a_corrupt_model_file(models):
    (models / "quantized" / "q16.npz").write_bytes(b"truncated")
    with pytest.raises(ModelFileError, match=r"q16.npz: corrupt or truncated"):
        ModelRegistry.from_directory(models)


@pytest.mark.parametrize(
    ("X", "message"),
    [
        (np.zeros((2, 7)), r"expected rows of 8 values, got shape \[2, 7\]"),
        (np.zeros(8), r"expected rows of 8 values, got shape \[8\]"),
        (np.array([["a"] * 8]), r"expected real numbers, got <U1"),
        (np.ones((2, 8), dtype=bool), r"expected real numbers, got bool"),
        (np.array([[0.0] * 7 + [np.inf]]), r"row 0, column 7: inf is not a finite number"),
    ],
)
def test_check_features(X, message):
    with pytest.raises(InputError, match=message):
        check_features(X, 8)


@pytest.mark.parametrize("header", [True, False])
def test_csv_predictions_equal_the_model_bit_for_bit(models, capsys, monkeypatch, header):
    X = rows(300)
    status, out, err = run_predict(
        models, ["--model", "q8", "--chunk-rows", "7"], csv(X, header), capsys, monkeypatch
    )
    assert status == 0, err
    got = np.array([float(line) for line in out.splitlines()])
    expected = ModelRegistry.from_directory(models).get("q8").predict(X)
    assert_array_equal(got, expected)


def test_jsonl_lists_and_objects(models, capsys, monkeypatch):
    X = rows(5)
    lines = [json.dumps(r) for r in X[:3].tolist()]
    lines += [json.dumps(dict(zip(FEATURE_NAMES, r, strict=True))) for r in X[3:].tolist()]
    status, out, err = run_predict(
        models, ["--model", "fp64"], "\n".join(lines) + "\n", capsys, monkeypatch
    )
    assert status == 0, err
    expected = ModelRegistry.from_directory(models).get("fp64").predict(X)
    assert_array_equal([float(v) for v in out.split()], expected)


def _bad_csv(line):
    good = ",".join(["1.0"] * 8)
    return f"{HEADER}\n{good}\n{good}\n{line}\n{good}\n"


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        (_bad_csv(",".join(["1.0"] * 7)), "error: line 4: 7 values, expected 8 (MedInc,"),
        (_bad_csv(",".join(["1.0"] * 9)), "error: line 4: 9 values, expected 8"),
        (_bad_csv("1.0,x1,1,1,1,1,1,1"), "error: line 4: HouseAge = 'x1' is not a number"),
        (_bad_csv("1,1,1,1,1,1,1,nan"), "error: line 4: Longitude = nan is not finite"),
        (_bad_csv("1,1,1,inf,1,1,1,1"), "error: line 4: AveBedrms = inf is not finite"),
        (_bad_csv("1,1,,1,1,1,1,1"), "error: line 4: AveRooms is missing"),
        (_bad_csv("1,1,1,1,1,1,1," + "9" * 400), "error: line 4: Longitude = 99999"),
        ("", "error: the input is empty: no rows\n"),
        ("\n\n", "error: the input is empty: no rows\n"),
        (HEADER + "\n", "error: the input has a header but no rows\n"),
        ("a,b\n", "error: line 1: columns are ['a', 'b']; expected the features ['MedInc',"),
        ("1,2\n", "error: line 1: 2 values, expected 8 (MedInc,HouseAge,"),
        (HEADER + ",MedInc\n", "error: line 1: columns are ['MedInc', 'HouseAge', 'AveRooms',"),
        ("[" * 5000 + "]" * 5000 + "\n", "error: line 1: JSON nested too deeply"),
        ("[1,2,3,4,5,6,7," + "9" * 400 + "]\n", "error: line 1: Longitude = 99999"),
        ("[1, 2]\n", "error: line 1: expected a list of 8 numbers or an object keyed by MedInc"),
        ("[1,2,3,4,5,6,7,true]\n", "error: line 1: Longitude = True is not a number"),
        ("[1,2,3,4,5,6,7,[[[[[1]]]]]]\n", "error: line 1: Longitude = [[[[...]]]] is not a number"),
        ('{"MedInc": 1}\n', "error: line 1: keys are ['MedInc'], expected ['MedInc', 'HouseAge'"),
        ("\xff\n", "error: line 1: columns are"),
        ("[1,2,3,4,5,6,7,8]\n[1,2\n", "error: line 2: not valid JSON (Expecting"),
        ("[1,2,3,4,5,6,7,NaN]\n", "error: line 1: Longitude = nan is not finite"),
    ],
)
def test_bad_rows_stop_with_the_line_and_the_reason(models, capsys, monkeypatch, stdin, message):
    status, _, err = run_predict(
        models, ["--model", "q8", "--chunk-rows", "2"], stdin, capsys, monkeypatch
    )
    assert status == 1
    assert err.startswith(message), err
    assert err.count("\n") == 1


def test_a_failed_run_leaves_no_output_file(models, tmp_path, capsys, monkeypatch):
    out = tmp_path / "preds.csv"
    status, _, err = run_predict(
        models,
        ["--model", "q8", "--output", str(out), "--chunk-rows", "1"],
        _bad_csv("1,2"),
        capsys,
        monkeypatch,
    )
    assert status == 1
    assert err.startswith("error: line 4: 2 values, expected 8")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [models]


def test_output_file(models, tmp_path, capsys, monkeypatch):
    out = tmp_path / "preds.csv"
    (tmp_path / "rows.csv").write_text(csv(rows(10)))
    status, stdout, err = run_predict(
        models,
        ["--model", "q16", "--input", str(tmp_path / "rows.csv"), "--output", str(out)],
        "",
        capsys,
        monkeypatch,
    )
    assert status == 0, err
    assert stdout == ""
    assert len(out.read_text().splitlines()) == 10


def test_unknown_model_and_missing_input(models, capsys, monkeypatch):
    status, _, err = run_predict(models, ["--model", "q3"], "", capsys, monkeypatch)
    assert (status, err) == (1, "error: unknown model 'q3'; available: fp64, q8, q16\n")
    status, _, err = run_predict(
        models, ["--model", "q8", "--input", "/nonexistent.csv"], "", capsys, monkeypatch
    )
    assert (status, err) == (
        1,
        "error: /nonexistent.csv: cannot read (No such file or directory)\n",
    )


def test_console_command_streams_stdin_to_stdout(models):
    X = rows(20)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from quantpipe.cli import main; sys.exit(main())",
            "predict",
            "--model",
            "q8",
            "--models-dir",
            str(models),
            "-q",
        ],
        input=csv(X),
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    expected = ModelRegistry.from_directory(models).get("q8").predict(X)
    assert_array_equal([float(v) for v in result.stdout.split()], expected)


def _repr_lines(values) -> str:
    return "".join(f"{v!r}\n" for v in np.asarray(values, dtype=np.float64).tolist())


@pytest.mark.parametrize(
    "values",
    [
        [2.0, 0.1, 4.526, -0.0, 0.0, 1e-4, 9999999999999998.0, 123.456789012345678],
        [1e-5, 2.5],  # exponent notation: repr's, not orjson's (1e-05, not 1e-5)
        [1e16, 3.0],  # likewise (1e+16, not 1e16)
        [-2.2250738585072014e-308, 1.7976931348623157e308],
        [],
    ],
)
def test_predictions_are_written_as_repr_writes_them(values):
    assert predict.format_predictions(np.asarray(values, dtype=np.float64)) == _repr_lines(values)


def test_predictions_text_is_repr_for_random_floats():
    rng = np.random.default_rng(0)
    for scale in (1.0, 1e-3, 1e3, 1e12):
        values = rng.normal(2.0, 1.0, 2000) * scale
        assert predict.format_predictions(values) == _repr_lines(values)
    bits = np.frombuffer(rng.bytes(8 * 4000), dtype=np.float64)
    finite = bits[np.isfinite(bits)]
    assert predict.format_predictions(finite) == _repr_lines(finite)


def test_without_orjson_the_same_bytes(monkeypatch):
    values = np.array([2.5, 0.1, 3.25])
    monkeypatch.setattr(predict, "orjson", None)
    assert predict.format_predictions(values) == "2.5\n0.1\n3.25\n"


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_worker_processes_change_no_prediction_and_no_error(models, capsys, monkeypatch, jobs):
    X = rows(50)
    args = ["--model", "q8", "--chunk-rows", "7", "--jobs", jobs]
    status, out, _ = run_predict(models, args, csv(X, True), capsys, monkeypatch)
    assert status == 0
    got = np.array([float(line) for line in out.splitlines()])
    assert_array_equal(got, ModelRegistry.from_directory(models).get("q8").predict(X))
    bad = csv(X, True).splitlines(keepends=True)
    bad[40] = "1,2\n"
    status, _, err = run_predict(models, args, "".join(bad), capsys, monkeypatch)
    assert status == 1
    assert err.startswith("error: line 41: 2 values, expected 8 (MedInc,")
    assert err.count("\n") == 1


def test_jobs_must_be_positive(models, capsys, monkeypatch):
    status, _, err = run_predict(models, ["--model", "q8", "--jobs", "0"], "", capsys, monkeypatch)
    assert (status, err) == (1, "error: --jobs 0 is not allowed; use a positive integer\n")
