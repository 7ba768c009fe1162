"""Data drift: how far a batch of rows is from the training data, per feature. Pure math.

Two statistics per feature, both from the same training reference:

* the population stability index, ``PSI = sum((a - e) * ln(a / e))`` over bins cut at the
  training deciles (``e`` the training share of each bin, 1/bins by construction, ``a`` the
  batch's): under 0.1 stable, 0.1-0.25 moderate, over 0.25 a shift, by the usual reading;
* the two-sample Kolmogorov-Smirnov statistic, the largest gap between the two empirical
  distribution functions (:func:`ks_two_sample`, as :func:`scipy.stats.ks_2samp` computes
  it, when the training sample is at hand; against the stored training quantiles otherwise,
  as the server does).

Missing values (NaN) are counted per feature and left out of both statistics.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from quantpipe import numerics
from quantpipe.errors import ModelFileError
from quantpipe.io import load_npz, save_npz
from quantpipe.npzformat import expect, header_array, int_field, member, read_header

#: Quantiles of each training feature kept in a reference (for KS without the sample).
N_QUANTILES = 1001
#: Floor on a bin's share, so that an empty bin gives a large but finite PSI.
PSI_EPSILON = 1e-4


@dataclass(frozen=True)
class Reference:
    """What the training data looked like, per feature.

    Attributes
    ----------
    feature_names : tuple of str
    edges : ndarray of shape (n_features, bins - 1)
        Interior bin edges: the training quantiles at 1/bins, 2/bins, ...
    expected : ndarray of shape (n_features, bins)
        The training share of each bin.
    quantiles : ndarray of shape (n_features, N_QUANTILES)
        Training quantiles at ``linspace(0, 1, N_QUANTILES)``.
    cdf_at, cdf_below : ndarray of shape (n_features, N_QUANTILES)
        The training empirical CDF at each quantile and just below it (they differ where
        values repeat, as in integer features).
    """

    feature_names: tuple[str, ...]
    edges: np.ndarray
    expected: np.ndarray
    quantiles: np.ndarray
    cdf_at: np.ndarray
    cdf_below: np.ndarray

    @property
    def bins(self) -> int:
        """Number of PSI bins."""
        return self.expected.shape[1]


def _check_matrix(X: np.ndarray, n_features: int, name: str) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != n_features:
        raise ValueError(f"{name} must have shape (n, {n_features}), got {X.shape}")
    return X


def bin_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of the finite ``values`` in each bin cut at ``edges`` (len(edges) + 1 bins)."""
    values = values[np.isfinite(values)]
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    return counts / max(len(values), 1)


def build_reference(X: np.ndarray, feature_names: tuple[str, ...], bins: int = 10) -> Reference:
    """Reference of the training data.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Training rows, finite.
    feature_names : tuple of str
    bins : int
        PSI bins, cut at the training quantiles; 2 or more.

    Returns
    -------
    Reference
    """
    X = _check_matrix(X, len(feature_names), "X")
    if bins < 2:
        raise ValueError(f"bins must be at least 2, got {bins}")
    edges = np.quantile(X, np.arange(1, bins) / bins, axis=0).T
    expected = np.array([bin_shares(X[:, j], edges[j]) for j in range(X.shape[1])])
    quantiles = np.quantile(X, np.linspace(0, 1, N_QUANTILES), axis=0).T
    ordered = np.sort(X, axis=0)
    n = X.shape[0]
    cdf_at = (
        np.array([np.searchsorted(ordered[:, j], quantiles[j], "right") for j in range(X.shape[1])])
        / n
    )
    cdf_below = (
        np.array([np.searchsorted(ordered[:, j], quantiles[j], "left") for j in range(X.shape[1])])
        / n
    )
    return Reference(tuple(feature_names), edges, expected, quantiles, cdf_at, cdf_below)


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of two vectors of bin shares (each summing to 1).

    The logarithms and the sum are the same bits on every machine (:func:`numerics.ln`,
    :func:`numerics.sum_exact`); numpy's ``log`` has per-CPU implementations.
    """
    e = np.maximum(np.asarray(expected, dtype=np.float64), PSI_EPSILON)
    a = np.maximum(np.asarray(actual, dtype=np.float64), PSI_EPSILON)
    logs = np.array([numerics.ln(r) for r in (a / e).tolist()])
    return numerics.sum_exact((a - e) * logs)


def ks_two_sample(a: np.ndarray, b: np.ndarray) -> float:
    """The two-sample Kolmogorov-Smirnov statistic of two non-empty finite samples.

    The largest gap between the two empirical distribution functions, taken at every value
    of either sample, computed exactly (``max |i * m - j * n| / (n * m)`` in integers) and
    rounded once: the statistic :func:`scipy.stats.ks_2samp` reports in its exact mode,
    without scipy.

    Parameters
    ----------
    a : ndarray of shape (n,)
    b : ndarray of shape (m,)

    Returns
    -------
    float
        In [0, 1].
    """
    a, b = np.sort(a), np.sort(b)
    both = np.concatenate([a, b])
    below_a = np.searchsorted(a, both, side="right").astype(np.int64)
    below_b = np.searchsorted(b, both, side="right").astype(np.int64)
    gap = int(np.max(np.abs(below_a * b.size - below_b * a.size)))
    return gap / (a.size * b.size)


def ks_against_reference(reference: Reference, j: int, values: np.ndarray) -> float:
    """KS statistic of ``values`` against feature ``j``'s stored training CDF.

    Taken at the stored quantiles (at and just below each): exact there, within about
    1 / N_QUANTILES between.
    """
    values = np.sort(values[np.isfinite(values)])
    if values.size == 0:
        return 1.0
    q = reference.quantiles[j]
    at = np.searchsorted(values, q, side="right") / values.size
    below = np.searchsorted(values, q, side="left") / values.size
    return float(
        max(
            np.max(np.abs(at - reference.cdf_at[j])), np.max(np.abs(below - reference.cdf_below[j]))
        )
    )


def feature_drift(
    reference: Reference, X: np.ndarray, train: np.ndarray | None = None
) -> dict[str, dict[str, float]]:
    """PSI, KS and the missing share of every feature of a batch.

    Parameters
    ----------
    reference : Reference
    X : ndarray of shape (n_samples, n_features)
        The batch; NaN marks a missing value.
    train : ndarray of shape (n_train, n_features), optional
        The training sample, for the exact two-sample KS; without it, KS is taken
        against the reference's quantiles.

    Returns
    -------
    dict
        Feature name to ``psi``, ``ks`` and ``missing`` (share of NaN).
    """
    X = _check_matrix(X, len(reference.feature_names), "X")
    out = {}
    for j, name in enumerate(reference.feature_names):
        column = X[:, j]
        present = column[np.isfinite(column)]
        if present.size == 0:
            stat_psi, stat_ks = psi(reference.expected[j], np.zeros(reference.bins)), 1.0
        else:
            stat_psi = psi(reference.expected[j], bin_shares(present, reference.edges[j]))
            if train is not None:
                stat_ks = ks_two_sample(train[:, j], present)
            else:
                stat_ks = ks_against_reference(reference, j, present)
        out[name] = {
            "psi": stat_psi,
            "ks": stat_ks,
            "missing": float(1.0 - present.size / max(column.size, 1)),
        }
    return out


# -- the reference's file format -----------------------------------------------------------

REFERENCE_FORMAT = "quantpipe-reference"
REFERENCE_FORMAT_VERSION = 1
_REFERENCE_MEMBERS = {"header", "edges", "expected", "quantiles", "cdf_at", "cdf_below"}


def save_reference(path: str | Path, reference: Reference) -> None:
    """Write a drift :class:`~quantpipe.drift.Reference` as ``.npz``, atomically."""
    header = {
        "format": REFERENCE_FORMAT,
        "format_version": REFERENCE_FORMAT_VERSION,
        "feature_names": list(reference.feature_names),
        "bins": reference.bins,
    }
    save_npz(
        path,
        {
            "header": header_array(header),
            "edges": reference.edges,
            "expected": reference.expected,
            "quantiles": reference.quantiles,
            "cdf_at": reference.cdf_at,
            "cdf_below": reference.cdf_below,
        },
    )


def load_reference(path: str | Path) -> Reference:
    """Read a drift reference written by :func:`save_reference`.

    Raises
    ------
    ModelFileError
        If the file is missing, corrupt or not a reference of a known version.
    """
    path = Path(path)
    arrays = load_npz(path, ModelFileError)
    expect(set(arrays) == _REFERENCE_MEMBERS, path, f"members are {sorted(arrays)}")
    header = read_header(arrays, path)
    expect(
        header.get("format") == REFERENCE_FORMAT
        and header.get("format_version") == REFERENCE_FORMAT_VERSION,
        path,
        f"not a {REFERENCE_FORMAT} file of version {REFERENCE_FORMAT_VERSION}",
    )
    names = tuple(header.get("feature_names", ()))
    n = len(names)
    expect(n > 0, path, "header has no valid bins")
    bins = int_field(header.get("bins"), path, "header has no valid bins", 2)
    reference = Reference(
        feature_names=names,
        edges=member(arrays, "edges", "<f8", (n, bins - 1), path),
        expected=member(arrays, "expected", "<f8", (n, bins), path),
        quantiles=member(arrays, "quantiles", "<f8", (n, N_QUANTILES), path),
        cdf_at=member(arrays, "cdf_at", "<f8", (n, N_QUANTILES), path),
        cdf_below=member(arrays, "cdf_below", "<f8", (n, N_QUANTILES), path),
    )
    _check_reference(reference, path)
    return reference


def _check_reference(ref: Reference, path: Path) -> None:
    """Finite, ordered edges and quantiles; shares and CDF values that are probabilities."""
    arrays = (ref.edges, ref.expected, ref.quantiles, ref.cdf_at, ref.cdf_below)
    expect(all(np.isfinite(a).all() for a in arrays), path, "holds a NaN or infinite value")
    ordered = (np.diff(ref.edges, axis=1) >= 0).all() and (
        np.diff(ref.quantiles, axis=1) >= 0
    ).all()
    expect(bool(ordered), path, "bin edges or quantiles are not in increasing order")
    probabilities = (ref.expected, ref.cdf_at, ref.cdf_below)
    expect(
        all(((a >= 0) & (a <= 1)).all() for a in probabilities),
        path,
        "bin shares or CDF values outside [0, 1]",
    )
