"""``quantpipe monitor``: whether a batch of new rows is still like the training data.

Compares a batch (a CSV with a header of the feature names, in any order, optionally with
the target column ``MedHouseVal``; or a ``.npz`` dataset) with the training split, per
feature: population stability index, two-sample Kolmogorov-Smirnov statistic and
the share of missing values (empty CSV fields); and the same two statistics for the float
model's predictions. With labels, it also scores every model variant on the batch. Writes
a JSON report (``metrics/monitor/report.json``, git-tracked so that ``dvc metrics diff``
shows drift across runs) and ``dvc plots`` data (``metrics/monitor/drift.csv``: each
feature's share per training-decile bin, training and batch), then exits 1 with one line
naming every alert (thresholds: ``monitor`` in ``params.yaml``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from quantpipe import cli, exact, paths
from quantpipe.data import load_dataset
from quantpipe.drift import Reference, bin_shares, build_reference, feature_drift
from quantpipe.errors import DataError, DriftAlert, InputError, PredictionError
from quantpipe.io import write_json, write_text
from quantpipe.metrics import accuracy
from quantpipe.models import Model
from quantpipe.params import MonitorParams, load_params
from quantpipe.registry import ModelRegistry
from quantpipe.tables import read_chunks

log = logging.getLogger("quantpipe.monitor")


def read_batch_csv(path: Path, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """Rows of a CSV batch, in the model's feature order, by the rules of :mod:`quantpipe.tables`.

    Parameters
    ----------
    path : Path
        A header line naming the features in any order and optionally the target
        ``MedHouseVal`` (or no header: the features in the model's order). An empty field
        is a missing value (NaN).
    names : sequence of str
        The model's features, in order.

    Returns
    -------
    X : ndarray of shape (n, len(names)), NaN where missing
    y : ndarray of shape (n,) or None
        The targets, if the column is there.

    Raises
    ------
    DataError
        The file cannot be read, or :func:`quantpipe.tables.read_chunks`'s errors, with the
        path.
    """
    try:
        with path.open(encoding="utf-8") as fh:
            chunks = list(read_chunks(fh, names, "csv", missing_ok=True))
    except FileNotFoundError:
        raise DataError(f"{path}: not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    except InputError as exc:
        raise DataError(f"{path}: {exc}") from None
    X = np.concatenate([X for X, _ in chunks])
    targets = [y for _, y in chunks if y is not None]
    return X, (np.concatenate(targets) if targets else None)


def read_batch(path: Path, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """Rows (and targets, if any) of a ``.csv`` or ``.npz`` batch."""
    if path.suffix == ".npz":
        data = load_dataset(path)
        return data.X, data.y
    if path.suffix == ".csv":
        return read_batch_csv(path, names)
    raise DataError(f"{path}: use a .csv file with a header, or a .npz dataset")


def _predict_rows(model: Model, X: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``model``'s predictions for ``X[rows]``, ``rows`` a boolean mask.

    An overflow names the row of the batch itself, not of ``X[rows]``.
    """
    try:
        return model.predict(X[rows])
    except PredictionError as exc:
        row = int(np.flatnonzero(rows)[exc.row]) + 1  # counting from 1, as predict does
        raise PredictionError(row, exc.value, "batch row") from None


def monitor_report(
    X_train: np.ndarray,
    X: np.ndarray,
    y: np.ndarray | None,
    registry: ModelRegistry,
    params: MonitorParams,
    reference: Reference | None = None,
) -> dict[str, Any]:
    """The drift report of a batch.

    Parameters
    ----------
    X_train : ndarray of shape (n_train, n_features)
    X : ndarray of shape (n, n_features), NaN where missing
    y : ndarray of shape (n,) or None
    registry : ModelRegistry
    params : MonitorParams
    reference : Reference, optional
        ``build_reference(X_train, ...)`` if already built.

    Returns
    -------
    dict
        ``rows``, ``alerts`` (a count), ``features`` (per feature ``psi``, ``ks``,
        ``missing`` and ``alert``: 1 or 0), ``predictions`` (the float model's, ``psi``,
        ``ks``, ``mean`` on the training and the complete batch rows, ``alert``) and, with
        labels, ``models`` (``r2`` and ``mse`` of every variant on the complete rows).
    """
    if reference is None:
        reference = build_reference(X_train, registry.feature_names, params.bins)
    features = feature_drift(reference, X, X_train)
    for stats in features.values():
        stats["alert"] = int(
            stats["psi"] > params.psi_alert
            or stats["ks"] > params.ks_alert
            or stats["missing"] > params.missing_alert
        )
    complete = np.isfinite(X).all(axis=1)
    fp64 = registry.get("fp64")
    train_pred = fp64.predict(X_train)
    report: dict[str, Any] = {"rows": int(X.shape[0]), "complete_rows": int(complete.sum())}
    if complete.any():
        pred = _predict_rows(fp64, X, complete)
        pred_ref = build_reference(train_pred[:, None], ("prediction",), params.bins)
        stats = feature_drift(pred_ref, pred[:, None], train_pred[:, None])["prediction"]
        report["predictions"] = {
            "psi": stats["psi"],
            "ks": stats["ks"],
            "train_mean": exact.mean(train_pred),
            "batch_mean": exact.mean(pred),
            "alert": int(stats["psi"] > params.psi_alert or stats["ks"] > params.ks_alert),
        }
        if y is not None and np.isfinite(y[complete]).all():
            report["models"] = {
                name: {
                    k: v
                    for k, v in accuracy(
                        y[complete], _predict_rows(registry.get(name), X, complete)
                    ).items()
                    if k in ("r2", "mse")
                }
                for name in registry
            }
    report["features"] = features
    report["alerts"] = sum(s["alert"] for s in features.values()) + report.get(
        "predictions", {}
    ).get("alert", 0)
    return report


def drift_csv(reference: Reference, X: np.ndarray) -> str:
    """Long-format CSV for ``dvc plots``: each feature's share per training-decile bin."""
    lines = ["feature,bin,source,share"]
    for j, name in enumerate(reference.feature_names):
        for source, shares in (
            ("train", reference.expected[j]),
            ("batch", bin_shares(X[:, j], reference.edges[j])),
        ):
            lines += [f"{name},{b + 1},{source},{share:.6g}" for b, share in enumerate(shares)]
    return "\n".join(lines) + "\n"


def _rounded(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, float):
        return float(f"{value:.6g}")
    return value


def alerts(report: dict[str, Any], params: MonitorParams) -> list[str]:
    """One phrase per alert, for the error line."""
    out = []
    for name, s in report["features"].items():
        if s["psi"] > params.psi_alert:
            out.append(f"{name} PSI {s['psi']:.3g} > {params.psi_alert:g}")
        if s["ks"] > params.ks_alert:
            out.append(f"{name} KS {s['ks']:.3g} > {params.ks_alert:g}")
        if s["missing"] > params.missing_alert:
            out.append(f"{name} missing {s['missing']:.1%} > {params.missing_alert:.1%}")
    if report.get("predictions", {}).get("alert"):
        p = report["predictions"]
        out.append(f"predictions PSI {p['psi']:.3g}, KS {p['ks']:.3g}")
    return out


def _body(args: argparse.Namespace) -> None:
    params = load_params(args.params)
    batch_path = Path(args.batch or params.monitor.batch)
    registry = ModelRegistry.from_directory(args.models_dir)
    train = load_dataset(args.train)
    X, y = read_batch(batch_path, registry.feature_names)
    reference = build_reference(train.X, registry.feature_names, params.monitor.bins)
    report = _rounded(monitor_report(train.X, X, y, registry, params.monitor, reference))
    write_json(args.report, report)
    write_text(args.plot, drift_csv(reference, X))
    log.info(
        "%s: %d rows, %d alert(s); wrote %s and %s",
        batch_path,
        report["rows"],
        report["alerts"],
        args.report,
        args.plot,
    )
    found = alerts(report, params.monitor)
    if found:
        raise DriftAlert(f"drift alert on {batch_path}: " + "; ".join(found))


def main(argv: Sequence[str] | None = None, prog: str = "quantpipe monitor") -> int:
    """Run the command; returns the exit status (1 when an alert fires)."""
    p = cli.parser(prog, __doc__.split("\n\n")[0])
    p.add_argument("--batch", help="rows to check, .csv or .npz (if not given: monitor.batch)")
    p.add_argument("--params", type=Path, default=paths.PARAMS, help="params file")
    p.add_argument("--train", type=Path, default=paths.TRAIN_DATA, help="training .npz")
    p.add_argument("--models-dir", type=Path, default=Path("models"), help="models directory")
    p.add_argument("--report", type=Path, default=paths.MONITOR_REPORT, help="JSON report")
    p.add_argument("--plot", type=Path, default=paths.MONITOR_PLOT, help="dvc plots data")
    return cli.run(_body, p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
