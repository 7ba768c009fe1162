"""Post-training quantization math: pure functions of arrays and values, no I/O.

Two layers:

* :func:`quantize` / :func:`dequantize` map a float vector to unsigned integer codes with a
  scale and zero point per group (per-tensor: one group; per-channel: one per element) and
  back. Zero is always exactly representable. :func:`pack_codes` / :func:`unpack_codes` store
  ``bits``-wide codes densely, so a 4-bit model really takes 4 bits a coefficient.
* :func:`quantize_linear` quantizes a linear model ``y = X @ w + b`` the way that keeps its
  predictions: the coefficients are quantized on standardized features (``v = w * std``, where
  the error no longer depends on each feature's unit and offset), the standard deviation is
  folded back into a per-feature scale, the intercept stays in float64 outside the
  coefficients' scale, and it is re-centred so that the prediction at the training means is
  unchanged by rounding (bias correction).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from quantpipe import numerics

#: Narrowest and widest code widths supported.
MIN_BITS = 2
MAX_BITS = 16
#: dtype of the per-feature scales stored in a quantized model file.
SCALE_DTYPE = np.dtype("<f4")


def code_dtype(bits: int) -> np.dtype:
    """The unsigned integer dtype that holds one ``bits``-wide code (before packing)."""
    _check_bits(bits)
    return np.dtype("u1") if bits <= 8 else np.dtype("<u2")


def _check_bits(bits: int) -> None:
    if isinstance(bits, bool) or not isinstance(bits, int | np.integer):
        raise TypeError(f"bits must be an integer, got {type(bits).__name__}")
    if not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError(f"bits must be from {MIN_BITS} to {MAX_BITS}, got {bits}")


def _as_finite_vector(values: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return array


@dataclass(frozen=True)
class QuantizedTensor:
    """Integer codes with their dequantization parameters.

    ``dequantize(t) == t.scale[g] * (t.codes - t.zero_point[g])`` for the group ``g`` of each
    element.

    Attributes
    ----------
    codes : ndarray of shape (n,), uint8 or uint16
        Unsigned codes in ``[0, 2**bits - 1]``.
    scale : ndarray of shape (k,), float64
        Step between adjacent codes, per group (``k == 1`` per-tensor, ``k == n`` per-channel).
    zero_point : ndarray of shape (k,), same dtype as ``codes``
        The code that stands for 0.0, per group.
    bits : int
        Width of a code, 2 to 16.
    """

    codes: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray
    bits: int


def quantize(
    values: np.ndarray, bits: int, *, symmetric: bool = True, per_channel: bool = False
) -> QuantizedTensor:
    """Quantize a vector to ``bits``-wide unsigned codes, round to nearest.

    Parameters
    ----------
    values : array-like of shape (n,)
        Finite floats.
    bits : int
        Code width, 2 to 16.
    symmetric : bool, default=True
        If True, codes span ``[-(2**(bits-1) - 1), 2**(bits-1) - 1]`` around the fixed zero
        point ``2**(bits-1)`` and the scale is ``max|values| / (2**(bits-1) - 1)``. If False,
        the range ``[min(values, 0), max(values, 0)]`` is spread over all ``2**bits`` codes
        and the zero point is rounded to an integer code, so 0.0 stays exact.
    per_channel : bool, default=False
        One scale and zero point per element instead of one for the whole vector.

    Returns
    -------
    QuantizedTensor
        For every element, ``|dequantize(t) - values| <= scale / 2`` (up to float rounding).

    Raises
    ------
    ValueError
        If ``values`` is not 1-D or not finite, or ``bits`` is outside 2 to 16.
    TypeError
        If ``bits`` is not an integer.
    """
    _check_bits(bits)
    x = _as_finite_vector(values, "values")
    groups = x.reshape(-1, 1) if per_channel else x.reshape(1, -1)
    if symmetric:
        qmax = 2 ** (bits - 1) - 1
        amax = np.max(np.abs(groups), axis=1, initial=0.0)
        scale = np.where(amax > 0, amax / qmax, 1.0)
        zero_point = np.full(scale.shape, 2 ** (bits - 1), dtype=np.float64)
        q = np.clip(np.rint(groups / scale[:, None]), -qmax, qmax) + zero_point[:, None]
    else:
        levels = 2**bits - 1
        lo = np.minimum(np.min(groups, axis=1, initial=0.0), 0.0)
        hi = np.maximum(np.max(groups, axis=1, initial=0.0), 0.0)
        scale = np.where(hi > lo, (hi - lo) / levels, 1.0)
        zero_point = np.clip(np.rint(-lo / scale), 0, levels)
        q = np.clip(np.rint(groups / scale[:, None]) + zero_point[:, None], 0, levels)
    dtype = code_dtype(bits)
    return QuantizedTensor(
        codes=q.reshape(-1).astype(dtype),
        scale=scale.astype(np.float64),
        zero_point=zero_point.astype(dtype),
        bits=bits,
    )


def _per_element(group_values: np.ndarray, n: int) -> np.ndarray:
    if group_values.shape not in ((1,), (n,)):
        raise ValueError(f"expected 1 or {n} group values, got shape {group_values.shape}")
    return np.broadcast_to(group_values, (n,))


def dequantize(tensor: QuantizedTensor) -> np.ndarray:
    """Map codes back to floats.

    Parameters
    ----------
    tensor : QuantizedTensor

    Returns
    -------
    ndarray of shape (n,), float64
        ``scale * (codes - zero_point)``, per group.
    """
    return dequantize_codes(tensor.codes, tensor.scale, tensor.zero_point)


def dequantize_codes(codes: np.ndarray, scale: np.ndarray, zero_point: np.ndarray) -> np.ndarray:
    """``scale * (codes - zero_point)`` with per-tensor or per-element parameters.

    Parameters
    ----------
    codes : ndarray of shape (n,)
    scale : ndarray of shape (1,) or (n,)
    zero_point : ndarray of shape (1,) or (n,)

    Returns
    -------
    ndarray of shape (n,), float64
    """
    n = codes.shape[0]
    scale = _per_element(np.asarray(scale, dtype=np.float64), n)
    zero = _per_element(np.asarray(zero_point, dtype=np.float64), n)
    return scale * (codes.astype(np.float64) - zero)


def pack_codes(codes: np.ndarray, bits: int) -> np.ndarray:
    """Pack ``bits``-wide unsigned codes densely, least significant bit first.

    Parameters
    ----------
    codes : ndarray of shape (n,)
        Unsigned integers below ``2**bits``.
    bits : int
        2 to 16.

    Returns
    -------
    ndarray of shape (ceil(n * bits / 8),), uint8
        For ``bits`` of 8 or 16 this is the little-endian byte image of the codes.

    Raises
    ------
    ValueError
        If a code does not fit in ``bits`` bits.
    """
    _check_bits(bits)
    c = np.asarray(codes).astype(np.uint32).reshape(-1)
    if c.size and int(c.max()) >= 2**bits:
        raise ValueError(f"a code does not fit in {bits} bits: {int(c.max())}")
    planes = (c[:, None] >> np.arange(bits, dtype=np.uint32)) & 1
    return np.packbits(planes.astype(np.uint8).reshape(-1), bitorder="little")


def unpack_codes(packed: np.ndarray, bits: int, n: int) -> np.ndarray:
    """Inverse of :func:`pack_codes`.

    Parameters
    ----------
    packed : ndarray of uint8
        Exactly ``ceil(n * bits / 8)`` bytes.
    bits : int
        2 to 16.
    n : int
        Number of codes.

    Returns
    -------
    ndarray of shape (n,), dtype ``code_dtype(bits)``

    Raises
    ------
    ValueError
        If ``packed`` does not have the expected length.
    """
    _check_bits(bits)
    expected = -(-n * bits // 8)
    packed = np.asarray(packed)
    if packed.dtype != np.uint8 or packed.shape != (expected,):
        raise ValueError(
            f"expected {expected} packed bytes for {n} codes of {bits} bits, "
            f"got shape {packed.shape} of {packed.dtype}"
        )
    flat = np.unpackbits(packed, count=n * bits, bitorder="little").astype(np.uint32)
    values = (flat.reshape(n, bits) << np.arange(bits, dtype=np.uint32)).sum(axis=1)
    return values.astype(code_dtype(bits))


def feature_stats(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-feature mean, standard deviation and covariance of training data.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    Returns
    -------
    mean : ndarray of shape (n_features,)
    std : ndarray of shape (n_features,)
        Population standard deviation; a constant feature gets 1.0 (as scikit-learn's
        ``StandardScaler`` does), so folding never divides by zero.
    cov : ndarray of shape (n_features, n_features)
        Population covariance (``np.cov(X, rowvar=False, bias=True)``), for data-aware
        rounding.

    All three are computed exactly and rounded once (:func:`quantpipe.numerics.mean_std_cov`),
    so they are the same on every machine.
    """
    mean, std, cov = numerics.mean_std_cov(X)
    return mean, np.where(std > 0, std, 1.0), cov


@dataclass(frozen=True)
class QuantizedLinear:
    """A quantized linear model, as stored: ``y = X @ weights() + intercept``.

    Attributes
    ----------
    codes : ndarray of shape (n_features,), uint8 or uint16
        Unsigned codes, unpacked.
    scale : ndarray of shape (n_features,), float32
        Per-feature step in the units of the raw feature: the step on the standardized
        coefficient divided by the feature's standard deviation (the folded statistic).
    zero_point : ndarray of shape (k,), dtype of ``codes``
        ``k == 1`` per-tensor, ``k == n_features`` per-channel.
    intercept : float
        Kept in float64, outside the coefficients' scale; with bias correction, re-centred
        on the training means.
    bits : int
    step : ndarray of shape (k,), float64
        The quantization step(s) on the coefficients as quantized (standardized ones when
        ``standardize``), for the file header and for error bounds.
    """

    codes: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray
    intercept: float
    bits: int
    step: np.ndarray

    def weights(self) -> np.ndarray:
        """Dequantized coefficients, shape (n_features,), float64."""
        return dequantize_codes(self.codes, self.scale, self.zero_point)


def quantize_linear(
    coef: np.ndarray,
    intercept: float,
    mean: np.ndarray,
    std: np.ndarray,
    *,
    bits: int,
    symmetric: bool = True,
    per_channel: bool = False,
    standardize: bool = True,
    bias_correction: bool = True,
    rounding: str = "nearest",
    cov: np.ndarray | None = None,
) -> QuantizedLinear:
    """Post-training quantization of a linear model ``y = X @ coef + intercept``.

    Parameters
    ----------
    coef : ndarray of shape (n_features,)
        Float coefficients.
    intercept : float
    mean, std : ndarray of shape (n_features,)
        Training-set feature statistics (see :func:`feature_stats`); ``std`` must be > 0.
    bits : int
        2 to 16.
    symmetric, per_channel : bool
        Passed to :func:`quantize`.
    standardize : bool, default=True
        Quantize ``coef * std`` (the coefficients on standardized features) and fold ``std``
        back into the stored per-feature scale. Without it, ``coef`` is quantized as is and
        features measured in large units dominate the shared scale.
    bias_correction : bool, default=True
        Set the intercept so that the prediction at ``mean`` equals the float model's:
        ``intercept + (coef - w_hat) @ mean``. Without it the rounding error of every
        coefficient is multiplied by its feature's mean offset (large for latitude and
        longitude).
    rounding : {"nearest", "data-aware"}, default="nearest"
        ``data-aware`` chooses each code's floor or ceil, and the clipping range, to
        minimise the prediction error on the training data (:func:`quantize_data_aware`);
        it needs ``cov`` and applies to per-tensor scales (per-channel codes are exact
        either way).
    cov : ndarray of shape (n_features, n_features), optional
        Covariance of the training features, for ``data-aware`` rounding.

    Returns
    -------
    QuantizedLinear

    Raises
    ------
    ValueError
        On shape mismatches, non-finite inputs, a non-positive ``std`` or bad ``bits``.
    """
    w = _as_finite_vector(coef, "coef")
    mean = _as_finite_vector(mean, "mean")
    std = _as_finite_vector(std, "std")
    if not mean.shape == std.shape == w.shape:
        raise ValueError(
            f"coef, mean and std must have the same shape, got {w.shape}, {mean.shape}, {std.shape}"
        )
    if np.any(std <= 0):
        raise ValueError("std must be > 0 for every feature")
    if not np.isfinite(intercept):
        raise ValueError("intercept must be finite")
    fold = std if standardize else np.ones_like(std)
    if rounding == "data-aware" and not per_channel:
        if cov is None:
            raise ValueError("data-aware rounding needs the training covariance, cov")
        # the prediction error's second moment: its variance if bias correction removes the
        # mean error, else variance plus squared mean
        moment = np.asarray(cov, dtype=np.float64)
        if not bias_correction:
            moment = moment + np.outer(mean, mean)
        tensor = quantize_data_aware(
            w * fold, moment / np.outer(fold, fold), bits, symmetric=symmetric
        )
    elif rounding in ("nearest", "data-aware"):
        tensor = quantize(w * fold, bits, symmetric=symmetric, per_channel=per_channel)
    else:
        raise ValueError(f"unknown rounding {rounding!r}; use nearest or data-aware")
    step = _per_element(tensor.scale, w.shape[0])
    scale = (step / fold).astype(SCALE_DTYPE)
    w_hat = dequantize_codes(tensor.codes, scale, tensor.zero_point)
    b = float(intercept)
    if bias_correction:
        b = b + numerics.dot(w - w_hat, mean)
    return QuantizedLinear(
        codes=tensor.codes,
        scale=scale,
        zero_point=tensor.zero_point,
        intercept=b,
        bits=bits,
        step=tensor.scale,
    )


#: Rows per chunk when a large batch is predicted on several threads.
PARALLEL_CHUNK_ROWS = 1 << 18


def predict(
    X: np.ndarray, weights: np.ndarray, intercept: float, *, threads: int = 1
) -> np.ndarray:
    """Predictions of a linear model, the same bits for a row whatever its batch or machine.

    BLAS matrix-vector products (``X @ w``) accumulate a row in an order that depends on the
    batch size, the row's position in it and the CPU's kernels, so one row sent alone, or
    on another machine, can differ in its last bits. Here every row is the sum of its
    products ``x_j * w_j`` in one fixed pairwise order, then ``+ intercept``, one correctly
    rounded operation at a time (:func:`quantpipe.numerics.row_dot`), so the evaluate stage,
    the batch command and the server agree bit for bit on every machine, and a large batch
    can be split over threads without changing a bit.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    weights : ndarray of shape (n_features,)
    intercept : float
    threads : int, default=1
        Threads for batches larger than :data:`PARALLEL_CHUNK_ROWS` (numpy releases the
        GIL in its loops).

    Returns
    -------
    ndarray of shape (n_samples,), float64
    """
    X = np.asarray(X, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    out = np.empty(X.shape[0])

    def rows(start: int, stop: int) -> None:
        numerics.row_dot(X[start:stop], w, out[start:stop], float(intercept))

    n = X.shape[0]
    if threads <= 1 or n <= PARALLEL_CHUNK_ROWS:
        rows(0, n)
        return out
    starts = range(0, n, PARALLEL_CHUNK_ROWS)
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda start: rows(start, min(start + PARALLEL_CHUNK_ROWS, n)), starts))
    return out


# -- data-aware rounding ---------------------------------------------------------------------

#: Clipping ranges tried by data-aware rounding, as fractions of the full range.
CLIP_GRID = np.linspace(0.2, 1.0, 161)
#: Up to this many coefficients every floor/ceil choice is tried; beyond it, coordinate descent.
EXHAUSTIVE_MAX = 12


def _rounding_choices(lo: np.ndarray, hi: np.ndarray, s: float, v: np.ndarray, C: np.ndarray):
    """The floor/ceil choice (codes) minimising (v - s * codes)' C (v - s * codes)."""
    n = v.shape[0]
    if n <= EXHAUSTIVE_MAX:
        picks = (np.arange(2**n)[:, None] >> np.arange(n)) & 1
        codes = np.where(picks == 1, hi, lo)
        err = numerics.quadratic_forms(codes * s - v, C)
        k = int(np.argmin(err))
        return codes[k], float(err[k])
    codes = np.where(np.abs(lo * s - v) <= np.abs(hi * s - v), lo, hi)
    for _ in range(20):  # coordinate descent from round-to-nearest
        changed = False
        for j in range(n):
            best: tuple[float, float] | None = None
            for c in {lo[j], hi[j]}:
                trial = codes.copy()
                trial[j] = c
                e = float(numerics.quadratic_forms((trial * s - v)[None], C)[0])
                if best is None or e < best[0] - 1e-18:
                    best = (e, c)
            assert best is not None  # the set above is never empty
            if best[1] != codes[j]:
                codes[j] = best[1]
                changed = True
        if not changed:
            break
    return codes, float(numerics.quadratic_forms((codes * s - v)[None], C)[0])


def quantize_data_aware(
    values: np.ndarray, C: np.ndarray, bits: int, *, symmetric: bool = True
) -> QuantizedTensor:
    """Per-tensor quantization that minimises a quadratic error, not each value's error.

    For every clipping range in :data:`CLIP_GRID` (a fraction of the full range), chooses
    each value's floor or ceil code so that ``(v - v_hat)' C (v - v_hat)`` is smallest, and
    keeps the best range. With ``C`` the covariance of the features the values multiply,
    that is the variance of the prediction error on the data ``C`` came from. Round to
    nearest over the full range is one of the candidates, so the result is never worse on
    that objective.

    Parameters
    ----------
    values : ndarray of shape (n,)
    C : ndarray of shape (n, n)
        Symmetric positive semi-definite.
    bits : int
        2 to 16.
    symmetric : bool
        As for :func:`quantize`.

    Returns
    -------
    QuantizedTensor
        One scale and zero point.

    Raises
    ------
    ValueError
        On bad shapes, non-finite input or bad ``bits``.
    """
    _check_bits(bits)
    v = _as_finite_vector(values, "values")
    C = np.asarray(C, dtype=np.float64)
    if C.shape != (v.shape[0], v.shape[0]) or not np.all(np.isfinite(C)):
        raise ValueError(f"C must be a finite ({v.shape[0]}, {v.shape[0]}) matrix")
    full = quantize(v, bits, symmetric=symmetric)
    if not np.any(v):
        return full
    best: tuple[float, QuantizedTensor] | None = None
    for alpha in CLIP_GRID:
        if symmetric:
            qmax = 2 ** (bits - 1) - 1
            s = alpha * np.max(np.abs(v)) / qmax
            zero, qlo, qhi = 2 ** (bits - 1), -qmax, qmax
        else:
            levels = 2**bits - 1
            s = alpha * (max(v.max(), 0.0) - min(v.min(), 0.0)) / levels
            zero = int(np.clip(np.rint(-min(v.min(), 0.0) * alpha / s), 0, levels))
            qlo, qhi = -zero, levels - zero
        lo = np.clip(np.floor(v / s), qlo, qhi)
        hi = np.clip(np.ceil(v / s), qlo, qhi)
        codes, err = _rounding_choices(lo, hi, s, v, C)
        if best is None or err < best[0]:
            dtype = code_dtype(bits)
            best = (
                err,
                QuantizedTensor(
                    codes=(codes + zero).astype(dtype),
                    scale=np.array([s]),
                    zero_point=np.array([zero], dtype=dtype),
                    bits=bits,
                ),
            )
    assert best is not None
    return best[1]


# -- float casts -----------------------------------------------------------------------------

#: The float casts a baseline can be stored as, in report order.
CASTS = ("float32", "float16", "bfloat16")


def to_bfloat16_bits(x: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns (uint16) of float values, rounded to nearest, ties to even.

    Parameters
    ----------
    x : ndarray of float, finite

    Returns
    -------
    ndarray of uint16, the shape of ``x``
    """
    bits32 = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits32 + 0x7FFF + ((bits32 >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def from_bfloat16_bits(bits16: np.ndarray) -> np.ndarray:
    """float64 values of bfloat16 bit patterns (uint16)."""
    return (np.asarray(bits16, dtype=np.uint32) << 16).view(np.float32).astype(np.float64)


def cast_values(x: np.ndarray, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """Store values as a narrower float, as a naive baseline would.

    Parameters
    ----------
    x : ndarray of float64
    dtype : {"float32", "float16", "bfloat16"}

    Returns
    -------
    stored : ndarray
        The stored form: ``<f4``, ``<f2``, or bfloat16 bit patterns as ``<u2``.
    decoded : ndarray of float64
        What the stored form stands for.

    Raises
    ------
    ValueError
        On an unknown dtype or a value the dtype cannot hold (it would become inf).
    """
    x = np.asarray(x, dtype=np.float64)
    if dtype == "bfloat16":
        stored = to_bfloat16_bits(x).astype("<u2")
        decoded = from_bfloat16_bits(stored)
    elif dtype in ("float32", "float16"):
        with np.errstate(over="ignore"):
            stored = x.astype("<f4" if dtype == "float32" else "<f2")
        decoded = stored.astype(np.float64)
    else:
        raise ValueError(f"unknown cast {dtype!r}; use one of: {', '.join(CASTS)}")
    if not np.all(np.isfinite(decoded)):
        raise ValueError(f"a value overflows {dtype}")
    return stored, decoded


# -- integer-only inference ------------------------------------------------------------------


@dataclass(frozen=True)
class IntegerLinear:
    """A linear model evaluated with integer arithmetic, in the style of TFLite / ONNX QLinear.

    Each input is quantized per feature to an unsigned ``bits``-wide code calibrated on the
    training set, ``xq = clip(rint((x - input_lo) / input_scale), 0, 2**bits - 1)``; the
    input scales and offsets are folded into the weights and the bias, so that

        acc = xq @ weight_codes + bias_code      (integer accumulation, checked for overflow)
        y   = output_scale * acc                 (one float rescale)

    Attributes
    ----------
    weight_codes : ndarray of shape (n_features,), signed integers
    output_scale : float
    bias_code : int
    input_lo, input_scale : ndarray of shape (n_features,), float64
    bits : int
    """

    weight_codes: np.ndarray
    output_scale: float
    bias_code: int
    input_lo: np.ndarray
    input_scale: np.ndarray
    bits: int

    def input_codes(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Quantized inputs, shape (n_samples, n_features) int64, and which rows saturated
        (fell outside the calibrated range in some feature), shape (n_samples,) bool."""
        levels = 2**self.bits - 1
        codes = np.rint((np.asarray(X, dtype=np.float64) - self.input_lo) / self.input_scale)
        saturated = ((codes < 0) | (codes > levels)).any(axis=1)
        return np.clip(codes, 0, levels).astype(np.int64), saturated

    def accumulate(self, xq: np.ndarray) -> np.ndarray:
        """Integer accumulation, shape (n_samples,) int64.

        Raises
        ------
        OverflowError
            If an accumulator leaves the int32 range (it cannot, given the bound checked at
            construction; this guards the arithmetic).
        """
        acc = xq @ self.weight_codes.astype(np.int64) + self.bias_code
        if acc.size and (acc.max() > np.iinfo(np.int32).max or acc.min() < np.iinfo(np.int32).min):
            raise OverflowError("integer accumulator left the int32 range")
        return acc

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions, shape (n_samples,) float64."""
        xq, _ = self.input_codes(X)
        return self.output_scale * self.accumulate(xq).astype(np.float64)


def calibrate_inputs(
    X: np.ndarray, bits: int, calibration: str = "minmax", percentile: float = 99.9
) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature input ranges for integer-only inference.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Training data.
    bits : int
    calibration : {"minmax", "percentile"}
        The full training range, or the central ``percentile`` % of it (clipping outliers
        for a finer step on typical rows).
    percentile : float
        In (50, 100].

    Returns
    -------
    input_lo, input_scale : ndarray of shape (n_features,)
    """
    X = np.asarray(X, dtype=np.float64)
    if calibration == "minmax":
        lo, hi = X.min(axis=0), X.max(axis=0)
    elif calibration == "percentile":
        lo = np.percentile(X, 100.0 - percentile, axis=0)
        hi = np.percentile(X, percentile, axis=0)
    else:
        raise ValueError(f"unknown calibration {calibration!r}; use minmax or percentile")
    span = np.where(hi > lo, hi - lo, 1.0)
    return lo, span / (2**bits - 1)


def quantize_integer(
    coef: np.ndarray,
    intercept: float,
    X_train: np.ndarray,
    *,
    bits: int,
    calibration: str = "minmax",
    percentile: float = 99.9,
) -> IntegerLinear:
    """Build an integer-only model from a float linear model and its training data.

    The weight per input code, ``w * input_scale``, is quantized symmetrically (one scale,
    ``bits`` wide) with data-aware rounding against the covariance of the input codes; the
    input offsets and the bias are folded into one integer bias, corrected so that the
    prediction at the training mean of the codes is the float model's.

    Raises
    ------
    ValueError
        On bad shapes or if the int32 accumulator could overflow for some input.
    """
    w = _as_finite_vector(coef, "coef")
    lo, sx = calibrate_inputs(X_train, bits, calibration, percentile)
    w_code = w * sx  # the weight of one input code step
    levels = 2**bits - 1
    xq = np.clip(np.rint((X_train - lo) / sx), 0, levels)
    xq_mean, _, C = numerics.mean_std_cov(xq)
    tensor = quantize_data_aware(w_code, C, bits, symmetric=True)
    S = float(tensor.scale[0])
    Wq = tensor.codes.astype(np.int64) - int(tensor.zero_point[0])
    # y = w @ x + b = w_code @ (x - lo) / sx + (b + w @ lo); bias-correct at the mean code
    b_folded = float(intercept) + numerics.dot(w, lo) + numerics.dot(w_code - S * Wq, xq_mean)
    B = int(np.rint(b_folded / S))
    bound = int(np.abs(Wq).sum()) * levels + abs(B)
    if bound > np.iinfo(np.int32).max:
        raise ValueError(f"the int32 accumulator could overflow (bound {bound}); use fewer bits")
    dtype = np.int8 if bits <= 8 else np.int16
    return IntegerLinear(
        weight_codes=Wq.astype(dtype),
        output_scale=S,
        bias_code=B,
        input_lo=lo,
        input_scale=sx,
        bits=bits,
    )
