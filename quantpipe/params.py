"""Read and validate ``params.yaml`` once, into frozen dataclasses.

Every stage validates the *whole* file when it starts, not only the keys it uses: DVC reruns a
stage only when one of the params it lists changes, so a misspelt key (``quantize.bitz``) would
otherwise be skipped as "up to date" without a word.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantpipe import paths, variants
from quantpipe.errors import ParamsError, show
from quantpipe.mnist.params import MnistParams, validate_mnist
from quantpipe.quant.casts import CASTS
from quantpipe.validate import (
    check_keys,
    choice,
    distinct_choices,
    fix_for,
    flag,
    is_int,
    mapping,
    non_negative,
    validate_bits,
)
from quantpipe.yamlread import read_yaml

SCHEMES = ("symmetric", "asymmetric")
GRANULARITIES = ("per-tensor", "per-channel")
ROUNDINGS = ("nearest", "data-aware")
CALIBRATIONS = ("minmax", "percentile")


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
    rounding : {"nearest", "data-aware"}
        Round each coefficient to its nearest code, or choose floor or ceil for each, and
        the clipping range, to minimise the prediction error on the training set
        (per-tensor only; per-channel codes are exact either way).
    casts : tuple of str
        Float baselines to build: ``float32``, ``float16``, ``bfloat16`` (may be empty).
    """

    bits: tuple[int, ...] = (8, 16)
    scheme: str = "symmetric"
    granularity: str = "per-tensor"
    standardize: bool = True
    bias_correction: bool = True
    rounding: str = "data-aware"
    casts: tuple[str, ...] = CASTS

    @property
    def symmetric(self) -> bool:
        """Whether the codes are symmetric around zero."""
        return self.scheme == "symmetric"

    @property
    def per_channel(self) -> bool:
        """Whether each coefficient has a scale of its own."""
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
            "rounding": self.rounding,
        }


@dataclass(frozen=True)
class IntegerParams:
    """The integer-only inference variants (``q{bits}i``).

    Attributes
    ----------
    bits : tuple of int
        Widths of the weight and input codes, 2 to 16 each (may be empty).
    calibration : {"minmax", "percentile"}
        How each feature's input range is set from the training set.
    percentile : float
        With ``percentile`` calibration, the range spans this central percent, in (50, 100].
    """

    bits: tuple[int, ...] = (8,)
    calibration: str = "percentile"
    percentile: float = 99.99

    def to_dict(self) -> dict[str, Any]:
        """The calibration keys, as in ``params.yaml``."""
        return {"calibration": self.calibration, "percentile": self.percentile}


GATE_LIMITS = ("max_r2_drop", "max_pred_rmse", "max_pred_p99")


@dataclass(frozen=True)
class GateParams:
    """The accuracy budget CI enforces (``quantpipe gate``), per variant.

    Attributes
    ----------
    budgets : tuple of (variant, ((limit, value), ...))
        For each gated variant, some of: ``max_r2_drop`` (fp64's test R² minus the
        variant's), ``max_pred_rmse`` and ``max_pred_p99`` (RMS and 99th percentile of
        |Δprediction| against fp64). Variants not listed are reported, not gated; budgets
        of variants not built are ignored.
    """

    budgets: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = ()

    def budget(self, variant: str) -> dict[str, float]:
        """The limits of a variant; empty if it is not gated."""
        return dict(dict(self.budgets).get(variant, ()))


@dataclass(frozen=True)
class MonitorParams:
    """Drift monitoring (``quantpipe monitor`` and the server's drift gauges).

    Attributes
    ----------
    batch : str
        The rows the ``monitor`` stage checks: a CSV with a header, or a ``.npz`` dataset.
    bins : int
        PSI bins, cut at the training quantiles.
    psi_alert, ks_alert : float
        A feature (or the predictions) whose PSI, or KS statistic, exceeds these alerts.
    missing_alert : float
        A feature with a larger share of missing values alerts.
    """

    batch: str = "data/split/test.npz"
    bins: int = 10
    psi_alert: float = 0.2
    ks_alert: float = 0.1
    missing_alert: float = 0.01


@dataclass(frozen=True)
class Params:
    """All of ``params.yaml``."""

    data: DataParams
    quantize: QuantizeParams
    integer: IntegerParams
    gate: GateParams
    monitor: MonitorParams
    mnist: MnistParams


def _validate_gate(raw: Any) -> GateParams:
    gate = mapping(raw, "gate")
    budgets = []
    for variant, limits in gate.items():
        if not isinstance(variant, str) or not variants.DERIVED_VARIANT.fullmatch(variant):
            raise ParamsError(
                f"params.yaml: gate has key {show(variant)}; "
                "use variant names such as q8, q8i, float16"
            )
        limits = mapping(limits, f"gate.{variant}")
        if not limits:
            raise ParamsError(
                f"params.yaml: gate.{variant} is empty; give some of: {', '.join(GATE_LIMITS)}"
            )
        for key in limits:
            if key not in GATE_LIMITS:
                fix = fix_for(key, GATE_LIMITS, "allowed")
                raise ParamsError(f"params.yaml: unknown key 'gate.{variant}.{key}'; {fix}")
        checked = tuple(
            (
                key,
                non_negative(limits[key], f"gate.{variant}.{key}", strictly=key != "max_r2_drop"),
            )
            for key in GATE_LIMITS
            if key in limits
        )
        budgets.append((variant, checked))
    return GateParams(budgets=tuple(sorted(budgets)))


def _validate_monitor(raw: Any) -> MonitorParams:
    mon = mapping(raw, "monitor")
    check_keys(mon, ("batch", "bins", "psi_alert", "ks_alert", "missing_alert"), "monitor")
    batch = mon["batch"]
    if not isinstance(batch, str) or not batch.endswith((".csv", ".npz")):
        raise ParamsError(
            f"params.yaml: monitor.batch = {show(batch)} is not allowed; use the path of a .csv "
            "or .npz file, e.g. data/split/test.npz"
        )
    bins = mon["bins"]
    if not is_int(bins) or not 2 <= bins <= 100:
        raise ParamsError(
            f"params.yaml: monitor.bins = {show(bins)} is not allowed; use an integer from 2 to 100"
        )
    return MonitorParams(
        batch=batch,
        bins=bins,
        psi_alert=non_negative(mon["psi_alert"], "monitor.psi_alert", strictly=True),
        ks_alert=non_negative(mon["ks_alert"], "monitor.ks_alert", strictly=True),
        missing_alert=non_negative(mon["missing_alert"], "monitor.missing_alert"),
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
    top = mapping(raw, "the top level")
    check_keys(top, ("data", "quantize", "integer", "gate", "monitor", "mnist"), "")
    data = _validate_data(top["data"])
    quant = mapping(top["quantize"], "quantize")
    check_keys(
        quant,
        ("bits", "scheme", "granularity", "standardize", "bias_correction", "rounding", "casts"),
        "quantize",
    )
    integer = mapping(top["integer"], "integer")
    check_keys(integer, ("bits", "calibration", "percentile"), "integer")
    percentile = _percentile(integer["percentile"])
    return Params(
        data=data,
        gate=_validate_gate(top["gate"]),
        monitor=_validate_monitor(top["monitor"]),
        mnist=validate_mnist(top["mnist"]),
        quantize=QuantizeParams(
            bits=validate_bits(quant["bits"]),
            scheme=choice(quant["scheme"], SCHEMES, "quantize.scheme"),
            granularity=choice(quant["granularity"], GRANULARITIES, "quantize.granularity"),
            standardize=flag(quant["standardize"], "quantize.standardize"),
            bias_correction=flag(quant["bias_correction"], "quantize.bias_correction"),
            rounding=choice(quant["rounding"], ROUNDINGS, "quantize.rounding"),
            casts=distinct_choices(quant["casts"], CASTS, "quantize.casts"),
        ),
        integer=IntegerParams(
            bits=validate_bits(integer["bits"], "integer.bits", allow_empty=True),
            calibration=choice(integer["calibration"], CALIBRATIONS, "integer.calibration"),
            percentile=percentile,
        ),
    )


def _validate_data(raw: Any) -> DataParams:
    data = mapping(raw, "data")
    check_keys(data, ("seed", "test_size"), "data")
    seed = data["seed"]
    if not is_int(seed) or not 0 <= seed < 2**32:
        raise ParamsError(
            f"params.yaml: data.seed = {show(seed)} is not allowed; "
            "use an integer from 0 to 2**32 - 1"
        )
    test_size = data["test_size"]
    if (
        not isinstance(test_size, float)
        or not math.isfinite(test_size)
        or not 0.0 < test_size < 1.0
    ):
        raise ParamsError(
            f"params.yaml: data.test_size = {show(test_size)} is not allowed; "
            "use a fraction strictly between 0 and 1, e.g. 0.2"
        )
    return DataParams(seed=seed, test_size=test_size)


def _percentile(value: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 50 < value <= 100:
        raise ParamsError(
            f"params.yaml: integer.percentile = {show(value)} is not allowed; use a number "
            "above 50 and at most 100, e.g. 99.99"
        )
    return float(value)


def load_params(path: str | Path = paths.PARAMS) -> Params:
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
    return validate_params(read_yaml(Path(path), ParamsError))
