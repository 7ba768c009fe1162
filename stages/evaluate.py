"""Stage ``evaluate``: score ``fp64`` and every ``q{bits}`` on the same test split.

Writes one JSON file per variant under ``metrics/eval/`` (accuracy against the targets;
for quantized variants also fidelity to the float model's predictions; parameter and file
bytes), ``metrics/compare.json`` (each quantized variant against ``fp64``, in the same run,
since ``dvc metrics diff`` compares revisions rather than files), ``metrics/compare.md``,
``metrics/plots/fidelity.json`` (fidelity and bytes by width) and
``metrics/plots/predictions.csv`` (predictions of every variant on the first test rows), the
data of the ``dvc plots`` defined in ``dvc.yaml``.

DVC does not clean up after an item removed from a ``matrix`` (a width from
``quantize.bits`` or ``integer.bits``, a dtype from ``quantize.casts``): its entry stays in
``dvc.lock`` and its model file stays on disk, and an item put back is appended at the end
of ``dvc.lock``. This stage removes both before it evaluates and puts ``dvc.lock`` in the
order of ``dvc.yaml`` (:mod:`stages.lockfile`), so that what ``dvc metrics show`` and
``dvc.lock`` list is what ``params.yaml`` asks for, and the same params give the same bytes.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stages import cli, paths
from stages.dataset import load_dataset
from stages.io import write_json, write_text
from stages.lockfile import tidy_lockfile
from stages.metrics import (
    accuracy,
    compare,
    fidelity,
    fidelity_points,
    markdown_table,
    predictions_csv,
)
from stages.modelfile import IntegerModel, Model, load_model
from stages.params import Params, load_params

log = logging.getLogger("quantpipe.evaluate")


def expected_variants(params: Params) -> list[str]:
    """The derived variants ``params.yaml`` asks for, in report order."""
    return (
        [paths.variant_name(b) for b in sorted(params.quantize.bits)]
        + [paths.integer_variant_name(b) for b in sorted(params.integer.bits)]
        + list(params.quantize.casts)
    )


def matrix_items(params: Params) -> dict[str, list[str]]:
    """Each matrix stage of ``dvc.yaml`` and its items as ``params.yaml`` lists them."""
    return {
        "quantize": [str(b) for b in params.quantize.bits],
        "integer": [str(b) for b in params.integer.bits],
        "cast": list(params.quantize.casts),
    }


def evaluate_model(
    model: Model,
    X: np.ndarray,
    y: np.ndarray,
    reference: np.ndarray | None,
    file_bytes: int,
) -> tuple[dict[str, Any], np.ndarray]:
    """The report of one variant, and its predictions.

    Parameters
    ----------
    model : LinearModel or IntegerModel
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
    reference : ndarray of shape (n_samples,) or None
        The float model's predictions on ``X``; None for the float model itself.
    file_bytes : int
        Size of the model file on disk.

    Returns
    -------
    report : dict
        ``bits``, ``accuracy``, ``fidelity`` (if ``reference`` is given; for an
        integer-only model with ``saturated_rows``, the rows clipped to the calibrated
        input range) and ``size``.
    predictions : ndarray of shape (n_samples,)
    """
    pred = model.predict(X)
    report: dict[str, Any] = {"bits": model.bits, "accuracy": accuracy(y, pred)}
    if reference is not None:
        report["fidelity"] = fidelity(reference, pred)
        if isinstance(model, IntegerModel):
            report["fidelity"]["saturated_rows"] = model.saturated_rows(X)
    report["size"] = {"param_bytes": model.param_bytes, "file_bytes": file_bytes}
    return report, pred


def prune_stale_models(variants: Sequence[str], models_dir: Path) -> list[str]:
    """Remove the derived model files that ``params.yaml`` no longer asks for.

    Parameters
    ----------
    variants : sequence of str
        The derived variants asked for (``q8``, ``q8i``, ``float16`` …).
    models_dir : Path
        Where the derived models are written; other files there are left alone.

    Returns
    -------
    list of str
        The files removed, for the log.
    """
    removed: list[str] = []
    keep = set(variants)
    if models_dir.is_dir():
        for path in sorted(models_dir.iterdir()):
            derived = path.suffix == ".npz" and paths.DERIVED_VARIANT.fullmatch(path.stem)
            if derived and path.stem not in keep:
                path.unlink()
                removed.append(str(path))
    return removed


def _body(args: argparse.Namespace) -> None:
    params = load_params(args.params)
    variants = expected_variants(params)
    stale = prune_stale_models(variants, args.quantized_dir) + [
        f"{args.lockfile}:{name}"
        for name in tidy_lockfile(args.lockfile, args.dvcfile, matrix_items(params))
    ]
    for item in stale:
        log.info("removed %s: params.yaml no longer asks for it", item)
    test = load_dataset(args.test)
    float_model = load_model(args.model)
    reference = float_model.predict(test.X)
    reports, predictions = {}, {}
    reports[paths.FLOAT_VARIANT], predictions[paths.FLOAT_VARIANT] = evaluate_model(
        float_model, test.X, test.y, None, args.model.stat().st_size
    )
    for variant in variants:
        path = paths.variant_path(variant, args.quantized_dir)
        reports[variant], predictions[variant] = evaluate_model(
            load_model(path), test.X, test.y, reference, path.stat().st_size
        )
    for name, report in reports.items():
        write_json(args.eval_dir / f"{name}.json", report)
        log.info(
            "%-8s R² %.4f  MSE %.4f  RMS Δpred %s  %d param bytes",
            name,
            report["accuracy"]["r2"],
            report["accuracy"]["mse"],
            f"{report['fidelity']['rmse']:.2e}" if "fidelity" in report else "-",
            report["size"]["param_bytes"],
        )
    write_json(args.compare_json, compare(reports))
    write_text(args.compare_md, markdown_table(reports))
    write_json(args.fidelity_plot, fidelity_points(reports))
    write_text(args.predictions_plot, predictions_csv(test.y, predictions))
    log.info(
        "wrote %s, %s, %s, %s and %s",
        args.eval_dir,
        args.compare_json,
        args.compare_md,
        args.fidelity_plot,
        args.predictions_plot,
    )


def main(argv: Sequence[str] | None = None, prog: str = "python -m stages.evaluate") -> int:
    """Run the stage; returns the exit status."""
    p = cli.parser(prog, __doc__.split("\n\n")[0])
    p.add_argument("--params", type=Path, default=paths.PARAMS, help="params file")
    p.add_argument("--test", type=Path, default=paths.TEST_DATA, help="test .npz")
    p.add_argument("--model", type=Path, default=paths.FLOAT_MODEL, help="float model .npz")
    p.add_argument(
        "--quantized-dir", type=Path, default=paths.QUANTIZED_DIR, help="quantized models"
    )
    p.add_argument("--lockfile", type=Path, default=paths.LOCKFILE, help="DVC lock file")
    p.add_argument("--dvcfile", type=Path, default=paths.DVCFILE, help="DVC pipeline file")
    p.add_argument("--eval-dir", type=Path, default=paths.EVAL_DIR, help="per-variant metrics")
    p.add_argument("--compare-json", type=Path, default=paths.COMPARE_JSON, help="comparison")
    p.add_argument("--compare-md", type=Path, default=paths.COMPARE_MD, help="markdown table")
    p.add_argument("--fidelity-plot", type=Path, default=paths.FIDELITY_PLOT, help="dvc plots data")
    p.add_argument(
        "--predictions-plot", type=Path, default=paths.PREDICTIONS_PLOT, help="dvc plots data"
    )
    return cli.run(_body, p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
