"""Stage ``mnist_quantize``: post-training quantization of the digits network at each width.

Writes ``models/mnist/quantized/q{bits}.npz`` for each width in ``mnist.quantize.bits``:
per-channel symmetric weights, activations calibrated on ``mnist.quantize.calibration_images``
training images drawn with ``mnist.seed``, int32 biases, fixed-point requantization
(:func:`quantpipe.mnist.quantize.quantize_network`). One stage for every width, like
``quantize``, so that DVC owns the directory: a width removed leaves no file, and the
run-cache restores the directory exactly.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from quantpipe import cli, paths
from quantpipe.mnist.data import load_digits
from quantpipe.mnist.modelfile import FLOAT_VARIANT, load_net, param_bytes, save_quant_net
from quantpipe.mnist.network import FloatNet
from quantpipe.mnist.quantize import quantize_network
from quantpipe.params import load_params

log = logging.getLogger("quantpipe.mnist")


def calibration_rows(n_train: int, count: int, seed: int) -> np.ndarray:
    """The training rows the activations are calibrated on.

    The first ``count`` of a permutation of ``n_train`` rows drawn with ``seed``.
    """
    return np.random.RandomState(seed).permutation(n_train)[:count]


def _body(args: argparse.Namespace) -> None:
    params = load_params(args.params)
    mq = params.mnist.quantize
    net = load_net(args.model, FLOAT_VARIANT)
    assert isinstance(net, FloatNet)  # load_net checked the variant
    data = load_digits(args.data)
    rows = calibration_rows(len(data.x_train), mq.calibration_images, params.mnist.train.seed)
    for bits in mq.bits:
        quantized = quantize_network(net, data.x_train[rows], mq.settings(bits))
        out = args.quantized_dir / f"q{bits}.npz"
        record = {"seed": params.mnist.train.seed, "quantize": {"bits": bits, **mq.to_dict()}}
        save_quant_net(out, quantized, record)
        log.info(
            "q%d: %s rounding; %d parameter bytes; wrote %s",
            bits,
            mq.rounding,
            param_bytes(quantized),
            out,
        )


def main(argv: Sequence[str] | None = None, prog: str = "python -m stages.mnist_quantize") -> int:
    """Run the stage; returns the exit status."""
    p = cli.parser(prog, __doc__.split("\n\n")[0])
    p.add_argument("--params", type=Path, default=paths.PARAMS, help="params file")
    p.add_argument("--model", type=Path, default=paths.MNIST_FLOAT, help="float network .npz")
    p.add_argument("--data", type=Path, default=paths.MNIST_DATA, help="digits .npz")
    p.add_argument(
        "--quantized-dir",
        type=Path,
        default=paths.MNIST_QUANTIZED_DIR,
        help="where q{bits}.npz goes",
    )
    return cli.run(_body, p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
