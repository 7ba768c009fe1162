"""Read and validate ``params.yaml`` once, into frozen dataclasses.

Every stage validates the *whole* file when it starts, not only the keys it uses: DVC reruns a
stage only when one of the params it lists changes, so a misspelt key (``quantize.bitz``) would
otherwise be skipped as "up to date" without a word.
"""

from __future__ import annotations

import argparse
import difflib
import logging
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from stages import cli
from stages.errors import ParamsError
from stages.quantization import MAX_BITS, MIN_BITS

log = logging.getLogger("quantpipe.params")

PARAMS_FILE = Path("params.yaml")
SCHEMES = ("symmetric", "asymmetric")
GRANULARITIES = ("per-tensor", "per-channel")


@dataclass(frozen=True)
class DataParams:
    """How the data set is split.

    Attributes
    ----------
    seed : int
        ``random_state`` of :func:`sklearn.model_selection.train_test_split`.
    test_size : float
        Fraction of rows held out for evaluation, strictly between 0 and 1.
    """

    seed: int = 42
    test_size: float = 0.2

    def to_dict(self) -> dict[str, Any]:
        """As in ``params.yaml``, for file headers."""
        return {"seed": self.seed, "test_size": self.test_size}


@dataclass(frozen=True)
class QuantizeParams:
    """How the trained model is quantized.

    Attributes
    ----------
    bits : tuple of int
        The widths to build, one model each, every one from 2 to 16.
    scheme : {"symmetric", "asymmetric"}
        Symmetric: codes centred on zero, zero point fixed. Asymmetric: the range
        ``[min(v, 0), max(v, 0)]`` is mapped onto all ``2**bits`` codes.
    granularity : {"per-tensor", "per-channel"}
        One scale for all coefficients, or one per coefficient.
    standardize : bool
        Quantize the coefficients of the model on standardized features, then fold the
        training mean and standard deviation back into the stored scales and intercept.
    bias_correction : bool
        Re-center the intercept so that the prediction at the training means is unchanged
        by rounding.
    """

    bits: tuple[int, ...] = (8, 16)
    scheme: str = "symmetric"
    granularity: str = "per-tensor"
    standardize: bool = True
    bias_correction: bool = True

    @property
    def symmetric(self) -> bool:
        return self.scheme == "symmetric"

    @property
    def per_channel(self) -> bool:
        return self.granularity == "per-channel"

    def scheme_dict(self) -> dict[str, Any]:
        """The scheme keys (all but ``bits``), as in ``params.yaml``.

        These are the keys each quantize stage lists in ``dvc.yaml``; ``bits`` is not, since
        each stage builds one width and adding a width must not rebuild the others.
        """
        return {
            "scheme": self.scheme,
            "granularity": self.granularity,
            "standardize": self.standardize,
            "bias_correction": self.bias_correction,
        }


@dataclass(frozen=True)
class GateParams:
    """The accuracy budget CI enforces on every quantized model (``quantpipe gate``).

    Attributes
    ----------
    max_r2_drop : float
        fp64's test R² minus a quantized model's, at most.
    max_pred_rmse : tuple of (bits, float)
        RMS of the prediction difference against fp64, at most, per width. A width with no
        entry has no RMS budget (its R² drop is still checked).
    """

    max_r2_drop: float = 0.002
    max_pred_rmse: tuple[tuple[int, float], ...] = ((8, 0.01), (16, 0.001))

    def rmse_budget(self, bits: int) -> float | None:
        """The RMS Δprediction budget of a width, or None if it has none."""
        return dict(self.max_pred_rmse).get(bits)


@dataclass(frozen=True)
class Params:
    """All of ``params.yaml``."""

    data: DataParams
    quantize: QuantizeParams
    gate: GateParams


def _check_keys(section: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in section:
        if key not in allowed:
            name = f"{where}.{key}" if where else str(key)
            hint = difflib.get_close_matches(str(key), allowed, n=1)
            fix = f"did you mean '{hint[0]}'?" if hint else "allowed keys: " + ", ".join(allowed)
            raise ParamsError(f"params.yaml: unknown key '{name}'; {fix}")
    for key in allowed:
        if key not in section:
            name = f"{where}.{key}" if where else key
            raise ParamsError(f"params.yaml: missing key '{name}'; add it (see the README)")


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ParamsError(f"params.yaml: '{where}' must be a mapping of keys to values")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _choice(value: Any, allowed: tuple[str, ...], where: str) -> str:
    if value not in allowed:
        raise ParamsError(
            f"params.yaml: {where} = {value!r} is not allowed; use one of: " + ", ".join(allowed)
        )
    return value


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ParamsError(f"params.yaml: {where} = {value!r} is not allowed; use true or false")
    return value


def validate_bits(value: Any, where: str = "quantize.bits") -> tuple[int, ...]:
    """Validate a list of bit widths.

    Parameters
    ----------
    value : Any
        What ``params.yaml`` holds under ``quantize.bits``.
    where : str
        The key to name in error messages.

    Returns
    -------
    tuple of int
        The widths, in the order given.

    Raises
    ------
    ParamsError
        If ``value`` is not a non-empty list of distinct integers from 2 to 16.
    """
    allowed = f"a non-empty list of distinct integers from {MIN_BITS} to {MAX_BITS}, e.g. [8, 16]"
    if not isinstance(value, list) or not value:
        raise ParamsError(f"params.yaml: {where} = {value!r} is not allowed; use {allowed}")
    for i, bits in enumerate(value):
        if not _is_int(bits) or not MIN_BITS <= bits <= MAX_BITS:
            raise ParamsError(f"params.yaml: {where}[{i}] = {bits!r} is not allowed; use {allowed}")
    if len(set(value)) != len(value):
        raise ParamsError(f"params.yaml: {where} = {value!r} repeats a width; use {allowed}")
    return tuple(value)


def _non_negative(value: Any, where: str, strictly: bool = False) -> float:
    ok = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value > 0 if strictly else value >= 0)
    )
    if not ok:
        kind = "a number > 0" if strictly else "a number >= 0"
        raise ParamsError(f"params.yaml: {where} = {value!r} is not allowed; use {kind}")
    return float(value)


def _validate_gate(raw: Any) -> GateParams:
    gate = _mapping(raw, "gate")
    _check_keys(gate, ("max_r2_drop", "max_pred_rmse"), "gate")
    budgets = _mapping(gate["max_pred_rmse"], "gate.max_pred_rmse")
    pairs = []
    for key, value in budgets.items():
        bits = int(key) if isinstance(key, str) and key.isdigit() else key
        if not _is_int(bits) or not MIN_BITS <= bits <= MAX_BITS:
            raise ParamsError(
                f"params.yaml: gate.max_pred_rmse has key {key!r}; use bit widths from "
                f"{MIN_BITS} to {MAX_BITS}, e.g. 8: 0.01"
            )
        pairs.append((bits, _non_negative(value, f"gate.max_pred_rmse.{bits}", strictly=True)))
    return GateParams(
        max_r2_drop=_non_negative(gate["max_r2_drop"], "gate.max_r2_drop"),
        max_pred_rmse=tuple(sorted(pairs)),
    )


def validate_params(raw: Any) -> Params:
    """Validate the parsed content of ``params.yaml``.

    Parameters
    ----------
    raw : Any
        The document as :func:`yaml.safe_load` returns it.

    Returns
    -------
    Params
        The validated, frozen params.

    Raises
    ------
    ParamsError
        On the first problem found, with a message naming the key and the allowed values.
    """
    top = _mapping(raw, "the top level")
    _check_keys(top, ("data", "quantize", "gate"), "")

    data = _mapping(top["data"], "data")
    _check_keys(data, ("seed", "test_size"), "data")
    seed = data["seed"]
    if not _is_int(seed) or not 0 <= seed < 2**32:
        raise ParamsError(
            f"params.yaml: data.seed = {seed!r} is not allowed; use an integer from 0 to 2**32 - 1"
        )
    test_size = data["test_size"]
    if (
        not isinstance(test_size, float)
        or not math.isfinite(test_size)
        or not 0.0 < test_size < 1.0
    ):
        raise ParamsError(
            f"params.yaml: data.test_size = {test_size!r} is not allowed; "
            "use a fraction strictly between 0 and 1, e.g. 0.2"
        )

    quant = _mapping(top["quantize"], "quantize")
    _check_keys(
        quant, ("bits", "scheme", "granularity", "standardize", "bias_correction"), "quantize"
    )
    return Params(
        data=DataParams(seed=seed, test_size=test_size),
        gate=_validate_gate(top["gate"]),
        quantize=QuantizeParams(
            bits=validate_bits(quant["bits"]),
            scheme=_choice(quant["scheme"], SCHEMES, "quantize.scheme"),
            granularity=_choice(quant["granularity"], GRANULARITIES, "quantize.granularity"),
            standardize=_flag(quant["standardize"], "quantize.standardize"),
            bias_correction=_flag(quant["bias_correction"], "quantize.bias_correction"),
        ),
    )


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    """Read and validate a params file.

    Parameters
    ----------
    path : str or Path
        The YAML file, ``params.yaml`` in the repository root by default.

    Returns
    -------
    Params

    Raises
    ------
    ParamsError
        If the file is missing, is not valid YAML, or fails :func:`validate_params`.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParamsError(
            f"{path}: not found; run from the repository root, where params.yaml lives"
        ) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ParamsError(f"{path}: not valid YAML{where}; fix the syntax") from None
    return validate_params(raw)


def _body(args: argparse.Namespace) -> None:
    params = load_params(args.params)
    log.info("%s is valid: %s", args.params, params)


def main(argv: Sequence[str] | None = None, prog: str = "python -m stages.params") -> int:
    """Stage ``params``: validate the whole params file, write nothing.

    ``dvc.yaml`` gives this stage every key of ``params.yaml``, so any edit to the file,
    including a new misspelt key that no other stage lists, makes ``dvc repro`` run it.
    """
    p = cli.parser(prog, "Validate params.yaml (every key, every value); writes nothing.")
    p.add_argument("--params", type=Path, default=PARAMS_FILE, help="params file")
    return cli.run(_body, p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
