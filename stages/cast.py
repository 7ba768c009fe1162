"""Stage ``cast``: the float baselines, the float model stored as a narrower float.

Its parameters, intercept included, as ``float32``, ``float16`` or ``bfloat16``, as a naive
deployment would. ``dvc.yaml`` runs it once per entry of ``quantize.casts``, each writing
``models/quantized/{dtype}.npz``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from quantpipe import cli, paths
from quantpipe.errors import ModelFileError, ParamsError
from quantpipe.modelfile import cast_model_arrays, load_float_model, param_bytes, save_model
from quantpipe.params import load_params
from quantpipe.quant.casts import CASTS, cast_values

log = logging.getLogger("quantpipe.cast")


def _body(args: argparse.Namespace) -> None:
    params = load_params(args.params)
    if args.dtype not in CASTS:
        raise ParamsError(f"--dtype {args.dtype} is not allowed; use one of: {', '.join(CASTS)}")
    model = load_float_model(args.model)
    try:
        stored, _ = cast_values(np.append(model.weights, model.intercept), args.dtype)
    except ValueError as exc:
        raise ModelFileError(f"{args.model}: {exc}") from None
    arrays = cast_model_arrays(
        stored[:-1],
        stored[-1:],
        args.dtype,
        tuple(model.header["feature_names"]),
        {"data": params.data.to_dict()},
    )
    out = args.out or paths.variant_path(args.dtype)
    save_model(out, arrays)
    log.info("%s: %d parameter bytes; wrote %s", args.dtype, param_bytes(arrays), out)


def main(argv: Sequence[str] | None = None, prog: str = "python -m stages.cast") -> int:
    """Run the stage; returns the exit status."""
    p = cli.parser(prog, __doc__.split("\n\n")[0].replace("\n", " "))
    p.add_argument("--dtype", required=True, help="float32, float16 or bfloat16")
    p.add_argument("--params", type=Path, default=paths.PARAMS, help="params file")
    p.add_argument("--model", type=Path, default=paths.FLOAT_MODEL, help="float model .npz")
    p.add_argument("--out", type=Path, default=None, help="output (default models/quantized/)")
    return cli.run(_body, p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
