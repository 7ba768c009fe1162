"""Data-aware rounding: codes chosen to minimise the prediction error, not each value's.

Each code's floor or ceil, and the clipping range, minimise a quadratic error (the
prediction error's variance on the training data). No I/O.
"""

from __future__ import annotations

import numpy as np

from quantpipe import numerics
from quantpipe.quant.codes import (
    QuantizedTensor,
    as_finite_vector,
    check_bits,
    code_dtype,
    quantize,
)

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
    check_bits(bits)
    v = as_finite_vector(values, "values")
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
