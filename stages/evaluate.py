"""Stage ``evaluate``: score ``fp64`` and every derived variant on the same test split.

Writes one JSON file per variant under ``metrics/eval/`` (accuracy against the targets;
for quantized variants also fidelity to the float model's predictions; parameter and file
bytes), ``metrics/compare.json`` (each quantized variant against ``fp64``, in the same run,
since ``dvc metrics diff`` compares revisions rather than files), ``metrics/compare.md``,
and the data of five ``dvc plots``, one file each (``dvc.yaml`` gives their templates), in
``metrics/plots/``: ``fidelity.json`` and ``bytes.json`` (by width), and ``delta.csv``,
``predicted.csv`` and ``residuals.csv`` (every variant on the first test rows).

``metrics/eval/`` is one output: DVC empties it before the stage runs, so that what
``dvc metrics show`` lists is what ``params.yaml`` asks for.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from quantpipe import cli, paths
from quantpipe.data import load_dataset
from quantpipe.evaluation import evaluate_model, expected_variants
from quantpipe.io import write_json, write_text
from quantpipe.metrics import compare, markdown_table, predictions_csv, width_points
from quantpipe.modelfile import load_model
from quantpipe.params import load_params
from quantpipe.variants import FLOAT_VARIANT

log = logging.getLogger("quantpipe.evaluate")


def _body(args: argparse.Namespace) -> None:
    params = load_params(args.params)
    variants = expected_variants(params)
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
    plots = args.plots_dir
    write_json(plots / "fidelity.json", width_points(reports, ("pred_rmse", "pred_p99_abs")))
    write_json(plots / "bytes.json", width_points(reports, ("param_bytes",)))
    for column, name in (("delta", "delta"), ("predicted", "predicted"), ("residual", "residuals")):
        write_text(plots / f"{name}.csv", predictions_csv(test.y, predictions, column))
    log.info("wrote %s, %s, %s and %s", args.eval_dir, args.compare_json, args.compare_md, plots)


def main(argv: Sequence[str] | None = None, prog: str = "python -m stages.evaluate") -> int:
    """Run the stage; returns the exit status."""
    p = cli.parser(prog, __doc__.split("\n\n")[0])
    p.add_argument("--params", type=Path, default=paths.PARAMS, help="params file")
    p.add_argument("--test", type=Path, default=paths.TEST_DATA, help="test .npz")
    p.add_argument("--model", type=Path, default=paths.FLOAT_MODEL, help="float model .npz")
    p.add_argument(
        "--quantized-dir", type=Path, default=paths.QUANTIZED_DIR, help="quantized models"
    )
    p.add_argument("--eval-dir", type=Path, default=paths.EVAL_DIR, help="per-variant metrics")
    p.add_argument("--compare-json", type=Path, default=paths.COMPARE_JSON, help="comparison")
    p.add_argument("--compare-md", type=Path, default=paths.COMPARE_MD, help="markdown table")
    p.add_argument("--plots-dir", type=Path, default=paths.PLOTS_DIR, help="dvc plots data")
    return cli.run(_body, p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
