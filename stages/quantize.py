"""Stage ``quantize``: post-training quantization of the float model at one bit width.

``dvc.yaml`` runs it once per width in ``quantize.bits`` (a ``matrix`` stage), each writing
``models/quantized/q{bits}.npz``. The scheme comes from ``params.yaml``; by default the
coefficients are quantized on standardized features with one symmetric scale, the training
statistics are folded into the stored per-feature scales and intercept, and the intercept is
bias-corrected (see :func:`quantpipe.quant.linear.quantize_linear`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from quantpipe import cli, paths, variants
from quantpipe.data import load_dataset
from quantpipe.errors import DataError
from quantpipe.modelfile import load_float_model, param_bytes, quantized_model_arrays, save_model
from quantpipe.params import load_params
from quantpipe.quant.linear import feature_stats, quantize_linear
from quantpipe.validate import check_bits_flag

log = logging.getLogger("quantpipe.quantize")


def _body(args: argparse.Namespace) -> None:
    params = load_params(args.params)
    bits = check_bits_flag(args.bits)
    qp = params.quantize
    model = load_float_model(args.model)
    train = load_dataset(args.train)
    if model.weights.shape[0] != train.X.shape[1]:
        raise DataError(
            f"{args.model} has {model.weights.shape[0]} coefficients but {args.train} has "
            f"{train.X.shape[1]} features; rebuild both with `dvc repro`"
        )
    mean, std, cov = feature_stats(train.X)
    quantized = quantize_linear(
        model.weights,
        model.intercept,
        mean,
        std,
        bits=bits,
        symmetric=qp.symmetric,
        per_channel=qp.per_channel,
        standardize=qp.standardize,
        bias_correction=qp.bias_correction,
        rounding=qp.rounding,
        cov=cov,
    )
    variant = variants.variant_name(bits)
    arrays = quantized_model_arrays(
        quantized,
        variant,
        train.feature_names,
        qp.scheme_dict(),
        (mean, std),
        {"data": params.data.to_dict(), "quantize": {"bits": bits, **qp.scheme_dict()}},
    )
    out = args.out or paths.quantized_model_path(bits)
    save_model(out, arrays)
    log.info(
        "%s: %s %s, %s rounding, standardize=%s, bias_correction=%s; %d parameter bytes; wrote %s",
        variant,
        qp.scheme,
        qp.granularity,
        qp.rounding,
        qp.standardize,
        qp.bias_correction,
        param_bytes(arrays),
        out,
    )


def main(argv: Sequence[str] | None = None, prog: str = "python -m stages.quantize") -> int:
    """Run the stage; returns the exit status."""
    p = cli.parser(prog, __doc__.split("\n\n")[0])
    p.add_argument("--bits", type=int, required=True, help="code width, 2 to 16")
    p.add_argument("--params", type=Path, default=paths.PARAMS, help="params file")
    p.add_argument("--model", type=Path, default=paths.FLOAT_MODEL, help="float model .npz")
    p.add_argument("--train", type=Path, default=paths.TRAIN_DATA, help="training .npz")
    p.add_argument(
        "--out", type=Path, default=None, help="output .npz (default models/quantized/q{bits}.npz)"
    )
    return cli.run(_body, p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
