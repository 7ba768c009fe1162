"""Machine-independent arithmetic: exact results rounded once (quantpipe.exact), or a fixed
order of IEEE operations (quantpipe.numerics)."""

from __future__ import annotations

import math
import sys
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_allclose, assert_array_equal

from quantpipe import compiled, exact, numerics
from tests.kernel_paths import EACH_PATH

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=64)


def test_lstsq_known_answer():
    fit = exact.lstsq(np.array([[0.0], [1.0], [2.0]]), np.array([1.0, 3.0, 5.0]))
    assert fit.coef.tolist() == [2.0]
    assert fit.intercept == 1.0
    assert fit.rank == 1


def test_lstsq_is_the_exact_solution_rounded_once():
    # y ~ a x + b on x = 0, 1, 3 and y = 0, 1, 1: Sxy / Sxx = (4/3) / (14/3), so a = 2/7,
    # and b = 2/3 - a * 4/3 = 2/7 (by hand); neither is a binary fraction
    fit = exact.lstsq(np.array([[0.0], [1.0], [3.0]]), np.array([0.0, 1.0, 1.0]))
    assert fit.coef[0] == float(Fraction(2, 7))
    assert fit.intercept == float(Fraction(2, 7))


def test_lstsq_of_dependent_features_is_the_minimum_norm_solution():
    X = np.array([[1.0, 1.0, 5.0], [2.0, 2.0, 5.0], [3.0, 3.0, 5.0]])  # twin and constant
    fit = exact.lstsq(X, np.array([2.0, 4.0, 6.0]))
    assert fit.coef.tolist() == [1.0, 1.0, 0.0]
    assert fit.intercept == 0.0
    assert fit.rank == 1


def test_lstsq_agrees_with_lapack_on_well_conditioned_data():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 4))
    y = X @ np.array([1.5, -2.0, 0.25, 3.0]) + 0.5 + rng.normal(scale=0.1, size=200)
    fit = exact.lstsq(X, y)
    A = np.column_stack([X, np.ones(200)])
    expected = np.linalg.lstsq(A, y, rcond=None)[0]
    assert_allclose(fit.coef, expected[:4], rtol=1e-12)
    assert fit.intercept == pytest.approx(expected[4], rel=1e-12)
    centered = X - X.mean(axis=0)
    assert_allclose(fit.singular, np.linalg.svd(centered, compute_uv=False), rtol=1e-12)


def test_lstsq_refuses_bad_shapes():
    with pytest.raises(ValueError, match=r"need X of shape \(n, k\) and y of shape \(n,\)"):
        exact.lstsq(np.ones((3, 2)), np.ones(2))
    with pytest.raises(ValueError, match="need a finite 2-D array"):
        exact.lstsq(np.array([[np.nan], [1.0]]), np.ones(2))


def test_mean_std_cov_known_answer():
    mean, std, cov = exact.mean_std_cov(np.array([[1.0, 2.0], [3.0, 6.0]]))
    assert mean.tolist() == [2.0, 4.0]
    assert std.tolist() == [1.0, 2.0]
    assert cov.tolist() == [[1.0, 2.0], [2.0, 4.0]]


def test_exact_sums_do_not_lose_small_terms():
    assert exact.dot([1e16, 1.0, -1e16], [1.0, 1.0, 1.0]) == 1.0
    assert numerics.sum_exact(np.array([1e100, 1.0, -1e100])) == 1.0
    assert exact.mean(np.array([1e16, 2.0, -1e16])) == float(Fraction(2, 3))


@given(arrays(np.float64, st.integers(1, 40), elements=finite))
def test_mean_is_exact_and_does_not_depend_on_the_order(values):
    true_mean = sum(map(Fraction, values.tolist()), Fraction(0)) / values.size
    assert exact.mean(values) == float(true_mean)
    assert exact.mean(values[::-1]) == exact.mean(values)


@given(arrays(np.float64, (17, 3), elements=finite))
def test_covariance_is_exact_rounded_once(X):
    _, _, cov = exact.mean_std_cov(X)
    rows = [[Fraction(v) for v in row] for row in X.tolist()]
    means = [sum(col, Fraction(0)) / len(rows) for col in zip(*rows, strict=True)]
    for a in range(3):
        for b in range(3):
            total = sum(((r[a] - means[a]) * (r[b] - means[b]) for r in rows), Fraction(0))
            assert cov[a, b] == float(total / len(rows))


def _in_tree_order(terms: list[float]) -> float:
    """The documented order, in Python floats (each operation rounded, never fused)."""
    for level in numerics.tree_sum_order(len(terms)):
        width = len(terms)
        for into, added in level:
            terms[into] = terms[into] + terms[added]
        terms = terms[: width - len(level)]
    return terms[0]


def _reference_dot(row: list[float], w: list[float]) -> float:
    return _in_tree_order([x * c for x, c in zip(row, w, strict=True)])


def test_tree_sum_order_known_answers():
    assert numerics.tree_sum_order(1) == ()
    assert numerics.tree_sum_order(2) == (((0, 1),),)
    assert numerics.tree_sum_order(5) == (((0, 3), (1, 4)), ((0, 2),), ((0, 1),))
    eight = (((0, 4), (1, 5), (2, 6), (3, 7)), ((0, 2), (1, 3)), ((0, 1),))
    assert numerics.tree_sum_order(8) == eight


@EACH_PATH
@settings(max_examples=50)
@given(
    st.sampled_from([1, 7, 8, 9]).flatmap(
        lambda k: st.tuples(
            arrays(np.float64, st.tuples(st.integers(1, 80), st.just(k)), elements=finite),
            arrays(np.float64, (k,), elements=finite),
        )
    )
)
def test_row_dot_is_in_its_documented_order_and_batch_invariant(path, case):
    # from 32 rows of 8 features the vector paths run, below it the baseline's loop
    X, w = case
    with compiled.kernel_path(path):
        out = numerics.row_dot(X, w, np.empty(X.shape[0]))
        assert out.tolist() == [_reference_dot(r, w.tolist()) for r in X.tolist()]
        for i in range(X.shape[0]):
            alone = numerics.row_dot(X[i : i + 1], w, np.empty(1))
            assert alone[0] == out[i]


special = st.sampled_from([0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, -2.2e-308, 1e308])


@EACH_PATH
@settings(max_examples=40, deadline=None)
@given(
    X=arrays(
        np.float64,
        st.tuples(st.integers(32, 300), st.just(8)),
        elements=st.one_of(finite, special, st.floats(width=64)),
    ),
    w=arrays(np.float64, (8,), elements=st.one_of(finite, special)),
    offset=st.one_of(st.just(0.0), finite),
    start=st.integers(0, 3),
)
@example(X=np.ones((0, 8)), w=np.ones(8), offset=0.5, start=1)  # and below the vector paths
@example(X=np.full((31, 8), 1.5), w=np.arange(8.0), offset=0.5, start=1)
def test_every_kernel_path_gives_the_baseline_bits(path, X, w, offset, start):
    # signed zeros, overflow to infinity, subnormals and NaNs included; the output starts at
    # an offset into its array (the vector paths' stores are unaligned). From 32 rows, where
    # the vector paths start: below it every path runs the baseline's loop (hypothesis's
    # small arrays had left an AVX-512 loop that dropped the offset passing here)
    n = X.shape[0]
    expected, got = np.empty(n + start), np.empty(n + start)
    with compiled.kernel_path("baseline"):
        expected_bad = numerics.row_dot_checked(X, w, expected[start:], offset)
    with compiled.kernel_path(path):
        got_bad = numerics.row_dot_checked(X, w, got[start:], offset)
    assert got_bad == expected_bad
    assert _bits(got[start:]) == _bits(expected[start:])


def _bits(values: np.ndarray) -> list[int]:
    """Each value's bits, every NaN as one: C leaves a NaN's sign and payload to the
    compiler (it may swap the operands of a + b), and every prediction refuses a NaN."""
    return np.where(np.isnan(values), np.nan, values).view(np.uint64).tolist()


@EACH_PATH
def test_a_long_output_streamed_past_the_cache_has_the_baseline_bits(path):
    # from 2**18 rows the vector paths (AVX-512's by the AVX2 loop) write with non-temporal
    # stores, from the first row aligned to the vector: at each of 8 offsets into a 64-byte
    # aligned array, every head from 0 to 7 rows; and not at all into an output not even
    # aligned to its doubles
    n = 2**18 + 13
    rng = np.random.default_rng(7)
    X, w = rng.normal(size=(n, 8)) * 100, rng.normal(size=8)
    X[n - 5, 3] = np.inf
    expected = np.empty(n)
    with compiled.kernel_path("baseline"):
        assert numerics.row_dot_checked(X, w, expected, 0.5) == n - 5
    raw = np.empty(8 * (n + 16) + 64, dtype=np.uint8)
    aligned = raw[-raw.ctypes.data % 64 :]
    outputs = [aligned[8 * start :][: 8 * n].view(np.float64) for start in range(8)]
    outputs.append(aligned[1:][: 8 * n].view(np.float64))  # 1 byte off: no stream
    assert [out.ctypes.data % 64 for out in outputs] == [0, 8, 16, 24, 32, 40, 48, 56, 1]
    for out in outputs:
        out[:] = np.nan
        with compiled.kernel_path(path):
            assert numerics.row_dot_checked(X, w, out, 0.5) == n - 5
        assert _bits(out) == _bits(expected)


def test_kernel_paths_are_the_sources_own_and_refused_when_unknown():
    assert compiled.paths()[0] == "baseline"
    assert set(compiled.paths()) <= set(compiled.PATHS)
    assert compiled.paths()[-1] == compiled.kernels().PATH
    with pytest.raises(ValueError, match=r"this CPU does not run the 'avx1024' kernel path"):
        compiled.kernel_path("avx1024").__enter__()
    X, w, out = np.ones((40, 8)), np.ones(8), np.empty(40)
    with pytest.raises(ValueError, match=r"no kernel path is named 'avx1024' \(baseline, "):
        compiled.kernels().row_dot(X, w, out, 0.0, "avx1024")


@settings(max_examples=50)
@given(
    st.sampled_from([8, 65, 130]).flatmap(
        lambda k: st.tuples(
            arrays(np.float64, st.tuples(st.integers(1, 5), st.just(k)), elements=finite),
            arrays(np.float64, (k,), elements=finite),
            finite,
        )
    )
)
def test_row_dot_with_an_offset_and_long_rows_is_in_its_documented_order(case):
    # 8 features take the written-out loop, more than 64 the heap buffer
    X, w, offset = case
    out = numerics.row_dot(X, w, np.empty(X.shape[0]), offset)
    expected = [_reference_dot(r, w.tolist()) for r in X.tolist()]
    assert out.tolist() == [y + offset if offset else y for y in expected]


def test_row_dot_past_the_prefetched_rows_and_of_no_features():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1000, 8))  # more rows than the kernel prefetches ahead (256)
    w = rng.normal(size=8)
    out = numerics.row_dot(X, w, np.empty(X.shape[0]), 0.25)
    assert out.tolist() == [_reference_dot(r, w.tolist()) + 0.25 for r in X.tolist()]
    assert numerics.row_dot(np.ones((2, 0)), np.ones(0), np.ones(2), 1.5).tolist() == [1.5] * 2


@EACH_PATH
def test_row_dot_does_not_fuse_a_multiply_and_an_add(path):
    # x * x = 1 + 2**-29 + 2**-60 rounds to 1 + 2**-29; adding -(1 + 2**-29) gives 0.0, but
    # a fused multiply-add (one rounding) would give 2**-60; 40 rows reach the vector paths
    x = 1.0 + 2.0**-30
    X = np.zeros((40, 8))
    X[:, 0], X[:, 4] = x, -(1.0 + 2.0**-29)
    w = np.zeros(8)
    w[0], w[4] = x, 1.0
    with compiled.kernel_path(path):
        assert numerics.row_dot(X, w, np.empty(40)).tolist() == [0.0] * 40
    X9, w9 = np.zeros((3, 9)), np.zeros(9)  # the general loop, too
    X9[:, 0], X9[:, 4], w9[0], w9[4] = x, -(1.0 + 2.0**-29), x, 1.0
    assert numerics.row_dot(X9, w9, np.empty(3)).tolist() == [0.0, 0.0, 0.0]


def test_row_dot_keeps_a_negative_zero_unless_an_offset_is_added():
    X, w = np.array([[-0.0] * 8]), np.ones(8)
    assert math.copysign(1.0, numerics.row_dot(X, w, np.empty(1))[0]) == -1.0
    assert numerics.row_dot(X, w, np.empty(1), 2.0).tolist() == [2.0]


def test_row_dot_copies_what_is_not_contiguous_float64():
    X = np.arange(48, dtype=np.float32).reshape(8, 6).T  # float32, and a transposed view
    w = np.arange(8.0)
    expected = [_reference_dot(r, w.tolist()) for r in X.astype(np.float64).tolist()]
    assert numerics.row_dot(X, w, np.empty(6)).tolist() == expected


def test_row_dot_errors():
    X, w = np.ones((3, 8)), np.ones(8)
    with pytest.raises(
        ValueError,
        match=r"row_dot needs X \(n, k\), w \(k,\) and out \(n,\), got \(3, 8\), \(8,\) and \(2,\)",
    ):
        numerics.row_dot(X, w, np.empty(2))
    with pytest.raises(ValueError, match=r"row_dot needs .* got \(3, 8\), \(7,\) and \(3,\)"):
        numerics.row_dot(X, np.ones(7), np.empty(3))
    with pytest.raises(ValueError, match="X must be a 2-D float64 array, got format d with 1-D"):
        numerics.row_dot(np.ones(8), w, np.empty(1))
    with pytest.raises(ValueError, match="out must be a 1-D float64 array, got format f with 1-D"):
        numerics.row_dot(X, w, np.empty(3, dtype=np.float32))
    with pytest.raises(ValueError, match="out must be a C-contiguous, writable array"):
        numerics.row_dot(X, w, np.empty(6)[::2])
    read_only = np.empty(3)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="out must be a C-contiguous, writable array"):
        numerics.row_dot(X, w, read_only)


@given(arrays(np.float64, (5, 3), elements=finite), arrays(np.float64, (3, 3), elements=finite))
def test_quadratic_forms_in_their_documented_order(D, C):
    got = numerics.quadratic_forms(D, C)
    for r, d in enumerate(D.tolist()):
        terms = [(d[i] * d[j]) * float(C[i, j]) for i in range(3) for j in range(3)]
        assert got[r] == _in_tree_order(terms)


def test_ln_known_answers_and_errors():
    assert numerics.ln(1.0) == 0.0
    assert numerics.ln(math.e) == 1.0
    assert numerics.ln(2.0) == 0.6931471805599453
    with pytest.raises(ValueError, match=r"ln needs a positive finite number, got 0\.0"):
        numerics.ln(0.0)
    with pytest.raises(ValueError, match=r"ln needs a positive finite number, got -1\.0"):
        numerics.ln(-1.0)


@given(st.floats(1e-300, 1e300))
def test_ln_is_within_an_ulp_of_the_platform_log(x):
    assert abs(numerics.ln(x) - math.log(x)) <= math.ulp(math.log(x))


def test_jacobi_eigenvalues_known_answer():
    assert_allclose(exact.jacobi_eigenvalues([[2.0, 1.0], [1.0, 2.0]]), [3.0, 1.0])
    assert_array_equal(exact.jacobi_eigenvalues([[5.0, 0.0], [0.0, 7.0]]), [7.0, 5.0])


def test_dot_refuses_mismatched_or_non_finite_vectors():
    with pytest.raises(ValueError, match="dot of vectors of different lengths"):
        exact.dot([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="dot of non-finite values"):
        exact.dot([math.inf], [1.0])


def test_compiled_kernels_refuse_a_source_changed_since_the_build(tmp_path, monkeypatch):
    from quantpipe import compiled
    from quantpipe.errors import SetupError

    def predict():
        compiled.kernels.cache_clear()
        return numerics.row_dot(np.ones((1, 8)), np.ones(8), np.empty(1))

    compiled.kernels()  # this checkout's build is current
    edited = tmp_path / "_kernels.c"
    edited.write_bytes(compiled.SOURCE.read_bytes() + b"\n/* an edit */\n")
    monkeypatch.setattr(compiled, "SOURCE", edited)
    with pytest.raises(
        SetupError,
        match=r"_kernels.c changed since _quantpipe_kernels was built from it; "
        r"rebuild it with `pip install --no-deps --no-build-isolation -e .` in the repository",
    ):
        predict()
    monkeypatch.setattr(compiled, "SOURCE", tmp_path / "absent.c")  # an installed package
    assert predict().tolist() == [8.0]
    import _quantpipe_kernels

    monkeypatch.setattr(_quantpipe_kernels, "FLAGS", "-O3 -ffp-contract=fast")
    with pytest.raises(SetupError, match=r"^_quantpipe_kernels was built without -ffp-contract"):
        predict()
    monkeypatch.delattr(_quantpipe_kernels, "FLAGS")  # a build older than the flags' record
    with pytest.raises(SetupError, match=r"^_quantpipe_kernels was built without -ffp-contract"):
        predict()
    monkeypatch.setitem(sys.modules, "_quantpipe_kernels", None)  # import fails: not built
    with pytest.raises(
        SetupError,
        match=r"^quantpipe's compiled kernels \(_quantpipe_kernels\) are not built; "
        r"rebuild it with",
    ):
        predict()
    compiled.kernels.cache_clear()


@pytest.mark.parametrize("k", [8, 3])
def test_row_dot_checked_names_the_first_result_that_is_not_finite(k):
    X, w = np.ones((1000, k)), np.full(k, 2.0)
    assert numerics.row_dot_checked(X, w, np.empty(1000), 0.5) == -1
    X[900, 0] = 1e308  # 2e308 overflows: inf
    X[700, 1], X[701, 1] = np.inf, -np.inf  # NaN only where inf meets -inf: not here
    X[702, 0], X[702, 1] = np.inf, -np.inf  # inf + -inf: NaN
    out = np.empty(1000)
    assert numerics.row_dot_checked(X, w, out, 0.5) == 700
    assert np.isnan(out[702])
    assert numerics.row_dot_checked(X[701:], w, np.empty(299)) == 0
    assert numerics.row_dot_checked(X[703:], w, np.empty(297)) == 900 - 703
    assert numerics.row_dot_checked(np.ones((2, 0)), np.ones(0), np.empty(2), np.inf) == 0
    assert numerics.row_dot_checked(np.ones((0, 0)), np.ones(0), np.empty(0), np.inf) == -1


def test_threaded_prediction_names_the_first_overflow_across_chunks(monkeypatch):
    import quantpipe.quant.linear as q

    monkeypatch.setattr(q, "PARALLEL_CHUNK_ROWS", 100)
    X = np.ones((1000, 8))
    X[[950, 420, 421], 3] = 1e308
    predictions, bad = q.predict_checked(X, np.full(8, 4.0), 0.0, threads=3)
    assert bad == 420
    assert predictions[419] == 32.0
    assert q.predict_checked(X[:400], np.full(8, 4.0), 0.0, threads=3)[1] == -1


def test_a_prediction_is_written_into_the_out_given_with_the_same_bits(monkeypatch):
    import quantpipe.quant.linear as q

    rng = np.random.default_rng(5)
    X, w = rng.normal(size=(1000, 8)), rng.normal(size=8)
    expected = q.predict(X, w, 0.25)
    out = np.full(1000, np.nan)
    assert q.predict(X, w, 0.25, out=out) is out
    assert _bits(out) == _bits(expected)
    monkeypatch.setattr(q, "PARALLEL_CHUNK_ROWS", 100)  # the threads write their slices of it
    out[:] = np.nan
    assert q.predict(X, w, 0.25, threads=3, out=out) is out
    assert _bits(out) == _bits(expected)


@pytest.mark.parametrize(
    ("out", "error", "message"),
    [
        ([0.0] * 4, TypeError, r"^out must be a float64 numpy array, got list$"),
        (np.empty(4, np.float32), TypeError, r"^out must be a float64 numpy array, got float32 "),
        (
            np.empty(5),
            ValueError,
            r"^out must have shape \(4,\), one value a row of X, got \(5,\)$",
        ),
        (np.empty(8)[::2], ValueError, r"^out must be C-contiguous and writable$"),
        (np.frombuffer(bytes(32)), ValueError, r"^out must be C-contiguous and writable$"),
        ("X", ValueError, r"^out must not overlap X$"),
    ],
)
def test_an_out_that_cannot_take_the_predictions_is_refused(out, error, message):
    X = np.ones((4, 8))
    out = X.reshape(-1)[4:8] if isinstance(out, str) else out  # contiguous, inside X
    with pytest.raises(error, match=message):
        numerics.output_array(out, X)
    assert numerics.output_array(None, X).shape == (4,)
    good = np.empty(4)
    assert numerics.output_array(good, X) is good


def test_an_out_inside_the_callers_input_is_refused_even_where_it_is_converted():
    import quantpipe.quant.linear as q

    F = np.asfortranarray(np.ones((40, 8)))  # its column 0 is contiguous: a valid out but for X
    with pytest.raises(ValueError, match=r"^out must not overlap X$"):
        q.predict(F, np.ones(8), 0.0, out=F[:, 0])
    F32 = np.ones((4, 8), np.float32)  # converted to float64 whole: out inside the original
    inside = F32.view(np.float64).reshape(-1)[:4]
    with pytest.raises(ValueError, match=r"^out must not overlap X$"):
        q.predict(F32, np.ones(8), 0.0, out=inside)


def test_row_dot_of_a_column_major_input_is_copied_a_block_at_a_time(monkeypatch):
    monkeypatch.setattr(numerics, "COPY_ROWS", 7)
    rng = np.random.default_rng(3)
    X = np.asfortranarray(rng.normal(size=(30, 8)))
    w = rng.normal(size=8)
    X[20, 2] = np.inf
    X[27, 1] = np.nan  # a later block's: the first one is named
    out = np.empty(30)
    assert numerics.row_dot_checked(X, w, out, 0.5) == 20
    expected = [_reference_dot(r, w.tolist()) + 0.5 for r in np.ascontiguousarray(X).tolist()]
    finite = [i for i in range(30) if i not in (20, 27)]
    assert [out[i] for i in finite] == [expected[i] for i in finite]
    X32 = np.asfortranarray(X.astype(np.float32))  # converted a block at a time too
    assert numerics.row_dot_checked(X32, w, out, 0.5) == 20
    expected = [_reference_dot(r, w.tolist()) + 0.5 for r in X32.astype(np.float64).tolist()]
    assert [out[i] for i in finite] == [expected[i] for i in finite]
    with pytest.raises(ValueError, match=r"^row_dot needs X \(n, k\), w \(k,\) and out \(n,\)"):
        numerics.row_dot_checked(X, w, np.empty(31), 0.5)
