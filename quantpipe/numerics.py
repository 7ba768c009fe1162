"""Arithmetic whose result does not depend on the machine. Pure functions, no I/O.

A float result depends on the machine when the order or the fusing of its operations does:
BLAS and LAPACK pick kernels by CPU (OpenBLAS' Haswell, SkylakeX, ... kernels accumulate in
different orders) and by thread count, numpy's SIMD loops may fuse a multiply and an add, and
its transcendental functions (``np.log``) have per-CPU implementations. Every number that
feeds an output of the pipeline is computed here instead, in one of three ways:

* **exactly, rounded once**: float64 values are binary fractions, so sums, products,
  moments and the least-squares solution of the training data are computed in integers and
  fractions (:mod:`quantpipe.exact`: ``moments``, ``lstsq``, ``dot``, ``mean``) and each result is
  rounded to float64 once, at the end;
* **in a fixed order of IEEE 754 operations**, each a separate elementwise numpy pass, so
  that no kernel choice, vector width or fused multiply-add can change a bit
  (:func:`row_dot`, :func:`quadratic_forms`): numpy's elementwise ``+``, ``-``, ``*``,
  ``/`` and ``sqrt`` are correctly rounded on every CPU, whatever loop computes them;
* in software: :func:`ln` uses Python's :mod:`decimal`, which is correctly rounded by
  specification, rather than the platform's ``log``.

What stays machine-dependent is only what no output sees: log lines and benchmarks.
"""

from __future__ import annotations

import decimal
import functools
import math

import numpy as np

# -- fixed order of IEEE operations ----------------------------------------------------------

#: Rows per block of :func:`row_dot`: a block's products stay in cache between its passes.
ROW_BLOCK = 8192
#: Up to this many rows, :func:`row_dot` computes in Python floats (the same IEEE operations
#: in the same order, without numpy's per-call overhead: one row's prediction takes 2.5 µs).
SMALL_ROWS = 4


@functools.cache
def tree_sum_order(k: int) -> tuple[tuple[tuple[int, int], ...], ...]:
    """The fixed order in which :func:`row_dot` adds the ``k`` products of a row.

    Each level adds column ``i`` and column ``width - half + i`` into column ``i``, for
    ``i < half = width // 2``; the ``width - half`` columns left are the next level's. For
    ``k = 8``: ``((p0 + p4) + (p2 + p6)) + ((p1 + p5) + (p3 + p7))``.

    Returns
    -------
    tuple of levels, each a tuple of ``(into, added)`` column pairs
    """
    levels, width = [], k
    while width > 1:
        half = width // 2
        levels.append(tuple((i, width - half + i) for i in range(half)))
        width -= half
    return tuple(levels)


def row_dot(X: np.ndarray, w: np.ndarray, out: np.ndarray, offset: float = 0.0) -> np.ndarray:
    """``out[i] = (sum over j of X[i, j] * w[j]) + offset``, the same bits on every machine.

    Every product is one correctly rounded float64 multiplication, and the products of a
    row are added pairwise in the fixed order of :func:`tree_sum_order`, one correctly
    rounded addition at a time, each level a separate numpy pass over a block of rows laid
    out by column (so every pass is a contiguous, vectorized loop): no BLAS, no fused
    multiply-add, no order that depends on the batch, the CPU, its SIMD width or the thread
    count. A row gets the same bits whatever batch it is in and whatever machine computes it.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float64
    w : ndarray of shape (n_features,), float64
    out : ndarray of shape (n_samples,), float64
        Written in place, and returned.
    offset : float, default=0.0
        Added to each row's sum last (a linear model's intercept), while the block is in
        cache; 0.0 adds nothing.

    Returns
    -------
    ndarray of shape (n_samples,)
    """
    n, k = X.shape
    if k == 0:
        out[:] = offset
        return out
    levels = tree_sum_order(k)
    if n <= SMALL_ROWS:
        weights = np.asarray(w, dtype=np.float64).tolist()
        for i, row in enumerate(X.tolist()):
            terms = [x * c for x, c in zip(row, weights, strict=True)]
            for level in levels:
                for into, added in level:
                    terms[into] = terms[into] + terms[added]
            out[i] = terms[0] + offset if offset else terms[0]
        return out
    column = np.asarray(w, dtype=np.float64).reshape(k, 1)
    products = np.empty((k, min(n, ROW_BLOCK)))
    for start in range(0, n, ROW_BLOCK):
        stop = min(start + ROW_BLOCK, n)
        p = products[:, : stop - start]
        np.multiply(X[start:stop].T, column, out=p)
        width = k
        for level in levels[:-1]:
            half = len(level)
            np.add(p[:half], p[width - half : width], out=p[:half])
            width -= half
        block = out[start:stop]
        if levels:
            np.add(p[0], p[1], out=block)
        else:
            block[:] = p[0]
        if offset:
            np.add(block, offset, out=block)
    return out


def quadratic_forms(D: np.ndarray, C: np.ndarray) -> np.ndarray:
    """``D[r] @ C @ D[r]`` for every row ``r``, in a fixed order of IEEE operations.

    Parameters
    ----------
    D : ndarray of shape (n_rows, n)
    C : ndarray of shape (n, n)

    Returns
    -------
    ndarray of shape (n_rows,)
        The terms ``(D[r, i] * D[r, j]) * C[i, j]``, flattened row-major, added by
        :func:`row_dot`'s fixed order.
    """
    D = np.asarray(D, dtype=np.float64)
    C = np.asarray(C, dtype=np.float64)
    n = D.shape[1]
    terms = np.ascontiguousarray((D[:, :, None] * D[:, None, :]).reshape(-1, n * n))
    return row_dot(terms, C.reshape(-1), np.empty(D.shape[0]))


def sum_exact(values: np.ndarray) -> float:
    """The sum of float values, correctly rounded (:func:`math.fsum`)."""
    return math.fsum(np.asarray(values, dtype=np.float64).reshape(-1).tolist())


# -- software transcendental -----------------------------------------------------------------

_LN_CONTEXT = decimal.Context(prec=34)


def ln(x: float) -> float:
    """Natural logarithm of a positive float, the same bits on every machine.

    Computed in :mod:`decimal` (correctly rounded to 34 digits by its specification), then
    rounded to float64.
    """
    if not x > 0 or not math.isfinite(x):
        raise ValueError(f"ln needs a positive finite number, got {x!r}")
    return float(decimal.Decimal(x).ln(_LN_CONTEXT))
