"""Exact arithmetic on float64 data, each result rounded to float64 once. No I/O.

float64 values are binary fractions, so sums, products, moments and the least-squares
solution of a data set are computed exactly in Python integers and fractions, and each result
is rounded once, at the end: the same bits on every machine (see :mod:`quantpipe.numerics`).
For the training data's statistics and the fit; the fast, fixed-order float operations for
batches are in :mod:`quantpipe.numerics`.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np


def _exact_columns(X: np.ndarray) -> tuple[list[list[int]], list[int]]:
    """Each column of ``X`` as Python integers ``I`` and an exponent ``E``.

    ``X[:, j] == I[j] * 2.0**E[j]`` exactly.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or not np.all(np.isfinite(X)):
        raise ValueError(f"need a finite 2-D array, got shape {X.shape}")
    m, e = np.frexp(X)  # X == m * 2**e, 0.5 <= |m| < 1 (m == 0, e == 0 for zeros)
    mantissa = (m * 2.0**53).astype(np.int64)  # exact: |m * 2**53| < 2**53
    exponent = e.astype(np.int64) - 53
    exponent[mantissa == 0] = np.iinfo(np.int64).max
    ints, exps = [], []
    for j in range(X.shape[1]):
        low = int(exponent[:, j].min()) if X.shape[0] else 0
        low = 0 if low == np.iinfo(np.int64).max else low
        shift = np.where(mantissa[:, j] == 0, 0, exponent[:, j] - low)
        ints.append([a << s for a, s in zip(mantissa[:, j].tolist(), shift.tolist(), strict=True)])
        exps.append(low)
    return ints, exps


def _scaled(value: int, exponent: int) -> Fraction:
    return Fraction(value << exponent) if exponent >= 0 else Fraction(value, 1 << -exponent)


def to_float(value: Fraction) -> float:
    """``value`` rounded to the nearest float64, ties to even (one rounding)."""
    return float(value)


@dataclass(frozen=True)
class Moments:
    """Exact first and second moments of the columns of a matrix.

    Attributes
    ----------
    n : int
        Rows.
    sums : tuple of Fraction, length n_columns
        ``sum(X[:, j])``.
    products : tuple of tuple of Fraction, (n_columns, n_columns)
        ``sum(X[:, j] * X[:, k])``, with every product and sum exact.
    """

    n: int
    sums: tuple[Fraction, ...]
    products: tuple[tuple[Fraction, ...], ...]

    def mean(self) -> list[Fraction]:
        """Column means."""
        return [s / self.n for s in self.sums]

    def centered(self) -> list[list[Fraction]]:
        """``sum((X[:, j] - mean_j) * (X[:, k] - mean_k))``: n times the population covariance."""
        k = len(self.sums)
        return [
            [self.products[a][b] - self.sums[a] * self.sums[b] / self.n for b in range(k)]
            for a in range(k)
        ]


def moments(X: np.ndarray) -> Moments:
    """Exact sums and sums of products of the columns of ``X``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_columns), finite

    Returns
    -------
    Moments
    """
    ints, exps = _exact_columns(X)
    k = len(ints)
    sums = tuple(_scaled(sum(col), e) for col, e in zip(ints, exps, strict=True))
    products = [[Fraction(0)] * k for _ in range(k)]
    for a in range(k):
        for b in range(a, k):
            total = sum(map(operator.mul, ints[a], ints[b]))
            products[a][b] = products[b][a] = _scaled(total, exps[a] + exps[b])
    return Moments(n=int(np.shape(X)[0]), sums=sums, products=tuple(map(tuple, products)))


def mean_std_cov(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column means, population standard deviations and population covariance.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), finite, n_samples >= 1

    Returns
    -------
    mean : ndarray of shape (n_features,)
        Exact, rounded once.
    std : ndarray of shape (n_features,)
        ``sqrt`` of the exact variance rounded once (itself correctly rounded).
    cov : ndarray of shape (n_features, n_features)
        ``bias=True`` covariance, exact, each entry rounded once.
    """
    mo = moments(X)
    if mo.n == 0:
        raise ValueError("need at least one row")
    centered = mo.centered()
    cov = np.array([[to_float(c / mo.n) for c in row] for row in centered])
    std = np.sqrt(np.diagonal(cov).copy())
    return np.array([to_float(m) for m in mo.mean()]), std, cov


def mean(values: np.ndarray) -> float:
    """The exact mean of float values, rounded once.

    Raises
    ------
    ValueError
        If ``values`` is empty or not finite.
    """
    column = np.asarray(values, dtype=np.float64).reshape(-1, 1)
    if column.size == 0:
        raise ValueError("the mean of no values")
    mo = moments(column)
    return to_float(mo.sums[0] / mo.n)


def dot(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """The exact dot product of two float vectors, rounded once.

    For short vectors (a model's coefficients); :func:`row_dot` is the fast one for batches.
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"dot of vectors of different lengths: {a.shape} and {b.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("dot of non-finite values")
    products = (Fraction(x) * Fraction(y) for x, y in zip(a.tolist(), b.tolist(), strict=True))
    return to_float(sum(products, Fraction(0)))


def _reduced_row_echelon(
    M: list[list[Fraction]], columns: int
) -> tuple[list[int], list[list[Fraction]]]:
    """Gauss-Jordan elimination on fractions over the first ``columns`` columns of ``M``.

    Returns
    -------
    pivots : list of int
        The pivot columns.
    rows : list of list of Fraction
        The non-zero rows of the reduced row echelon form, one per pivot.
    """
    rows = [list(r) for r in M]
    pivots: list[int] = []
    for col in range(columns):
        r = len(pivots)
        pivot = next((i for i in range(r, len(rows)) if rows[i][col] != 0), None)
        if pivot is None:
            continue
        rows[r], rows[pivot] = rows[pivot], rows[r]
        p = rows[r][col]
        rows[r] = [v / p for v in rows[r]]
        for i in range(len(rows)):
            if i != r and rows[i][col] != 0:
                f = rows[i][col]
                rows[i] = [v - f * w for v, w in zip(rows[i], rows[r], strict=True)]
        pivots.append(col)
    return pivots, rows[: len(pivots)]


def _solve(A: list[list[Fraction]], B: list[list[Fraction]]) -> list[list[Fraction]]:
    """``A^-1 B`` for a non-singular square ``A``."""
    n = len(A)
    _, rows = _reduced_row_echelon([list(A[i]) + list(B[i]) for i in range(n)], n)
    return [row[n:] for row in rows]


def _transpose(M: list[list[Fraction]]) -> list[list[Fraction]]:
    return [list(col) for col in zip(*M, strict=True)]


def _matmul(A: list[list[Fraction]], B: list[list[Fraction]]) -> list[list[Fraction]]:
    Bt = _transpose(B)
    return [[sum(map(operator.mul, row, col), Fraction(0)) for col in Bt] for row in A]


def min_norm_solve(G: list[list[Fraction]], c: list[Fraction]) -> tuple[list[Fraction], int]:
    """The exact minimum-norm solution of normal equations ``G @ beta = c``.

    ``G`` is symmetric positive semi-definite and ``c`` in its range: ``beta = pinv(G) @ c``.

    Uses the rank factorization ``G = B @ C`` (``B`` the pivot columns, ``C`` the reduced row
    echelon rows), for which ``pinv(G) = C^T (C C^T)^-1 (B^T B)^-1 B^T``.

    Returns
    -------
    beta : list of Fraction
    rank : int
    """
    pivots, C = _reduced_row_echelon(G, len(G))
    if not pivots:
        return [Fraction(0)] * len(c), 0
    B = [[row[j] for j in pivots] for row in G]
    Bt = _transpose(B)
    y = _solve(_matmul(Bt, B), _matmul(Bt, [[v] for v in c]))
    z = _solve(_matmul(C, _transpose(C)), y)
    beta = _matmul(_transpose(C), z)
    return [row[0] for row in beta], len(pivots)


@dataclass(frozen=True)
class LeastSquares:
    """An ordinary least-squares fit with an intercept, as ``LinearRegression`` holds it.

    Attributes
    ----------
    coef : ndarray of shape (n_features,)
    intercept : float
    rank : int
        Rank of the centered features.
    singular : ndarray of shape (n_features,)
        Singular values of the centered features, descending: square roots of the
        eigenvalues of their Gram matrix, so a small one is accurate only to about
        ``sqrt(eps) * singular[0]`` (LAPACK's SVD to about ``eps * singular[0]``).
    """

    coef: np.ndarray
    intercept: float
    rank: int
    singular: np.ndarray


def lstsq(X: np.ndarray, y: np.ndarray) -> LeastSquares:
    """The exact least-squares fit of ``y ~ X @ coef + intercept``, rounded once.

    The data are float64, hence exact binary fractions: the normal equations of the centered
    data are formed in integers, solved in fractions (the minimum-norm solution when the
    features are exactly linearly dependent), and each coefficient is rounded to the nearest
    float64 at the end. Unlike LAPACK's ``gelsd``, there is no tolerance: features that are
    dependent only up to float rounding count as independent, and their (ill-conditioned)
    exact solution is returned. The result is the true least-squares
    solution of the stored data, the same on every machine; LAPACK's agrees with it to
    about the condition number times the float64 epsilon.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), finite
    y : ndarray of shape (n_samples,), finite

    Returns
    -------
    LeastSquares

    Raises
    ------
    ValueError
        On non-finite values, mismatched shapes or no rows.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if X.ndim != 2 or y.shape != (X.shape[0],) or X.shape[0] == 0:
        raise ValueError(f"need X of shape (n, k) and y of shape (n,), got {X.shape}, {y.shape}")
    k = X.shape[1]
    mo = moments(np.column_stack([X, y]))
    centered = mo.centered()
    G = [row[:k] for row in centered[:k]]
    c = [centered[j][k] for j in range(k)]
    beta, rank = min_norm_solve(G, c)
    means = mo.mean()
    intercept = means[k] - sum(map(operator.mul, beta, means[:k]), Fraction(0))
    gram = [[to_float(v) for v in row] for row in G]
    singular = np.sqrt(np.maximum(jacobi_eigenvalues(gram), 0.0))
    return LeastSquares(
        coef=np.array([to_float(b) for b in beta]),
        intercept=to_float(intercept),
        rank=rank,
        singular=singular,
    )


def jacobi_eigenvalues(A: list[list[float]], sweeps: int = 50) -> np.ndarray:
    """Eigenvalues of a small symmetric matrix, descending, by cyclic Jacobi rotations.

    Written in Python floats, whose operations are IEEE 754 double and never fused, and
    :func:`math.fsum`, so that the result is the same on every machine and every Python
    version (LAPACK's ``syevd`` is not). For matrices of a few dozen rows at most.

    Parameters
    ----------
    A : list of list of float, (n, n), symmetric
    sweeps : int
        Upper bound on the sweeps; it converges in well under ten for small matrices.

    Returns
    -------
    ndarray of shape (n,)
    """
    a = [list(map(float, row)) for row in A]
    n = len(a)
    for _ in range(sweeps):
        # math.fsum, not sum(): sum() of floats is compensated from Python 3.12 on, so the
        # stopping test, and the eigenvalues, would differ between Python versions
        off = math.fsum(a[i][j] * a[i][j] for i in range(n) for j in range(n) if i != j)
        scale = math.fsum(a[i][i] * a[i][i] for i in range(n))
        if off <= 1e-32 * scale or off == 0.0:
            break
        for p in range(n - 1):
            for q in range(p + 1, n):
                if a[p][q] == 0.0:
                    continue
                theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q])
                t = (1.0 if theta >= 0 else -1.0) / (abs(theta) + math.sqrt(theta * theta + 1.0))
                cos = 1.0 / math.sqrt(t * t + 1.0)
                sin = t * cos
                for k in range(n):  # columns p and q
                    akp, akq = a[k][p], a[k][q]
                    a[k][p] = cos * akp - sin * akq
                    a[k][q] = sin * akp + cos * akq
                for k in range(n):  # rows p and q
                    apk, aqk = a[p][k], a[q][k]
                    a[p][k] = cos * apk - sin * aqk
                    a[q][k] = sin * apk + cos * aqk
    return np.array(sorted((a[i][i] for i in range(n)), reverse=True))
