"""``quantpipe gate``: fail when a quantized model exceeds the accuracy budget.

Reads the budget of each variant from ``params.yaml`` (``gate.<variant>.max_r2_drop``,
``max_pred_rmse``, ``max_pred_p99``) and each model's figures against fp64 from
``metrics/compare.json``
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

from quantpipe import cli, paths
from quantpipe.errors import DataError, GateError
from quantpipe.params import GateParams, load_params


@dataclass(frozen=True)
class Check:
    """One budget check of one variant."""

    variant: str
    metric: str
    value: float
    limit: float | None

    @property
    def passed(self) -> bool:
        """Whether the value is within its limit (no limit: passed)."""
        return self.limit is None or self.value <= self.limit


#: Each limit, the figure of metrics/compare.json it bounds, and how to show it.
LIMITS = {
    "max_r2_drop": ("r2_delta", "R² drop"),
    "max_pred_rmse": ("pred_rmse", "RMS Δpred"),
    "max_pred_p99": ("pred_p99_abs", "p99 |Δpred|"),
}


def check_gate(compare: Mapping[str, Mapping[str, Any]], gate: GateParams) -> list[Check]:
    """Every check of every variant in the comparison.

    Parameters
    ----------
    compare : mapping
        ``metrics/compare.json``: variant name to ``r2_delta`` (variant minus fp64),
        ``pred_rmse`` and ``pred_p99_abs``.
    gate : GateParams

    Returns
    -------
    list of Check
        One per limit of each gated variant; one with no limit for a variant not gated.
    """
    checks = []
    for variant, figures in compare.items():
        budget = gate.budget(variant)
        if not budget:
            checks.append(Check(variant, "RMS Δpred", figures["pred_rmse"], None))
        for limit, value in budget.items():
            field, label = LIMITS[limit]
            figure = -figures[field] + 0.0 if limit == "max_r2_drop" else figures[field]
            checks.append(Check(variant, label, figure, value))
    return checks


def markdown(checks: Sequence[Check]) -> str:
    """The checks as a markdown table."""
    lines = ["| variant | check | value | budget | |", "| --- | --- | ---: | ---: | --- |"]
    for c in checks:
        budget = "none" if c.limit is None else f"{c.limit:.4g}"
        verdict = "pass" if c.passed else "**FAIL**"
        metric = c.metric.replace("|", "\\|")
        lines.append(f"| {c.variant} | {metric} | {c.value:.4g} | {budget} | {verdict} |")
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


def main(argv: Sequence[str] | None = None, prog: str = "quantpipe gate") -> int:
    """Run the command; returns the exit status."""
    p = cli.parser(prog, __doc__.split("\n\n")[0])
    p.add_argument("--params", type=Path, default=paths.PARAMS, help="params file")
    p.add_argument("--compare", type=Path, default=paths.COMPARE_JSON, help="comparison JSON")
    return cli.run(_body, p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
