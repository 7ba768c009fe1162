"""Integer codes: the bit-width rule, quantize and dequantize, dense packing. No I/O.

:func:`quantize` / :func:`dequantize` map a float vector to unsigned integer codes with a
scale and zero point per group (per-tensor: one group; per-channel: one per element) and
back. Zero is always exactly representable. :func:`pack_codes` / :func:`unpack_codes` store
``bits``-wide codes densely, so a 4-bit model really takes 4 bits a coefficient.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Narrowest and widest code widths supported.
MIN_BITS = 2
MAX_BITS = 16


def code_dtype(bits: int) -> np.dtype:
    """The unsigned integer dtype that holds one ``bits``-wide code (before packing)."""
    check_bits(bits)
    return np.dtype("u1") if bits <= 8 else np.dtype("<u2")


def check_bits(bits: int) -> None:
    """The one rule for a code width: an integer from :data:`MIN_BITS` to :data:`MAX_BITS`.

    Raises
    ------
    TypeError
        If ``bits`` is not an integer (a bool is not one).
    ValueError
        If it is out of range.
    """
    if isinstance(bits, bool) or not isinstance(bits, int | np.integer):
        raise TypeError(f"bits must be an integer, got {type(bits).__name__}")
    if not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError(f"bits must be from {MIN_BITS} to {MAX_BITS}, got {bits}")


def as_finite_vector(values: np.ndarray, name: str) -> np.ndarray:
    """``values`` as a 1-D float64 array, or a ValueError naming ``name``."""
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
    check_bits(bits)
    x = as_finite_vector(values, "values")
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


def per_element(group_values: np.ndarray, n: int) -> np.ndarray:
    """Per-tensor (shape (1,)) or per-element (shape (n,)) values, broadcast to (n,)."""
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
    scale = per_element(np.asarray(scale, dtype=np.float64), n)
    zero = per_element(np.asarray(zero_point, dtype=np.float64), n)
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
    check_bits(bits)
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
    check_bits(bits)
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
