"""The ``mnist`` section of ``params.yaml``, validated into frozen dataclasses.

:func:`quantpipe.params.validate_params` calls :func:`validate_mnist` for the section, so
that every stage validates the whole file.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from quantpipe.errors import ParamsError, show
from quantpipe.mnist.settings import CALIBRATIONS, ROUNDINGS, QuantSettings, TrainSettings
from quantpipe.validate import check_keys, choice, fix_for, flag, is_int, mapping, validate_bits

GATE_LIMITS = ("max_accuracy_drop", "min_agreement")
#: The name of a quantized digits variant: q2 to q16.
QUANTIZED = re.compile(r"q([2-9]|1[0-6])")
#: The most calibration images: their Gram matrices must stay exact in float64.
MAX_CALIBRATION_IMAGES = 10_000


@dataclass(frozen=True)
class MnistQuantize:
    """``mnist.quantize``: the widths to build, and how (see :class:`QuantSettings`)."""

    bits: tuple[int, ...]
    rounding: str
    bias_correction: bool
    calibration: str
    percentile: float
    calibration_images: int

    def settings(self, bits: int) -> QuantSettings:
        """The settings of one width."""
        return QuantSettings(
            bits, self.rounding, self.bias_correction, self.calibration, self.percentile
        )

    def to_dict(self) -> dict[str, Any]:
        """The keys each quantize stage lists (all but ``bits``), as in ``params.yaml``."""
        return {
            "rounding": self.rounding,
            "bias_correction": self.bias_correction,
            "calibration": self.calibration,
            "percentile": self.percentile,
            "calibration_images": self.calibration_images,
        }


@dataclass(frozen=True)
class MnistGate:
    """``mnist.gate``: what CI enforces.

    Attributes
    ----------
    max_params : int
        The network must have fewer parameters than this.
    min_accuracy : float
        fp32's test accuracy must be at least this.
    budgets : tuple of (variant, ((limit, value), ...))
        Per quantized variant: ``max_accuracy_drop`` (points of fp32's accuracy, as a
        fraction) and ``min_agreement`` (share of digits equal to fp32's).
    """

    max_params: int
    min_accuracy: float
    budgets: tuple[tuple[str, tuple[tuple[str, float], ...]], ...]


@dataclass(frozen=True)
class MnistParams:
    """All of ``params.yaml``'s ``mnist`` section."""

    train: TrainSettings
    quantize: MnistQuantize
    gate: MnistGate


def _int(value: Any, where: str, lo: int, hi: int) -> int:
    if not is_int(value) or not lo <= value <= hi:
        raise ParamsError(
            f"params.yaml: {where} = {show(value)} is not allowed; use an integer from {lo} to {hi}"
        )
    return int(value)


def _fraction(value: Any, where: str, lo: float, hi: float, open_lo: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not (lo < value if open_lo else lo <= value) or not value <= hi:
        left = "above" if open_lo else "at least"
        raise ParamsError(
            f"params.yaml: {where} = {show(value)} is not allowed; use a number {left} {lo} "
            f"and at most {hi}"
        )
    return float(value)


def _train(raw: Any, seed: int) -> TrainSettings:
    train = mapping(raw, "mnist.train")
    check_keys(train, ("channels", "epochs", "batch_size", "learning_rate"), "mnist.train")
    channels = train["channels"]
    if not isinstance(channels, list) or len(channels) != 2:
        raise ParamsError(
            f"params.yaml: mnist.train.channels = {show(channels)} is not allowed; use a list "
            "of two integers from 1 to 64, e.g. [16, 32]"
        )
    c1 = _int(channels[0], "mnist.train.channels[0]", 1, 64)
    c2 = _int(channels[1], "mnist.train.channels[1]", 1, 64)
    return TrainSettings(
        seed=seed,
        channels=(c1, c2),
        epochs=_int(train["epochs"], "mnist.train.epochs", 1, 100),
        batch_size=_int(train["batch_size"], "mnist.train.batch_size", 1, 60_000),
        learning_rate=_fraction(
            train["learning_rate"], "mnist.train.learning_rate", 0.0, 1.0, True
        ),
    )


def _quantize(raw: Any) -> MnistQuantize:
    quant = mapping(raw, "mnist.quantize")
    keys = (
        "bits",
        "rounding",
        "bias_correction",
        "calibration",
        "percentile",
        "calibration_images",
    )
    check_keys(quant, keys, "mnist.quantize")
    return MnistQuantize(
        bits=validate_bits(quant["bits"], "mnist.quantize.bits"),
        rounding=choice(quant["rounding"], ROUNDINGS, "mnist.quantize.rounding"),
        bias_correction=flag(quant["bias_correction"], "mnist.quantize.bias_correction"),
        calibration=choice(quant["calibration"], CALIBRATIONS, "mnist.quantize.calibration"),
        percentile=_fraction(quant["percentile"], "mnist.quantize.percentile", 50.0, 100.0, True),
        calibration_images=_int(
            quant["calibration_images"],
            "mnist.quantize.calibration_images",
            1,
            MAX_CALIBRATION_IMAGES,
        ),
    )


def _gate(raw: Any) -> MnistGate:
    gate = mapping(raw, "mnist.gate")
    for key in gate:
        if key not in ("max_params", "min_accuracy") and not (
            isinstance(key, str) and QUANTIZED.fullmatch(key)
        ):
            raise ParamsError(
                f"params.yaml: mnist.gate has key {show(key)}; use max_params, min_accuracy, "
                "or a quantized variant's name, q2 to q16"
            )
    for key in ("max_params", "min_accuracy"):
        if key not in gate:
            raise ParamsError(
                f"params.yaml: missing key 'mnist.gate.{key}'; add it (see docs/parameters.md)"
            )
    budgets = []
    for variant in sorted(k for k in gate if k not in ("max_params", "min_accuracy")):
        limits = mapping(gate[variant], f"mnist.gate.{variant}")
        if not limits:
            raise ParamsError(
                f"params.yaml: mnist.gate.{variant} is empty; "
                f"give some of: {', '.join(GATE_LIMITS)}"
            )
        for key in limits:
            if key not in GATE_LIMITS:
                fix = fix_for(key, GATE_LIMITS, "allowed")
                raise ParamsError(f"params.yaml: unknown key 'mnist.gate.{variant}.{key}'; {fix}")
        budgets.append(
            (
                variant,
                tuple(
                    (k, _fraction(limits[k], f"mnist.gate.{variant}.{k}", 0.0, 1.0))
                    for k in GATE_LIMITS
                    if k in limits
                ),
            )
        )
    return MnistGate(
        max_params=_int(gate["max_params"], "mnist.gate.max_params", 1, 10**9),
        min_accuracy=_fraction(gate["min_accuracy"], "mnist.gate.min_accuracy", 0.0, 1.0),
        budgets=tuple(budgets),
    )


def validate_mnist(raw: Any) -> MnistParams:
    """Validate ``params.yaml``'s ``mnist`` section.

    Raises
    ------
    ParamsError
        On the first problem found, naming the key and what is allowed.
    """
    section = mapping(raw, "mnist")
    check_keys(section, ("seed", "train", "quantize", "gate"), "mnist")
    seed = _int(section["seed"], "mnist.seed", 0, 2**32 - 1)
    return MnistParams(
        train=_train(section["train"], seed),
        quantize=_quantize(section["quantize"]),
        gate=_gate(section["gate"]),
    )
