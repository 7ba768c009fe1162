"""Known-answer and property tests for the quantization math."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from quantpipe import compiled
from quantpipe.quant.casts import cast_values, from_bfloat16_bits, to_bfloat16_bits
from quantpipe.quant.codes import (
    code_dtype,
    dequantize,
    dequantize_codes,
    pack_codes,
    quantize,
    unpack_codes,
)
from quantpipe.quant.integer import IntegerLinear, calibrate_inputs, quantize_integer
from quantpipe.quant.linear import feature_stats, predict, quantize_linear
from quantpipe.quant.rounding import quantize_data_aware
from tests.kernel_paths import EACH_PATH

BITS = st.integers(min_value=2, max_value=16)
MAGNITUDES = st.one_of(
    st.just(0.0),
    st.floats(min_value=1e-6, max_value=1e6),
    st.floats(min_value=-1e6, max_value=-1e-6),
)
VECTORS = st.lists(MAGNITUDES, min_size=1, max_size=40).map(np.array)


# -- known answers on hand-sized arrays ------------------------------------------------------


def test_symmetric_known_answer():
    t = quantize(np.array([1.0, -0.5, 0.25, 0.0]), bits=3, symmetric=True)
    # qmax = 3, scale = 1/3; rint(-1.5) = -2 (half to even); zero point 4.
    assert_array_equal(t.codes, [7, 2, 5, 4])
    assert_allclose(t.scale, [1 / 3])
    assert_array_equal(t.zero_point, [4])
    assert_allclose(dequantize(t), [1.0, -2 / 3, 1 / 3, 0.0])


def test_asymmetric_known_answer_all_positive():
    t = quantize(np.array([0.5, 1.0, 2.0]), bits=2, symmetric=False)
    # range [0, 2] over 3 steps: scale 2/3, zero point 0.
    assert_array_equal(t.codes, [1, 2, 3])
    assert_array_equal(t.zero_point, [0])
    assert_allclose(dequantize(t), [2 / 3, 4 / 3, 2.0])


def test_asymmetric_known_answer_mixed_signs():
    t = quantize(np.array([-1.0, 0.0, 3.0]), bits=2, symmetric=False)
    # range [-1, 3]: scale 4/3, zero point rint(0.75) = 1.
    assert_array_equal(t.codes, [0, 1, 3])
    assert_array_equal(t.zero_point, [1])
    assert_allclose(dequantize(t), [-4 / 3, 0.0, 8 / 3])


def test_per_channel_gives_each_element_its_scale():
    t = quantize(np.array([1.0, -0.01, 100.0]), bits=8, symmetric=True, per_channel=True)
    assert t.scale.shape == (3,)
    assert_allclose(t.scale, [1 / 127, 0.01 / 127, 100 / 127])
    assert_allclose(dequantize(t), [1.0, -0.01, 100.0], rtol=1e-12)


def test_pack_codes_known_answer():
    # 1 -> 10, 2 -> 01, 3 -> 11 (LSB first): bits 1,0,0,1,1,1 = 1 + 8 + 16 + 32.
    assert_array_equal(pack_codes(np.array([1, 2, 3]), bits=2), [57])
    assert_array_equal(unpack_codes(np.array([57], dtype=np.uint8), bits=2, n=3), [1, 2, 3])


def test_pack_codes_is_the_byte_image_for_8_and_16_bits():
    codes8 = np.array([0, 1, 255, 128], dtype=np.uint8)
    assert_array_equal(pack_codes(codes8, 8), codes8)
    codes16 = np.array([0, 1, 65535, 258], dtype="<u2")
    assert pack_codes(codes16, 16).tobytes() == codes16.tobytes()


def test_quantize_linear_known_answer():
    coef, intercept = np.array([2.0, -1.0]), 0.5
    mean, std = np.array([1.0, 10.0]), np.array([0.5, 2.0])
    q = quantize_linear(coef, intercept, mean, std, bits=2)
    # standardized v = [1, -2]; qmax 1, step 2; rint(0.5) = 0 -> v_hat = [0, -2].
    assert_array_equal(q.codes, [2, 1])
    assert_array_equal(q.zero_point, [2])
    assert_allclose(q.scale, [4.0, 1.0])  # step / std
    assert_allclose(q.weights(), [0.0, -1.0])
    # bias correction: 0.5 + (coef - w_hat) @ mean = 0.5 + 2.
    assert q.intercept == pytest.approx(2.5)
    at_mean = predict(mean[None, :], q.weights(), q.intercept)[0]
    assert at_mean == pytest.approx(coef @ mean + intercept)


def test_quantize_linear_without_bias_correction_keeps_intercept():
    q = quantize_linear(
        np.array([2.0, -1.0]),
        0.5,
        np.array([1.0, 10.0]),
        np.array([0.5, 2.0]),
        bits=2,
        bias_correction=False,
    )
    assert q.intercept == 0.5


def test_standardization_beats_raw_coefficients_on_badly_scaled_features():
    rng = np.random.default_rng(0)
    # one feature in thousands, one in thousandths: a shared raw scale drowns the second.
    X = rng.normal([0.0, 0.0], [1000.0, 0.001], size=(500, 2))
    coef = np.array([0.001, 1000.0])
    mean, std, _ = feature_stats(X)
    ref = predict(X, coef, 0.0)
    errors = {}
    for standardize in (True, False):
        q = quantize_linear(coef, 0.0, mean, std, bits=8, standardize=standardize)
        errors[standardize] = np.sqrt(np.mean((predict(X, q.weights(), q.intercept) - ref) ** 2))
    assert errors[True] < errors[False] / 10


def test_feature_stats_constant_feature_gets_unit_std():
    mean, std, _ = feature_stats(np.array([[1.0, 5.0], [3.0, 5.0]]))
    assert_allclose(mean, [2.0, 5.0])
    assert_allclose(std, [1.0, 1.0])


def test_code_dtype():
    assert code_dtype(2) == np.uint8
    assert code_dtype(8) == np.uint8
    assert code_dtype(9) == np.uint16
    assert code_dtype(16) == np.uint16


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [0, 1, 17, 32])
def test_quantize_rejects_widths_outside_2_to_16(bits):
    with pytest.raises(ValueError, match=r"bits must be from 2 to 16, got"):
        quantize(np.array([1.0]), bits)


def test_quantize_rejects_non_integer_bits():
    with pytest.raises(TypeError, match="bits must be an integer, got float"):
        quantize(np.array([1.0]), 8.0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_quantize_rejects_non_finite_values(bad):
    with pytest.raises(ValueError, match=r"values must be finite \(no NaN or inf\)"):
        quantize(np.array([1.0, bad]), 8)


def test_quantize_rejects_2d_input():
    with pytest.raises(ValueError, match=r"values must be 1-D, got shape \(2, 2\)"):
        quantize(np.ones((2, 2)), 8)


def test_pack_rejects_codes_too_wide():
    with pytest.raises(ValueError, match="a code does not fit in 2 bits: 4"):
        pack_codes(np.array([4]), 2)


def test_unpack_rejects_wrong_length():
    with pytest.raises(ValueError, match=r"expected 1 packed bytes for 3 codes of 2 bits"):
        unpack_codes(np.zeros(2, dtype=np.uint8), 2, 3)


def test_dequantize_codes_rejects_mismatched_groups():
    with pytest.raises(ValueError, match=r"expected 1 or 3 group values, got shape \(2,\)"):
        dequantize_codes(np.zeros(3, np.uint8), np.ones(2), np.zeros(1))


def test_quantize_linear_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="coef, mean and std must have the same shape"):
        quantize_linear(np.ones(2), 0.0, np.zeros(3), np.ones(3), bits=8)


def test_quantize_linear_rejects_zero_std():
    with pytest.raises(ValueError, match="std must be > 0 for every feature"):
        quantize_linear(np.ones(2), 0.0, np.zeros(2), np.array([1.0, 0.0]), bits=8)


def test_quantize_linear_rejects_non_finite_intercept():
    with pytest.raises(ValueError, match="intercept must be finite"):
        quantize_linear(np.ones(2), np.nan, np.zeros(2), np.ones(2), bits=8)


# -- properties ------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(values=VECTORS, bits=BITS, symmetric=st.booleans(), per_channel=st.booleans())
def test_round_trip_error_is_at_most_half_a_step(values, bits, symmetric, per_channel):
    t = quantize(values, bits, symmetric=symmetric, per_channel=per_channel)
    step = np.broadcast_to(t.scale, values.shape)
    error = np.abs(dequantize(t) - values)
    assert np.all(error <= step / 2 * (1 + 1e-9) + 1e-12 * np.abs(values))


@settings(max_examples=200, deadline=None)
@given(values=VECTORS, bits=BITS, symmetric=st.booleans(), per_channel=st.booleans())
def test_zero_is_exact_and_codes_fit(values, bits, symmetric, per_channel):
    values = np.append(values, 0.0)
    t = quantize(values, bits, symmetric=symmetric, per_channel=per_channel)
    assert dequantize(t)[-1] == 0.0
    assert t.codes.dtype == code_dtype(bits)
    assert int(t.codes.max()) <= 2**bits - 1
    if symmetric:  # restricted range: the code 0 is never used
        assert int(t.codes.min()) >= 1
        assert np.all(t.zero_point == 2 ** (bits - 1))


@settings(max_examples=200, deadline=None)
@given(
    value=MAGNITUDES,
    n=st.integers(1, 20),
    bits=BITS,
    symmetric=st.booleans(),
    per_channel=st.booleans(),
)
def test_constant_and_single_value_arrays_round_trip(value, n, bits, symmetric, per_channel):
    values = np.full(n, value)
    t = quantize(values, bits, symmetric=symmetric, per_channel=per_channel)
    assert_allclose(dequantize(t), values, rtol=1e-12, atol=0)
    assert np.all(np.isfinite(t.scale))
    assert np.all(t.scale > 0)


@settings(max_examples=200, deadline=None)
@given(codes=st.lists(st.integers(0, 2**16 - 1), min_size=0, max_size=50), bits=BITS)
def test_pack_unpack_round_trip(codes, bits):
    codes = np.array(codes, dtype=np.int64) % (2**bits)
    packed = pack_codes(codes, bits)
    assert packed.shape == (-(-len(codes) * bits // 8),)
    assert_array_equal(unpack_codes(packed, bits, len(codes)), codes)


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_features=st.integers(1, 10),
    bits=BITS,
    symmetric=st.booleans(),
    per_channel=st.booleans(),
    standardize=st.booleans(),
)
def test_bias_correction_keeps_the_prediction_at_the_training_mean(
    seed, n_features, bits, symmetric, per_channel, standardize
):
    rng = np.random.default_rng(seed)
    coef = rng.normal(size=n_features)
    mean = rng.normal(scale=50.0, size=n_features)
    std = rng.uniform(0.01, 100.0, size=n_features)
    q = quantize_linear(
        coef,
        1.5,
        mean,
        std,
        bits=bits,
        symmetric=symmetric,
        per_channel=per_channel,
        standardize=standardize,
    )
    exact = coef @ mean + 1.5
    got = predict(mean[None, :], q.weights(), q.intercept)[0]
    assert got == pytest.approx(exact, rel=1e-9, abs=1e-9 * np.abs(coef * mean).sum())


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), bits=st.integers(2, 15))
def test_more_bits_never_loosen_the_step(seed, bits):
    values = np.random.default_rng(seed).normal(size=8)
    narrow = quantize(values, bits)
    wide = quantize(values, bits + 1)
    assert wide.scale[0] < narrow.scale[0]


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_rows=st.integers(1, 300),
    n_features=st.integers(1, 12),
    cut=st.integers(0, 300),
)
def test_a_rows_prediction_does_not_depend_on_its_batch(seed, n_rows, n_features, cut):
    rng = np.random.default_rng(seed)
    X = rng.normal(scale=rng.uniform(0.1, 1000, n_features), size=(n_rows, n_features))
    w = rng.normal(size=n_features)
    whole = predict(X, w, 0.7)
    cut = min(cut, n_rows)
    assert_array_equal(np.concatenate([predict(X[:cut], w, 0.7), predict(X[cut:], w, 0.7)]), whole)
    row = rng.integers(n_rows)
    assert predict(X[row : row + 1], w, 0.7)[0] == whole[row]


# -- data-aware rounding ---------------------------------------------------------------------


def _objective(v, v_hat, C):
    d = v_hat - v
    return float(d @ C @ d)


def test_data_aware_known_answer_prefers_errors_that_cancel():
    # two perfectly correlated features: the error that matters is the sum of both errors
    v = np.array([0.4, 0.4, 1.0])
    C = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1e-6]])
    near = quantize(v, 2)  # qmax 1, scale 1: both 0.4 round to 0, error sum 0.8
    aware = quantize_data_aware(v, C, 2)
    assert _objective(v, dequantize(near), C) == pytest.approx(0.64)
    assert _objective(v, dequantize(aware), C) < 0.05


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 8), bits=BITS, symmetric=st.booleans())
def test_data_aware_is_never_worse_than_nearest(seed, n, bits, symmetric):
    rng = np.random.default_rng(seed)
    v = rng.normal(size=n)
    A = rng.normal(size=(n, n))
    C = A @ A.T
    near = quantize(v, bits, symmetric=symmetric)
    aware = quantize_data_aware(v, C, bits, symmetric=symmetric)
    assert (
        _objective(v, dequantize(aware), C)
        <= _objective(v, dequantize(near), C) * (1 + 1e-9) + 1e-15
    )
    assert dequantize(quantize_data_aware(np.append(v, 0.0), np.eye(n + 1), bits))[-1] == 0.0


def test_coordinate_descent_path_for_many_coefficients(monkeypatch):
    import quantpipe.quant.rounding as q

    rng = np.random.default_rng(3)
    v = rng.normal(size=10)
    A = rng.normal(size=(10, 10))
    C = A @ A.T
    exhaustive = q.quantize_data_aware(v, C, 3)
    monkeypatch.setattr(q, "EXHAUSTIVE_MAX", 4)
    descent = q.quantize_data_aware(v, C, 3)
    near = q.quantize(v, 3)
    assert _objective(v, dequantize(descent), C) <= _objective(v, dequantize(near), C)
    assert _objective(v, dequantize(exhaustive), C) <= _objective(v, dequantize(descent), C)


def test_coordinate_descent_finds_the_optimum_that_nearest_rounding_misses(monkeypatch):
    """At one scale, on a case where it is known to reach the optimum (checked against all
    2**10 floor/ceil choices): strictly better than round-to-nearest, which it starts from."""
    import quantpipe.quant.rounding as q

    rng = np.random.default_rng(0)
    v = rng.normal(size=10)
    A = rng.normal(size=(10, 10))
    C = A @ A.T
    s = np.max(np.abs(v)) / 3
    lo, hi = np.clip(np.floor(v / s), -3, 3), np.clip(np.ceil(v / s), -3, 3)
    monkeypatch.setattr(q, "EXHAUSTIVE_MAX", 4)
    codes, err = q._rounding_choices(lo, hi, s, v, C)
    nearest = np.where(np.abs(lo * s - v) <= np.abs(hi * s - v), lo, hi)
    choices = np.where((np.arange(2**10)[:, None] >> np.arange(10)) & 1 == 1, hi, lo)
    best = min(_objective(v, c * s, C) for c in choices)
    assert err == pytest.approx(best, rel=1e-12)
    assert err < 0.7 * _objective(v, nearest * s, C)
    assert err == pytest.approx(_objective(v, codes * s, C), rel=1e-12)


def test_data_aware_rejects_a_bad_matrix():
    with pytest.raises(ValueError, match=r"C must be a finite \(2, 2\) matrix"):
        quantize_data_aware(np.ones(2), np.eye(3), 4)


def test_quantize_linear_data_aware_needs_the_covariance():
    with pytest.raises(ValueError, match="data-aware rounding needs the training covariance"):
        quantize_linear(np.ones(2), 0.0, np.zeros(2), np.ones(2), bits=4, rounding="data-aware")
    with pytest.raises(ValueError, match="unknown rounding 'up'; use nearest or data-aware"):
        quantize_linear(np.ones(2), 0.0, np.zeros(2), np.ones(2), bits=4, rounding="up")


# -- casts -----------------------------------------------------------------------------------


def test_bfloat16_known_answers_round_to_nearest_even():
    as_f32 = lambda bits: np.array([bits], dtype=np.uint32).view(np.float32)  # noqa: E731
    assert to_bfloat16_bits(np.array([1.0, -2.0, 0.0]))[0] == 0x3F80
    assert list(to_bfloat16_bits(np.array([1.0, -2.0, 0.0]))) == [0x3F80, 0xC000, 0x0000]
    assert to_bfloat16_bits(as_f32(0x3F808000))[0] == 0x3F80  # tie, even stays
    assert to_bfloat16_bits(as_f32(0x3F818000))[0] == 0x3F82  # tie, odd rounds up
    assert to_bfloat16_bits(as_f32(0x3F808001))[0] == 0x3F81  # above the tie
    assert_array_equal(from_bfloat16_bits(np.array([0x3F80, 0xC000], dtype=np.uint16)), [1.0, -2.0])


@pytest.mark.parametrize(
    ("dtype", "rel"), [("float32", 2**-24), ("float16", 2**-11), ("bfloat16", 2**-8)]
)
def test_casts_round_within_half_an_ulp(dtype, rel):
    x = np.random.default_rng(0).normal(scale=100, size=1000)
    stored, decoded = cast_values(x, dtype)
    assert np.all(np.abs(decoded - x) <= np.abs(x) * rel * 1.0001)
    assert stored.dtype == {"float32": "<f4", "float16": "<f2", "bfloat16": "<u2"}[dtype]


def test_cast_errors():
    with pytest.raises(ValueError, match="unknown cast 'float8'; use one of: float32"):
        cast_values(np.ones(2), "float8")
    with pytest.raises(ValueError, match="a value overflows float16"):
        cast_values(np.array([1e6]), "float16")


# -- integer-only inference ------------------------------------------------------------------


def test_integer_linear_known_answer():
    model = IntegerLinear(
        weight_codes=np.array([3, -2], dtype=np.int8),
        output_scale=0.5,
        bias_code=10,
        input_lo=np.array([0.0, -1.0]),
        input_scale=np.array([1.0, 0.5]),
        bits=2,
    )
    X = np.array([[2.0, 0.0], [5.0, -3.0]])  # second row: both features out of range
    xq, saturated = model.input_codes(X)
    assert_array_equal(xq, [[2, 2], [3, 0]])
    assert_array_equal(saturated, [False, True])
    # 0.5 * (3 * 2 - 2 * 2 + 10) and 0.5 * (3 * 3 + 10)
    assert_array_equal(model.predict(X), [6.0, 9.5])


def test_integer_overflow_is_caught():
    model = IntegerLinear(
        weight_codes=np.array([127], dtype=np.int8),
        output_scale=1.0,
        bias_code=2**31 - 100,
        input_lo=np.zeros(1),
        input_scale=np.ones(1),
        bits=8,
    )
    with pytest.raises(OverflowError, match=r"integer accumulator left the int32 range \(row 1\)"):
        model.predict(np.array([[0.0], [200.0]]))


def _integer_model(k: int, bits: int = 8, seed: int = 0) -> IntegerLinear:
    rng = np.random.default_rng(seed)
    return IntegerLinear(
        weight_codes=rng.integers(-(2 ** (bits - 1)), 2 ** (bits - 1), size=k).astype(np.int16),
        output_scale=0.01,
        bias_code=int(rng.integers(-1000, 1000)),
        input_lo=rng.normal(size=k),
        input_scale=rng.uniform(0.01, 0.1, size=k),
        bits=bits,
    )


def test_integer_predictions_are_written_into_the_out_given():
    model = _integer_model(8)
    X = np.random.default_rng(3).normal(size=(100, 8))
    out = np.full(100, np.nan)
    assert model.predict(X, out=out) is out
    assert_array_equal(out, _reference_integer(model, X)[0])
    with pytest.raises(ValueError, match=r"^out must have shape \(100,\), one value a row of X"):
        model.predict(X, out=np.empty(99))
    F = np.asfortranarray(X)  # copied for the loop, but out is refused inside it all the same
    with pytest.raises(ValueError, match=r"^out must not overlap X$"):
        model.predict(F, out=F[:, 0])


def _reference_integer(model: IntegerLinear, X: np.ndarray) -> tuple[np.ndarray, ...]:
    """The documented arithmetic in numpy (the implementation before the compiled one)."""
    levels = 2**model.bits - 1
    with np.errstate(over="ignore"):
        codes = np.rint((X - model.input_lo) / model.input_scale)
    saturated = ((codes < 0) | (codes > levels)).any(axis=1)
    xq = np.clip(codes, 0, levels).astype(np.int64)
    acc = xq @ model.weight_codes.astype(np.int64) + model.bias_code
    return model.output_scale * acc.astype(np.float64), xq, saturated


@EACH_PATH
@settings(max_examples=60, deadline=None)
@given(
    k=st.sampled_from([8, 3, 9]),
    bits=st.sampled_from([2, 8, 12]),
    n=st.integers(1, 200),
    seed=st.integers(0, 2**32 - 1),
)
def test_integer_inference_is_its_documented_arithmetic(path, k, bits, n, seed):
    # k = 8 takes the vector loops (from 32 rows: AVX-512 in eights, AVX2 in fours; then
    # SSE2 in pairs, checked per block of 64), others the scalar one; inputs straddle the
    # range, with exact ties of rint and infinities
    model, rng = _integer_model(k, bits, seed % 1000), np.random.default_rng(seed)
    t = rng.uniform(-3, 2**bits + 2, size=(n, k))
    ties = rng.random((n, k)) < 0.3
    t[ties] = np.floor(t[ties]) + 0.5
    X = model.input_lo + t * model.input_scale
    X[rng.random((n, k)) < 0.01] = np.inf
    X[rng.random((n, k)) < 0.01] = -np.inf
    y, xq, saturated = _reference_integer(model, X)
    with compiled.kernel_path(path):  # bit for bit: a -0.0 is not a 0.0
        assert model.predict(X).view(np.uint64).tolist() == y.view(np.uint64).tolist()
    got_codes, got_saturated = model.input_codes(X)
    assert_array_equal(got_codes, xq)
    assert_array_equal(got_saturated, saturated)


@EACH_PATH
@pytest.mark.parametrize(("k", "row"), [(8, 0), (8, 130), (8, 199), (8, 201), (8, 202), (3, 77)])
def test_integer_inference_refuses_a_nan_naming_its_row(path, k, row):
    # of 203 rows, AVX-512 takes 200, AVX2 200, SSE2 the next two and the scalar loop the
    # last; the NaN in each feature in turn (AVX2 holds a row in two halves)
    model, message = _integer_model(k), f"row {row} has a NaN input"
    for feature in range(k):
        X = np.tile(model.input_lo, (203, 1))
        X[row, feature] = np.nan
        with compiled.kernel_path(path), pytest.raises(ValueError, match=message):
            model.predict(X)
        with pytest.raises(ValueError, match=message):
            model.input_codes(X)


@EACH_PATH
def test_integer_overflow_in_the_vector_loop_names_its_row(path):
    model = IntegerLinear(
        weight_codes=np.full(8, 127, dtype=np.int8),
        output_scale=1.0,
        bias_code=2**31 - 1 - 255 * 127 * 8,  # the largest codes reach 2**31 - 1 exactly
        input_lo=np.zeros(8),
        input_scale=np.ones(8),
        bits=8,
    )
    X = np.full((300, 8), 255.0)
    low = IntegerLinear(**{**model.__dict__, "bias_code": -(2**31)})
    high = IntegerLinear(**{**model.__dict__, "bias_code": 2**31 - 255 * 127 * 8})
    below = IntegerLinear(**{**model.__dict__, "weight_codes": -model.weight_codes})
    below = IntegerLinear(**{**below.__dict__, "bias_code": -(2**31) + 255 * 127 * 8 - 1})
    with compiled.kernel_path(path):
        assert model.predict(X).tolist() == [2.0**31 - 1] * 300
        assert low.predict(np.zeros((40, 8))).tolist() == [-(2.0**31)] * 40
        X[:201] = 0.0
        with pytest.raises(OverflowError, match=r"left the int32 range \(row 201\)"):
            high.predict(X)
        X[:] = 254.0
        X[150] = 255.0
        with pytest.raises(OverflowError, match=r"left the int32 range \(row 150\)"):
            below.predict(X)
        X[150] = 254.0
        X[298] = 255.0  # past AVX-512's 296 rows and AVX2's 300: SSE2's pairs, or AVX2's
        with pytest.raises(OverflowError, match=r"left the int32 range \(row 298\)"):
            below.predict(X)


def test_integer_kernel_errors():
    model = _integer_model(3)
    with pytest.raises(ValueError, match="X must have 3 features, got 2"):
        model.predict(np.ones((4, 2)))
    with pytest.raises(ValueError, match="bits must be from 1 to 16, got 17"):
        IntegerLinear(**{**model.__dict__, "bits": 17}).predict(np.ones((1, 3)))
    wide = np.array([1, 40000, 2], dtype=np.int64)
    with pytest.raises(ValueError, match=r"weight code 40000 is outside \[-32768, 32768\]"):
        IntegerLinear(**{**model.__dict__, "weight_codes": wide}).predict(np.ones((1, 3)))
    with pytest.raises(ValueError, match="bias_code 2147483648 is outside the int32 range"):
        IntegerLinear(**{**model.__dict__, "bias_code": 2**31}).predict(np.ones((1, 3)))
    short = np.ones(2)
    with pytest.raises(
        ValueError,
        match="input_lo, input_scale and weight_codes must have one length, got 2, 3 and 3",
    ):
        IntegerLinear(**{**model.__dict__, "input_lo": short}).predict(np.ones((1, 3)))


def test_quantize_integer_tracks_the_float_model():
    rng = np.random.default_rng(1)
    X = rng.normal([3.0, 30.0, -120.0], [1.0, 10.0, 2.0], size=(2000, 3))
    w, b = np.array([0.4, 0.01, -0.4]), -30.0
    ref = predict(X, w, b)
    for calibration in ("minmax", "percentile"):
        model = quantize_integer(w, b, X, bits=8, calibration=calibration, percentile=99.9)
        assert model.weight_codes.dtype == np.int8
        err = model.predict(X) - ref
        assert np.sqrt(np.mean(err**2)) < 0.02
        assert abs(err.mean()) < 0.005
        # bias correction, exactly: at the training mean of the input codes, the integer
        # model's affine map equals the float model within half an output step
        xq_mean = model.input_codes(X)[0].mean(axis=0)
        at_mean = model.output_scale * (xq_mean @ model.weight_codes + model.bias_code)
        x_at_mean = model.input_lo + model.input_scale * xq_mean
        assert abs(at_mean - (x_at_mean @ w + b)) <= model.output_scale / 2 * (1 + 1e-9)
    assert quantize_integer(w, b, X, bits=12).weight_codes.dtype == np.int16


def test_calibration_errors():
    with pytest.raises(ValueError, match="unknown calibration 'mse'; use minmax or percentile"):
        calibrate_inputs(np.ones((3, 2)), 8, "mse")


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), cut=st.integers(0, 50))
def test_integer_predictions_do_not_depend_on_the_batch(seed, cut):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(50, 4)) * 10
    model = quantize_integer(rng.normal(size=4), 1.0, X, bits=8)
    whole = model.predict(X)
    assert_array_equal(np.concatenate([model.predict(X[:cut]), model.predict(X[cut:])]), whole)


def test_threaded_prediction_is_bit_identical(monkeypatch):
    import quantpipe.quant.linear as q

    monkeypatch.setattr(q, "PARALLEL_CHUNK_ROWS", 1000)
    rng = np.random.default_rng(5)
    X = rng.normal(size=(10_500, 8)) * 100
    w = rng.normal(size=8)
    assert_array_equal(q.predict(X, w, 0.3, threads=3), q.predict(X, w, 0.3))
