"""Atomic deterministic writers and the pickle-free model file format."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from quantpipe.errors import ModelFileError
from quantpipe.io import atomic_path, load_npz, save_npz, write_json
from quantpipe.modelfile import (
    cast_model_arrays,
    float_model_arrays,
    integer_model_arrays,
    load_model,
    model_from_arrays,
    param_bytes,
    quantized_model_arrays,
    save_model,
)
from quantpipe.quant.casts import cast_values
from quantpipe.quant.integer import quantize_integer
from quantpipe.quant.linear import quantize_linear

NAMES = ("a", "b", "c")
COEF = np.array([0.5, -2.0, 0.125])
MEAN = np.array([1.0, 2.0, 3.0])
STD = np.array([1.0, 0.5, 4.0])
SCHEME = {
    "scheme": "symmetric",
    "granularity": "per-tensor",
    "standardize": True,
    "bias_correction": True,
}


def quantized_arrays(bits=4, **kw):
    q = quantize_linear(COEF, 0.25, MEAN, STD, bits=bits, **kw)
    return q, quantized_model_arrays(q, f"q{bits}", NAMES, SCHEME, (MEAN, STD), {"x": 1})


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")

    def interrupted_write():
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        interrupted_write()
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def test_write_json_refuses_nan_and_leaves_no_file(tmp_path):
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        write_json(tmp_path / "m.json", {"r2": float("nan")})
    assert list(tmp_path.iterdir()) == []


def test_json_outputs_never_hold_negative_zero(tmp_path):
    data = {"delta": -0.0, "nested": [{"x": -0.0}, (-0.0, 1.5)], "keep": -2.5, "n": 0}
    write_json(tmp_path / "m.json", data)
    text = (tmp_path / "m.json").read_text()
    assert "-0.0" not in text
    expected = {"delta": 0.0, "nested": [{"x": 0.0}, [0.0, 1.5]], "keep": -2.5, "n": 0}
    assert json.loads(text) == expected
    assert str(json.loads(text)["delta"]) == "0.0"


def test_model_headers_never_hold_negative_zero(tmp_path):
    arrays = float_model_arrays(COEF, 0.25, NAMES, {"data": {"offset": -0.0}})
    assert b"-0.0" not in arrays["header"].tobytes()
    assert b'"offset":0.0' in arrays["header"].tobytes()


def test_save_npz_is_byte_for_byte_reproducible(tmp_path):
    arrays = {"x": np.arange(5.0), "n": np.array(["a", "bc"])}
    save_npz(tmp_path / "1.npz", arrays)
    save_npz(tmp_path / "2.npz", arrays)
    assert (tmp_path / "1.npz").read_bytes() == (tmp_path / "2.npz").read_bytes()
    loaded = load_npz(tmp_path / "1.npz", ModelFileError)
    assert_array_equal(loaded["x"], arrays["x"])
    assert list(loaded["n"]) == ["a", "bc"]


def test_save_npz_refuses_object_arrays(tmp_path):
    with pytest.raises(ValueError, match="Object arrays cannot be saved when allow_pickle=False"):
        save_npz(tmp_path / "o.npz", {"o": np.array([{}], dtype=object)})
    assert list(tmp_path.iterdir()) == []


def test_float_model_round_trip(tmp_path):
    arrays = float_model_arrays(COEF, 0.25, NAMES, {"data": {"seed": 1}})
    save_model(tmp_path / "fp64.npz", arrays)
    model = load_model(tmp_path / "fp64.npz")
    assert model.variant == "fp64"
    assert_array_equal(model.weights, COEF)
    assert model.intercept == 0.25
    assert model.param_bytes == 4 * 8 == param_bytes(arrays)
    assert model.header["feature_names"] == list(NAMES)
    assert model.header["params"] == {"data": {"seed": 1}}
    X = np.array([[1.0, 2.0, 3.0]])
    assert_allclose(model.predict(X), X @ COEF + 0.25)


@pytest.mark.parametrize("bits", [2, 3, 4, 7, 8, 9, 12, 16])
@pytest.mark.parametrize("per_channel", [False, True])
def test_quantized_model_round_trip_is_exact(tmp_path, bits, per_channel):
    q, arrays = quantized_arrays(bits, per_channel=per_channel)
    save_model(tmp_path / "q.npz", arrays)
    model = load_model(tmp_path / "q.npz")
    assert_array_equal(model.weights, q.weights())
    assert model.intercept == q.intercept
    header = model.header["quantization"]
    assert header["bits"] == bits
    assert header["train_std"] == list(STD)
    # honest bytes: packed codes, float32 scales, zero points, float64 intercept.
    k = 3 if per_channel else 1
    expected = -(-3 * bits // 8) + 3 * 4 + k * (1 if bits <= 8 else 2) + 8
    assert model.param_bytes == expected


def test_model_files_never_need_pickle(tmp_path):
    _, arrays = quantized_arrays()
    save_model(tmp_path / "q.npz", arrays)
    with np.load(tmp_path / "q.npz", allow_pickle=False) as archive:
        assert sorted(archive.files) == ["codes", "header", "intercept", "scale", "zero_point"]


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelFileError, match=r"q8.npz: not found; run `dvc repro` to build it"):
        load_model(tmp_path / "q8.npz")


def test_truncated_model_file(tmp_path):
    _, arrays = quantized_arrays()
    path = tmp_path / "q.npz"
    save_model(path, arrays)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(
        ModelFileError, match=r"q.npz: corrupt or truncated \(.*\); delete it and run `dvc repro`"
    ):
        load_model(path)


def test_garbage_model_file(tmp_path):
    path = tmp_path / "q.npz"
    path.write_bytes(b"not a zip at all")
    with pytest.raises(ModelFileError, match=r"corrupt or truncated"):
        load_model(path)


def _with_header(arrays, **changes):
    header = json.loads(arrays["header"].tobytes())
    header.update(changes)
    out = dict(arrays)
    out["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    return out


def test_unknown_format_version():
    _, arrays = quantized_arrays()
    with pytest.raises(
        ModelFileError, match=r"format version 2 is unknown; this quantpipe reads version 1"
    ):
        model_from_arrays(_with_header(arrays, format_version=2), "m.npz")


def test_unknown_format():
    _, arrays = quantized_arrays()
    with pytest.raises(ModelFileError, match=r"m.npz: format is not 'quantpipe-linear'"):
        model_from_arrays(_with_header(arrays, format="onnx"), "m.npz")


def test_unknown_kind():
    _, arrays = quantized_arrays()
    with pytest.raises(ModelFileError, match=r"unknown model kind 'ternary'"):
        model_from_arrays(_with_header(arrays, kind="ternary"), "m.npz")


def test_header_not_json():
    _, arrays = quantized_arrays()
    arrays = {**arrays, "header": np.frombuffer(b"{nope", dtype=np.uint8)}
    with pytest.raises(ModelFileError, match=r"header is not valid JSON"):
        model_from_arrays(arrays, "m.npz")


def test_no_header():
    _, arrays = quantized_arrays()
    del arrays["header"]
    with pytest.raises(ModelFileError, match=r"no header: not a quantpipe model file"):
        model_from_arrays(arrays, "m.npz")


def test_missing_member():
    _, arrays = quantized_arrays()
    del arrays["scale"]
    with pytest.raises(ModelFileError, match=r"members are \['codes', 'header', 'intercept'"):
        model_from_arrays(arrays, "m.npz")


def test_wrong_member_dtype():
    _, arrays = quantized_arrays()
    arrays["scale"] = arrays["scale"].astype(np.float64)
    with pytest.raises(ModelFileError, match=r"member 'scale' is float64\[3\], expected float32"):
        model_from_arrays(arrays, "m.npz")


def test_codes_of_the_wrong_length():
    _, arrays = quantized_arrays(bits=4)
    arrays["codes"] = arrays["codes"][:1]
    with pytest.raises(ModelFileError, match=r"member 'codes' is uint8\[1\], expected uint8\[2\]"):
        model_from_arrays(arrays, "m.npz")


def test_non_finite_parameters():
    arrays = float_model_arrays(np.array([1.0, np.inf, 0.0]), 0.0, NAMES, {})
    with pytest.raises(ModelFileError, match=r"parameters are not finite"):
        model_from_arrays(arrays, "m.npz")


def test_model_file_is_a_valid_zip_with_fixed_timestamps(tmp_path):
    _, arrays = quantized_arrays()
    save_model(tmp_path / "q.npz", arrays)
    with zipfile.ZipFile(tmp_path / "q.npz") as zf:
        assert {info.date_time for info in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}


@pytest.mark.parametrize(
    ("dtype", "nbytes", "bits"), [("float32", 16, 32), ("float16", 8, 16), ("bfloat16", 8, 16)]
)
def test_cast_model_round_trip(tmp_path, dtype, nbytes, bits):
    stored, decoded = cast_values(np.append(COEF, 0.25), dtype)
    save_model(tmp_path / "c.npz", cast_model_arrays(stored[:-1], stored[-1:], dtype, NAMES, {}))
    model = load_model(tmp_path / "c.npz")
    assert_array_equal(model.weights, decoded[:-1])
    assert model.intercept == decoded[-1]
    assert model.param_bytes == nbytes
    assert model.bits == bits
    assert model.header["cast"]["dtype"] == dtype


def test_cast_model_with_unknown_dtype():
    stored, _ = cast_values(np.append(COEF, 0.25), "float16")
    arrays = cast_model_arrays(stored[:-1], stored[-1:], "float16", NAMES, {})
    header = json.loads(arrays["header"].tobytes())
    header["cast"]["dtype"] = "float8"
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    with pytest.raises(ModelFileError, match=r"cast dtype 'float8' is unknown"):
        model_from_arrays(arrays, "m.npz")


def _integer_arrays():
    X = np.random.default_rng(0).normal(MEAN, STD, size=(500, 3))
    integer = quantize_integer(COEF, 0.25, X, bits=8)
    return integer, X, integer_model_arrays(integer, "q8i", NAMES, {"x": 1})


def test_integer_model_round_trip(tmp_path):
    integer, X, arrays = _integer_arrays()
    save_model(tmp_path / "q8i.npz", arrays)
    model = load_model(tmp_path / "q8i.npz")
    assert model.variant == "q8i"
    assert model.bits == 8
    assert_array_equal(model.predict(X), integer.predict(X))
    assert model.param_bytes == 3 + 8 + 8 + 3 * 8 + 3 * 8
    assert model.saturated_rows(X * 10) > 0


def test_integer_model_with_a_bad_member():
    _, _, arrays = _integer_arrays()
    arrays["input_scale"] = np.zeros(3)
    with pytest.raises(ModelFileError, match="input scales must be > 0"):
        model_from_arrays(arrays, "m.npz")
    _, _, arrays = _integer_arrays()
    arrays["weight_codes"] = arrays["weight_codes"].astype(np.int16)
    with pytest.raises(ModelFileError, match=r"member 'weight_codes' is int16\[3\], expected int8"):
        model_from_arrays(arrays, "m.npz")
