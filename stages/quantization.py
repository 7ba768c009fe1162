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

from dataclasses import dataclass

import numpy as np

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


def feature_stats(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation of training data.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    Returns
    -------
    mean : ndarray of shape (n_features,)
    std : ndarray of shape (n_features,)
        Population standard deviation; a constant feature gets 1.0 (as scikit-learn's
        ``StandardScaler`` does), so folding never divides by zero.
    """
    X = np.asarray(X, dtype=np.float64)
    mean = X.mean(axis=0)
    std = X.std(axis=0)
    return mean, np.where(std > 0, std, 1.0)


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
    tensor = quantize(w * fold, bits, symmetric=symmetric, per_channel=per_channel)
    step = _per_element(tensor.scale, w.shape[0])
    scale = (step / fold).astype(SCALE_DTYPE)
    w_hat = dequantize_codes(tensor.codes, scale, tensor.zero_point)
    b = float(intercept)
    if bias_correction:
        b = b + float((w - w_hat) @ mean)
    return QuantizedLinear(
        codes=tensor.codes,
        scale=scale,
        zero_point=tensor.zero_point,
        intercept=b,
        bits=bits,
        step=tensor.scale,
    )


def predict(X: np.ndarray, weights: np.ndarray, intercept: float) -> np.ndarray:
    """Predictions of a linear model, the same bits for a row whatever batch it is in.

    BLAS matrix-vector products (``X @ w``) accumulate a row differently depending on the
    batch size and the row's position in it, so one row sent alone can differ in its last
    bits from the same row in a batch. ``einsum`` accumulates each row the same way
    whatever surrounds it, so the evaluate stage, the batch command and the server agree
    bit for bit.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    weights : ndarray of shape (n_features,)
    intercept : float

    Returns
    -------
    ndarray of shape (n_samples,), float64
    """
    X = np.asarray(X, dtype=np.float64)
    return np.einsum("ij,j->i", X, np.asarray(weights, dtype=np.float64)) + intercept
