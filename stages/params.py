"""Stage ``params``: validate the whole params file, write nothing.

``dvc.yaml`` gives this stage every key of ``params.yaml``, so any edit to the file,
including a new misspelt key that no other stage lists, makes ``dvc repro`` run it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from quantpipe import cli, paths
from quantpipe.params import load_params

log = logging.getLogger("quantpipe.params")


def _body(args: argparse.Namespace) -> None:
    params = load_params(args.params)
    log.info("%s is valid: %s", args.params, params)


def main(argv: Sequence[str] | None = None, prog: str = "python -m stages.params") -> int:
    """Run the stage; returns the exit status."""
    p = cli.parser(prog, "Validate params.yaml (every key, every value); writes nothing.")
    p.add_argument("--params", type=Path, default=paths.PARAMS, help="params file")
    return cli.run(_body, p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
