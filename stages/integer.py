"""Stage ``integer``: an integer-only inference variant of the float model, ``q{bits}i``.

Inputs are quantized per feature to ``bits``-wide codes calibrated on the training set
(``integer.calibration``: min-max or percentile), the input scales are folded into the
weights, the accumulation is integer (checked for int32 overflow) and one float rescale
gives the prediction (see :func:`quantpipe.quant.integer.quantize_integer`). ``dvc.yaml`` runs
it once per entry of ``integer.bits``, each writing ``models/quantized/q{bits}i.npz``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from quantpipe import cli, paths, variants
from quantpipe.data import load_dataset
from quantpipe.errors import ParamsError
from quantpipe.modelfile import integer_model_arrays, load_float_model, param_bytes, save_model
from quantpipe.params import load_params
from quantpipe.quant.integer import quantize_integer
from quantpipe.validate import check_bits_flag

log = logging.getLogger("quantpipe.integer")


def _body(args: argparse.Namespace) -> None:
    params = load_params(args.params)
    bits = check_bits_flag(args.bits)
    model = load_float_model(args.model)
    train = load_dataset(args.train)
    ip = params.integer
    try:
        integer = quantize_integer(
            model.weights,
            model.intercept,
            train.X,
            bits=bits,
            calibration=ip.calibration,
            percentile=ip.percentile,
        )
    except ValueError as exc:
        raise ParamsError(f"integer.bits: {exc}") from None
    variant = variants.integer_variant_name(bits)
    arrays = integer_model_arrays(
        integer,
        variant,
        train.feature_names,
        {"data": params.data.to_dict(), "integer": {"bits": bits, **ip.to_dict()}},
    )
    out = args.out or paths.variant_path(variant)
    save_model(out, arrays)
    log.info(
        "%s: %s calibration; %d parameter bytes; wrote %s",
        variant,
        ip.calibration,
        param_bytes(arrays),
        out,
    )


def main(argv: Sequence[str] | None = None, prog: str = "python -m stages.integer") -> int:
    """Run the stage; returns the exit status."""
    p = cli.parser(prog, __doc__.split("\n\n")[0])
    p.add_argument("--bits", type=int, required=True, help="width of weight and input codes")
    p.add_argument("--params", type=Path, default=paths.PARAMS, help="params file")
    p.add_argument("--model", type=Path, default=paths.FLOAT_MODEL, help="float model .npz")
    p.add_argument("--train", type=Path, default=paths.TRAIN_DATA, help="training .npz")
    p.add_argument("--out", type=Path, default=None, help="output (default models/quantized/)")
    return cli.run(_body, p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
