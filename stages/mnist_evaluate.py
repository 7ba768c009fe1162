"""Stage ``mnist_evaluate``: score fp32 and every quantized digits network on the test images.

Writes ``metrics/mnist/eval/<variant>.json`` (accuracy, agreement with fp32's digits,
parameter count and bytes, file bytes), ``metrics/mnist/compare.json`` (each quantized variant
against fp32, from the same run) and its table ``metrics/mnist/compare.md``, and the data of
two ``dvc plots``: fp32's confusion matrix (``metrics/mnist/plots/confusion.csv``) and
accuracy by width (``metrics/mnist/plots/accuracy_by_width.json``). Predictions come from
:func:`quantpipe.mnist.evaluation.predict_digits`, the server's arithmetic.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from quantpipe import cli, paths
from quantpipe.io import write_json, write_text
from quantpipe.mnist.data import load_digits
from quantpipe.mnist.evaluation import (
    compare,
    confusion_csv,
    markdown_table,
    predict_digits,
    report,
    width_points,
)
from quantpipe.mnist.modelfile import load_net, param_bytes, variant_files
from quantpipe.params import load_params

log = logging.getLogger("quantpipe.mnist")


def _body(args: argparse.Namespace) -> None:
    params = load_params(args.params)
    data = load_digits(args.data)
    files = variant_files(args.model, args.quantized_dir, params.mnist.quantize.bits)
    reports, reference = {}, None
    for variant, path in files.items():
        net = load_net(path, variant)
        digits = predict_digits(net, data.x_test)
        reports[variant] = report(
            net, digits, data.y_test, reference, param_bytes(net), path.stat().st_size
        )
        if reference is None:
            reference = digits
            write_text(args.confusion_plot, confusion_csv(data.y_test, digits))
        r = reports[variant]
        log.info(
            "%-5s accuracy %.4f  agreement %.4f  %d parameter bytes",
            variant,
            r["accuracy"],
            r["agreement"],
            r["param_bytes"],
        )
    for name, r in reports.items():
        write_json(args.eval_dir / f"{name}.json", r)
    write_json(args.compare_json, compare(reports))
    write_text(args.compare_md, markdown_table(reports))
    write_json(args.widths_plot, width_points(reports))
    log.info(
        "wrote %s, %s, %s, %s and %s",
        args.eval_dir,
        args.compare_json,
        args.compare_md,
        args.confusion_plot,
        args.widths_plot,
    )


def main(argv: Sequence[str] | None = None, prog: str = "python -m stages.mnist_evaluate") -> int:
    """Run the stage; returns the exit status."""
    p = cli.parser(prog, __doc__.split("\n\n")[0])
    p.add_argument("--params", type=Path, default=paths.PARAMS, help="params file")
    p.add_argument("--data", type=Path, default=paths.MNIST_DATA, help="digits .npz")
    p.add_argument("--model", type=Path, default=paths.MNIST_FLOAT, help="float network .npz")
    p.add_argument(
        "--quantized-dir", type=Path, default=paths.MNIST_QUANTIZED_DIR, help="quantized networks"
    )
    p.add_argument(
        "--eval-dir", type=Path, default=paths.MNIST_EVAL_DIR, help="per-variant metrics"
    )
    p.add_argument("--compare-json", type=Path, default=paths.MNIST_COMPARE, help="comparison")
    p.add_argument("--compare-md", type=Path, default=paths.MNIST_COMPARE_MD, help="markdown table")
    p.add_argument(
        "--confusion-plot", type=Path, default=paths.MNIST_CONFUSION, help="dvc plots data"
    )
    p.add_argument("--widths-plot", type=Path, default=paths.MNIST_WIDTHS, help="dvc plots data")
    return cli.run(_body, p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
