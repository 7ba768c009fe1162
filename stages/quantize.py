"""Stage ``quantize``: every derived variant of the float model, in one directory.

Writes ``models/quantized/``: ``q{bits}.npz`` for each width in ``quantize.bits``
(post-training quantization; by default the coefficients are quantized on standardized
features with one symmetric scale, the training statistics are folded into the stored
per-feature scales and intercept, and the intercept is bias-corrected, see
:func:`quantpipe.quant.linear.quantize_linear`), ``q{bits}i.npz`` for each width in
``integer.bits`` (integer-only inference, :func:`quantpipe.quant.integer.quantize_integer`)
and ``{dtype}.npz`` for each dtype in ``quantize.casts`` (the float model stored as a
narrower float, as a naive deployment would).

One stage, not one per width: DVC then owns the directory. It empties it before the stage
runs, so that a width removed from ``params.yaml`` leaves no file behind, and restores it
exactly from the run-cache, so that an experiment rerun on another clone computes nothing
(see docs/pipeline.md). Each width takes milliseconds.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from quantpipe import cli, paths, variants
from quantpipe.data import Dataset, load_dataset
from quantpipe.errors import DataError, ModelFileError, ParamsError
from quantpipe.modelfile import (
    cast_model_arrays,
    integer_model_arrays,
    load_float_model,
    param_bytes,
    quantized_model_arrays,
    save_model,
)
from quantpipe.models import LinearModel
from quantpipe.params import Params, load_params
from quantpipe.quant.casts import cast_values
from quantpipe.quant.integer import quantize_integer
from quantpipe.quant.linear import feature_stats, quantize_linear

log = logging.getLogger("quantpipe.quantize")

Arrays = dict[str, np.ndarray]


def _linear(params: Params, model: LinearModel, train: Dataset) -> Iterator[tuple[str, Arrays]]:
    """``q{bits}`` for each width of ``quantize.bits``."""
    qp = params.quantize
    mean, std, cov = feature_stats(train.X)
    for bits in params.quantize.bits:
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
        record = {"data": params.data.to_dict(), "quantize": {"bits": bits, **qp.scheme_dict()}}
        yield (
            variant,
            quantized_model_arrays(
                quantized, variant, train.feature_names, qp.scheme_dict(), (mean, std), record
            ),
        )


def _integer(params: Params, model: LinearModel, train: Dataset) -> Iterator[tuple[str, Arrays]]:
    """``q{bits}i`` for each width of ``integer.bits``."""
    ip = params.integer
    for bits in ip.bits:
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
        record = {"data": params.data.to_dict(), "integer": {"bits": bits, **ip.to_dict()}}
        yield variant, integer_model_arrays(integer, variant, train.feature_names, record)


def _casts(params: Params, model: LinearModel, source: Path) -> Iterator[tuple[str, Arrays]]:
    """``{dtype}`` for each dtype of ``quantize.casts``."""
    values = np.append(model.weights, model.intercept)
    for dtype in params.quantize.casts:
        try:
            stored, _ = cast_values(values, dtype)
        except ValueError as exc:
            raise ModelFileError(f"{source}: {exc}") from None
        names = tuple(model.header["feature_names"])
        yield (
            dtype,
            cast_model_arrays(
                stored[:-1], stored[-1:], dtype, names, {"data": params.data.to_dict()}
            ),
        )


def _body(args: argparse.Namespace) -> None:
    params = load_params(args.params)
    model = load_float_model(args.model)
    train = load_dataset(args.train)
    if model.weights.shape[0] != train.X.shape[1]:
        raise DataError(
            f"{args.model} has {model.weights.shape[0]} coefficients but {args.train} has "
            f"{train.X.shape[1]} features; rebuild both with `dvc repro`"
        )
    derived = [
        *_linear(params, model, train),
        *_integer(params, model, train),
        *_casts(params, model, args.model),
    ]
    for variant, arrays in derived:
        out = paths.variant_path(variant, args.out_dir)
        save_model(out, arrays)
        log.info("%s: %d parameter bytes; wrote %s", variant, param_bytes(arrays), out)
    qp = params.quantize
    log.info(
        "%d variants: %s %s, %s rounding, standardize=%s, bias_correction=%s; "
        "integer-only with %s calibration",
        len(derived),
        qp.scheme,
        qp.granularity,
        qp.rounding,
        qp.standardize,
        qp.bias_correction,
        params.integer.calibration,
    )


def main(argv: Sequence[str] | None = None, prog: str = "python -m stages.quantize") -> int:
    """Run the stage; returns the exit status."""
    p = cli.parser(prog, __doc__.split("\n\n")[0])
    p.add_argument("--params", type=Path, default=paths.PARAMS, help="params file")
    p.add_argument("--model", type=Path, default=paths.FLOAT_MODEL, help="float model .npz")
    p.add_argument("--train", type=Path, default=paths.TRAIN_DATA, help="training .npz")
    p.add_argument(
        "--out-dir", type=Path, default=paths.QUANTIZED_DIR, help="where the variants go"
    )
    return cli.run(_body, p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
