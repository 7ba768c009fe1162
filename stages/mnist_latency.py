"""Stage ``mnist_latency``: time each digits variant per image, at batch 1 and batch 256.

Writes ``metrics/mnist/latency.json`` (``dvc metrics show`` lists it) on the inference path
the server and the container use (:func:`quantpipe.mnist.evaluation.predict`: digits and
probabilities, numpy). Timings depend on the machine: ``dvc.yaml`` marks the output
``meta: machine_dependent``, and CI's same-bytes check leaves it (and its hash in
``dvc.lock``) out of the comparison.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from quantpipe import cli, paths
from quantpipe.io import write_json
from quantpipe.mnist.data import load_digits
from quantpipe.mnist.latency import latency
from quantpipe.mnist.modelfile import load_net, variant_files
from quantpipe.params import load_params

log = logging.getLogger("quantpipe.mnist")


def _body(args: argparse.Namespace) -> None:
    params = load_params(args.params)
    files = variant_files(args.model, args.quantized_dir, params.mnist.quantize.bits)
    images = load_digits(args.data).x_test
    figures = {}
    for variant, path in files.items():
        figures[variant] = latency(load_net(path, variant), images, args.repeats)
        log.info(
            "%-5s %.3f ms per image at batch 1, %.3f ms at batch 256",
            variant,
            *figures[variant].values(),
        )
    write_json(args.out, figures)


def main(argv: Sequence[str] | None = None, prog: str = "python -m stages.mnist_latency") -> int:
    """Run the stage; returns the exit status."""
    p = cli.parser(prog, __doc__.split("\n\n")[0])
    p.add_argument("--params", type=Path, default=paths.PARAMS, help="params file")
    p.add_argument("--data", type=Path, default=paths.MNIST_DATA, help="digits .npz")
    p.add_argument("--model", type=Path, default=paths.MNIST_FLOAT, help="float network .npz")
    p.add_argument(
        "--quantized-dir", type=Path, default=paths.MNIST_QUANTIZED_DIR, help="quantized networks"
    )
    p.add_argument("--repeats", type=int, default=50, help="batches of one image timed")
    p.add_argument("--out", type=Path, default=paths.MNIST_LATENCY, help="output JSON")
    return cli.run(_body, p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
