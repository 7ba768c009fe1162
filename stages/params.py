"""Stage ``params``: validate the whole params file, and stamp it valid.

``dvc.yaml`` gives this stage every key of ``params.yaml`` and the file's bytes, so any edit
to the file, including a new misspelt key that no other stage lists, makes ``dvc repro`` run
it. It also checks that ``monitor.batch`` exists or is written by a stage. It writes
``data/params.valid.json``, the sha256 of the bytes it validated: with an output, DVC's
run-cache can restore the stage, so that another clone given the same file skips it.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from quantpipe import cli, paths
from quantpipe.errors import ParamsError, show
from quantpipe.io import write_json
from quantpipe.lockfile import pipeline_outputs
from quantpipe.params import load_params

log = logging.getLogger("quantpipe.params")


def _check_batch(batch: str, dvcfile: Path) -> None:
    """Check that ``monitor.batch`` exists or is an output of the pipeline.

    The default, the test split, is an output. Otherwise the monitor stage would fail only
    after DVC has started it.
    """
    if Path(batch).exists() or batch in pipeline_outputs(dvcfile):
        return
    raise ParamsError(
        f"params.yaml: monitor.batch = {show(batch)}: no such file, and no stage writes it; "
        "give the path of an existing .csv or .npz"
    )


def _body(args: argparse.Namespace) -> None:
    params = load_params(args.params)
    _check_batch(params.monitor.batch, args.dvcfile)
    digest = hashlib.sha256(args.params.read_bytes()).hexdigest()
    write_json(args.stamp, {"sha256": digest, "valid": True})
    log.info("%s is valid; wrote %s", args.params, args.stamp)
    log.debug("%s", params)


def main(argv: Sequence[str] | None = None, prog: str = "python -m stages.params") -> int:
    """Run the stage; returns the exit status."""
    p = cli.parser(prog, "Validate params.yaml (every key, every value) and stamp it valid.")
    p.add_argument("--params", type=Path, default=paths.PARAMS, help="params file")
    p.add_argument("--dvcfile", type=Path, default=paths.DVCFILE, help="the pipeline")
    p.add_argument("--stamp", type=Path, default=paths.PARAMS_STAMP, help="where the stamp goes")
    return cli.run(_body, p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
