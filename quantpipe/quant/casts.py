"""Float casts: a model's parameters stored as a narrower float, as a naive deployment would.

``float32``, ``float16`` or ``bfloat16``. No I/O.
"""

from __future__ import annotations

import numpy as np

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
