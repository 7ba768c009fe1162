"""``quantpipe gate``: fail when a quantized model exceeds the accuracy budget.

Reads the budget from ``params.yaml`` (``gate.max_r2_drop``, ``gate.max_pred_rmse`` per
width) and each quantized model's figures against fp64 from ``metrics/compare.json``
(written by the evaluate stage), prints a markdown table of every check, and exits 1 with
one line naming what exceeded its budget. CI runs it after ``dvc repro``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stages import cli, paths
from stages.errors import DataError, QuantpipeError
from stages.params import GateParams, load_params


class GateError(QuantpipeError):
    """A quantized model exceeded the accuracy budget."""


@dataclass(frozen=True)
class Check:
    """One budget check of one variant."""

    variant: str
    metric: str
    value: float
    limit: float | None

    @property
    def passed(self) -> bool:
        return self.limit is None or self.value <= self.limit


def check_gate(compare: Mapping[str, Mapping[str, Any]], gate: GateParams) -> list[Check]:
    """Every check of every quantized variant.

    Parameters
    ----------
    compare : mapping
        ``metrics/compare.json``: variant name to ``bits``, ``r2_delta`` (quantized minus
        fp64) and ``pred_rmse``.
    gate : GateParams

    Returns
    -------
    list of Check
        Two per variant: the R² drop and the RMS Δprediction (limit None where the width
        has no RMS budget).
    """
    checks = []
    for variant, figures in compare.items():
        checks.append(Check(variant, "R² drop", -figures["r2_delta"] + 0.0, gate.max_r2_drop))
        checks.append(
            Check(variant, "RMS Δpred", figures["pred_rmse"], gate.rmse_budget(figures["bits"]))
        )
    return checks


def markdown(checks: Sequence[Check]) -> str:
    """The checks as a markdown table."""
    lines = ["| variant | check | value | budget | |", "| --- | --- | ---: | ---: | --- |"]
    for c in checks:
        budget = "none" if c.limit is None else f"{c.limit:.4g}"
        verdict = "pass" if c.passed else "**FAIL**"
        lines.append(f"| {c.variant} | {c.metric} | {c.value:.4g} | {budget} | {verdict} |")
    return "\n".join(lines) + "\n"


def _body(args: argparse.Namespace) -> None:
    params = load_params(args.params)
    try:
        compare = json.loads(args.compare.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{args.compare}: not found; run `dvc repro` first") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{args.compare}: not valid JSON ({exc}); run `dvc repro`") from None
    checks = check_gate(compare, params.gate)
    sys.stdout.write(markdown(checks))
    failed = [c for c in checks if not c.passed]
    if failed:
        raise GateError(
            "accuracy budget exceeded: "
            + "; ".join(f"{c.variant} {c.metric} {c.value:.4g} > {c.limit:.4g}" for c in failed)
            + " (budget: gate in params.yaml)"
        )


def main(argv: Sequence[str] | None = None, prog: str = "python -m stages.gate") -> int:
    """Run the command; returns the exit status."""
    p = cli.parser(prog, __doc__.split("\n\n")[0])
    p.add_argument("--params", type=Path, default=paths.PARAMS, help="params file")
    p.add_argument("--compare", type=Path, default=paths.COMPARE_JSON, help="comparison JSON")
    return cli.run(_body, p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
