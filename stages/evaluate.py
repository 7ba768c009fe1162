"""Stage ``evaluate``: score ``fp64`` and every derived variant on the same test split.

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
order of ``dvc.yaml`` (:mod:`quantpipe.lockfile`), so that what ``dvc metrics show`` and
``dvc.lock`` list is what ``params.yaml`` asks for, and the same params give the same bytes.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from quantpipe import cli, paths
from quantpipe.data import load_dataset
from quantpipe.evaluation import (
    evaluate_model,
    expected_variants,
    matrix_items,
    prune_stale_models,
)
from quantpipe.io import write_json, write_text
from quantpipe.lockfile import tidy_lockfile
from quantpipe.metrics import compare, fidelity_points, markdown_table, predictions_csv
from quantpipe.modelfile import load_model
from quantpipe.params import load_params
from quantpipe.variants import FLOAT_VARIANT

log = logging.getLogger("quantpipe.evaluate")


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
    float_model = load_model(args.model, FLOAT_VARIANT)
    reference = float_model.predict(test.X)
    reports, predictions = {}, {}
    reports[FLOAT_VARIANT], predictions[FLOAT_VARIANT] = evaluate_model(
        float_model, test.X, test.y, None, args.model.stat().st_size
    )
    for variant in variants:
        path = paths.variant_path(variant, args.quantized_dir)
        reports[variant], predictions[variant] = evaluate_model(
            load_model(path, variant), test.X, test.y, reference, path.stat().st_size
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
