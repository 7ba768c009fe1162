"""Exact integer kernels for the quantized network: the same bits on every machine.

Every sum the quantized network computes is a sum of products of integers. A float32 holds
every integer below 2**24 exactly, a float64 every one below 2**53, so when the largest
possible partial sum is below that, a BLAS matrix product of integer-valued arrays is
*exact*, in whatever order or with whatever fused multiply-adds the CPU's kernel adds the
terms: :func:`int_matmul` uses float32 (fastest) or float64 when it can, and numpy's int64
product (exact, slower) beyond. :func:`requantize` rescales by a fixed-point multiplier in
int64, with no float at all.
"""

from __future__ import annotations

import numpy as np

#: Partial sums below this are exact in float64.
EXACT_FLOAT = 2**53
#: Partial sums below this are exact in float32.
EXACT_FLOAT32 = 2**24
#: Bits of a fixed-point multiplier at most (int64 products need headroom above them).
MULTIPLIER_BITS = 31


def int_matmul(a: np.ndarray, b: np.ndarray, bound: int) -> np.ndarray:
    """``a @ b`` for integer-valued arrays, exactly, as int64.

    Parameters
    ----------
    a : ndarray of shape (n, k), integers
    b : ndarray of shape (k, m), integers
    bound : int
        An upper bound on ``sum over k of |a[i, k] * b[k, j]|``, for every ``i, j``.

    Returns
    -------
    ndarray of shape (n, m)
        Integer values: float32 or float64 when exact, else int64.
    """
    if bound < EXACT_FLOAT32:
        return a.astype(np.float32, copy=False) @ b.astype(np.float32, copy=False)
    if bound < EXACT_FLOAT:
        return a.astype(np.float64, copy=False) @ b.astype(np.float64, copy=False)
    if bound >= 2**63:
        raise ValueError(f"sums up to {bound} overflow int64")
    return a.astype(np.int64) @ b.astype(np.int64)


def fixed_point(multiplier: np.ndarray, acc_bound: int) -> tuple[np.ndarray, np.ndarray]:
    """Positive float multipliers as ``m0 / 2**shift``, so that ``acc * m0`` fits in int64.

    Parameters
    ----------
    multiplier : ndarray of shape (c,), positive float64
    acc_bound : int
        The largest ``|acc|`` the multipliers will see.

    Returns
    -------
    m0 : ndarray of shape (c,), int64
        At most ``MULTIPLIER_BITS`` bits, and fewer when ``acc_bound`` needs the headroom.
    shift : ndarray of shape (c,), int64
        From 1 to 62.

    Raises
    ------
    ValueError
        If a multiplier is not positive and finite, or ``acc_bound`` leaves fewer than 8 bits.
    """
    multiplier = np.asarray(multiplier, dtype=np.float64)
    if not np.all(np.isfinite(multiplier) & (multiplier > 0)):
        raise ValueError("a requantization multiplier is not positive and finite")
    bits = min(MULTIPLIER_BITS, 62 - max(int(acc_bound), 1).bit_length())
    if bits < 8:
        raise ValueError(f"accumulators up to {acc_bound} leave no room for a multiplier")
    _, exponent = np.frexp(multiplier)  # multiplier == mantissa * 2**exponent
    shift = np.clip(bits - exponent.astype(np.int64), 1, 62)
    m0 = np.rint(np.ldexp(multiplier, shift)).astype(np.int64)  # exact scaling by 2**shift
    full = (m0 == 2**bits) & (shift > 1)  # rounded up to 2**bits: the same value, one bit less
    m0, shift = np.where(full, m0 // 2, m0), np.where(full, shift - 1, shift)
    if int(m0.max()) > 2**bits:
        raise ValueError(f"a requantization multiplier is too large: {float(multiplier.max())}")
    return m0, shift


def requantize(acc: np.ndarray, m0: np.ndarray, shift: np.ndarray, axis: int) -> np.ndarray:
    """``round(acc * m0 / 2**shift)`` in int64, halves rounded up, per channel along ``axis``.

    Parameters
    ----------
    acc : ndarray, int64
    m0, shift : ndarray of shape (acc.shape[axis],), int64
        From :func:`fixed_point`.
    axis : int
        The channel axis of ``acc``.
    """
    shape = [1] * acc.ndim
    shape[axis] = -1
    m0 = m0.reshape(shape)
    shift = shift.reshape(shape)
    return (acc * m0 + (np.int64(1) << (shift - 1))) >> shift


def patches(x: np.ndarray) -> np.ndarray:
    """The 3x3 patches of a channels-last batch, one row per output pixel.

    Nine shifted copies side by side (each a run of ``c`` contiguous values per pixel).

    Parameters
    ----------
    x : ndarray of shape (n, h, w, c)

    Returns
    -------
    ndarray of shape (n * (h - 2) * (w - 2), 9 * c)
        Columns in the order (kernel row, kernel column, channel): a ``(c_out, c, 3, 3)``
        weight matches them as ``weight.transpose(2, 3, 1, 0).reshape(9 * c, c_out)``
        (:func:`patch_order`).
    """
    n, h, w, c = x.shape
    shifted = [x[:, i : i + h - 2, j : j + w - 2] for i in range(3) for j in range(3)]
    return np.concatenate(shifted, axis=-1).reshape(n * (h - 2) * (w - 2), 9 * c)


def patch_order(c: int) -> np.ndarray:
    """Where each weight column goes among the columns of :func:`patches`.

    Entry ``f`` is the column of :func:`patches` (row, column, channel) that column ``f`` of
    ``weight.reshape(c_out, c * 9)`` (channel, row, column) multiplies.
    """
    channel, tap = np.divmod(np.arange(9 * c), 9)
    return tap * c + channel
