"""``quantpipe gate``: fail when a quantized model exceeds the accuracy budget.

Reads the budget of each variant from ``params.yaml`` (``gate.<variant>.max_r2_drop``,
``max_pred_rmse``, ``max_pred_p99``) and each model's figures against fp64 from
``metrics/compare.json``
(written by the evaluate stage), prints a markdown table of every check, and exits 1 with
one line naming what exceeded its budget. CI runs it after ``dvc repro``.

The digits family has gates of its own (``mnist.gate``): fewer parameters than
``max_params`` and fp32's test accuracy at least ``min_accuracy`` (from
``metrics/mnist/eval/fp32.json``), and per quantized variant ``max_accuracy_drop`` and
``min_agreement`` (from ``metrics/mnist/compare.json``).
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
from quantpipe.mnist.params import MnistGate
from quantpipe.params import GateParams, load_params


@dataclass(frozen=True)
class Check:
    """One budget check of one variant."""

    variant: str
    metric: str
    value: float
    limit: float | None
    #: How the value must compare with the limit: "<=", "<" or ">=".
    op: str = "<="

    @property
    def passed(self) -> bool:
        """Whether the value is within its limit (no limit: passed)."""
        if self.limit is None:
            return True
        if self.op == ">=":
            return self.value >= self.limit
        return self.value < self.limit if self.op == "<" else self.value <= self.limit


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
        budget = "none" if c.limit is None else f"{'' if c.op == '<=' else c.op + ' '}{c.limit:.6g}"
        verdict = "pass" if c.passed else "**FAIL**"
        metric = c.metric.replace("|", "\\|")
        lines.append(f"| {c.variant} | {metric} | {c.value:.6g} | {budget} | {verdict} |")
    return "\n".join(lines) + "\n"


def check_mnist_gate(
    fp32: Mapping[str, Any], compare: Mapping[str, Mapping[str, Any]], gate: MnistGate
) -> list[Check]:
    """The digits family's checks.

    Parameters
    ----------
    fp32 : mapping
        ``metrics/mnist/eval/fp32.json``: ``param_count`` and ``accuracy``.
    compare : mapping
        ``metrics/mnist/compare.json``: variant name to ``accuracy_delta`` (variant minus
        fp32) and ``agreement``.
    gate : MnistGate

    Returns
    -------
    list of Check
    """
    checks = [
        Check("mnist fp32", "parameters", fp32["param_count"], gate.max_params, "<"),
        Check("mnist fp32", "accuracy", fp32["accuracy"], gate.min_accuracy, ">="),
    ]
    budgets = dict(gate.budgets)
    for variant, figures in compare.items():
        budget = dict(budgets.get(variant, ()))
        if not budget:
            checks.append(Check(f"mnist {variant}", "agreement", figures["agreement"], None))
        if "max_accuracy_drop" in budget:
            drop = -figures["accuracy_delta"] + 0.0
            checks.append(
                Check(f"mnist {variant}", "accuracy drop", drop, budget["max_accuracy_drop"])
            )
        if "min_agreement" in budget:
            checks.append(
                Check(
                    f"mnist {variant}",
                    "agreement",
                    figures["agreement"],
                    budget["min_agreement"],
                    ">=",
                )
            )
    return checks


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: not found; run `dvc repro` first") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc}); run `dvc repro`") from None


def _verdict(c: Check) -> str:
    broken = {"<=": ">", "<": ">=", ">=": "<"}[c.op]
    return f"{c.variant} {c.metric} {c.value:.6g} {broken} {c.limit:.6g}"


def _body(args: argparse.Namespace) -> None:
    params = load_params(args.params)
    checks = check_gate(_read_json(args.compare), params.gate)
    checks += check_mnist_gate(
        _read_json(args.mnist_eval_dir / "fp32.json"),
        _read_json(args.mnist_compare),
        params.mnist.gate,
    )
    sys.stdout.write(markdown(checks))
    failed = [c for c in checks if not c.passed]
    if failed:
        raise GateError(
            "accuracy budget exceeded: "
            + "; ".join(_verdict(c) for c in failed)
            + " (budget: gate and mnist.gate in params.yaml)"
        )


def main(argv: Sequence[str] | None = None, prog: str = "quantpipe gate") -> int:
    """Run the command; returns the exit status."""
    p = cli.parser(prog, __doc__.split("\n\n")[0])
    p.add_argument("--params", type=Path, default=paths.PARAMS, help="params file")
    p.add_argument("--compare", type=Path, default=paths.COMPARE_JSON, help="comparison JSON")
    p.add_argument(
        "--mnist-eval-dir", type=Path, default=paths.MNIST_EVAL_DIR, help="digits metrics"
    )
    p.add_argument(
        "--mnist-compare", type=Path, default=paths.MNIST_COMPARE, help="digits comparison JSON"
    )
    return cli.run(_body, p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
