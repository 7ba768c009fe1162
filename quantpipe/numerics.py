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
* **in a fixed order of IEEE 754 operations**, so that no kernel choice, vector width or
  fused multiply-add can change a bit
  (:func:`row_dot`, :func:`quadratic_forms`): ``+``, ``-``, ``*``, ``/`` and ``sqrt``
  are correctly rounded on every CPU, in numpy's elementwise loops as in the C loop of
  :func:`row_dot` (compiled without contraction into fused multiply-adds);
* in software: :func:`ln` uses Python's :mod:`decimal`, which is correctly rounded by
  specification, rather than the platform's ``log``.

What stays machine-dependent is only what no output sees: log lines and benchmarks.
"""

from __future__ import annotations

import decimal
import functools
import math

import numpy as np

from quantpipe import compiled

# -- fixed order of IEEE operations ----------------------------------------------------------

#: Rows :func:`row_dot` copies at a time from an input that is not C-contiguous (a
#: column-major one, say), rather than copying it whole.
COPY_ROWS = 65536


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
    rounded addition at a time: no BLAS, no fused multiply-add, no order that depends on
    the batch, the CPU, its SIMD width or the thread count. A row gets the same bits
    whatever batch it is in and whatever machine computes it. The loop is compiled C
    (``quantpipe/_kernels.c``, built without floating-point contraction), which runs at the
    speed of memory and releases the GIL. For 8 features on x86-64 it also runs in AVX2 or
    AVX-512 registers, one row a lane and each lane the same operations in the same order,
    as the CPU allows (:func:`quantpipe.compiled.paths`): the same bits on every path.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float64
        Converted to float64 first if it is not; copied :data:`COPY_ROWS` rows at a time
        if it is not C-contiguous.
    w : ndarray of shape (n_features,), float64
    out : ndarray of shape (n_samples,), float64, C-contiguous
        Written in place, and returned.
    offset : float, default=0.0
        Added to each row's sum last (a linear model's intercept); 0.0 adds nothing (so a
        sum of ``-0.0`` stays ``-0.0``).

    Returns
    -------
    ndarray of shape (n_samples,)

    Raises
    ------
    ValueError
        If the shapes disagree, or ``out`` is not a writable C-contiguous float64 array.
    SetupError
        If the compiled loop is not built from its source (:func:`quantpipe.compiled.kernels`).
    """
    row_dot_checked(X, w, out, offset)
    return out


def output_array(out: np.ndarray | None, X: np.ndarray, given: object = None) -> np.ndarray:
    """The array a prediction for ``X`` is written into: ``out``, checked, or a new one.

    Parameters
    ----------
    out : ndarray of shape (n_samples,), float64, C-contiguous and writable, or None
        A caller predicting batch after batch can pass the same array each time: a new
        output's pages are faulted in and zeroed by the operating system on their first
        write, a reused one's are not (10 M rows' 80 MB: 7.0 against 3.5 ms to fill, about
        a seventh of a one-thread prediction; docs/performance.md, the ninth run). It
        must not overlap ``X``'s memory, judged by its bounds (``np.may_share_memory``,
        which refuses some interleaved views that share no element).
    X : ndarray of shape (n_samples, n_features)
    given : object, optional
        The caller's input, if ``X`` is a converted copy of it: ``out`` must not overlap
        that either, so that every model refuses the same ``out``.

    Returns
    -------
    ndarray of shape (n_samples,), float64
        ``out``, or a new array if it is None.

    Raises
    ------
    TypeError
        If ``out`` is not a numpy array of float64 (as numpy's ``out=`` refuses another
        type or a cast).
    ValueError
        If its shape is not (n_samples,), it is not C-contiguous and writable, or it
        overlaps ``X``.
    """
    n = X.shape[0]
    if out is None:
        return np.empty(n)
    if not isinstance(out, np.ndarray) or out.dtype != np.float64:
        got = f"{out.dtype} array" if isinstance(out, np.ndarray) else type(out).__name__
        raise TypeError(f"out must be a float64 numpy array, got {got}")
    if out.shape != (n,):
        raise ValueError(f"out must have shape ({n},), one value a row of X, got {out.shape}")
    if not (out.flags.c_contiguous and out.flags.writeable):
        raise ValueError("out must be C-contiguous and writable")
    if np.may_share_memory(out, X) or (
        isinstance(given, np.ndarray) and np.may_share_memory(out, given)
    ):
        raise ValueError("out must not overlap X")
    return out


def row_dot_checked(X: np.ndarray, w: np.ndarray, out: np.ndarray, offset: float = 0.0) -> int:
    """:func:`row_dot`, returning the first row whose result is not finite, or -1.

    The check is made in the same loop, at no measurable cost; a second pass over ``out``
    (``np.isfinite``) took 12 % of a prediction's time. Parameters and errors as
    :func:`row_dot`'s.
    """
    X = np.asarray(X)
    w = np.ascontiguousarray(w, dtype=np.float64)
    if X.flags.c_contiguous or X.ndim != 2 or out.shape != (X.shape[0],):
        # converted at most once; the kernel names what is wrong with a shape
        return compiled.row_dot(np.ascontiguousarray(X, dtype=np.float64), w, out, float(offset))
    first = -1  # another layout (a column-major frame's values): copied a block at a time
    for start in range(0, X.shape[0], COPY_ROWS):
        stop = min(start + COPY_ROWS, X.shape[0])
        block = np.ascontiguousarray(X[start:stop], dtype=np.float64)
        bad = compiled.row_dot(block, w, out[start:stop], float(offset))
        if bad >= 0 and first < 0:
            first = start + bad
    return first


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
