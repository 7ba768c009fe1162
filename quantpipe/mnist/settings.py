"""What training and quantizing the digits network take: plain frozen dataclasses.

``params.yaml``'s ``mnist`` section gives them; :mod:`quantpipe.mnist.params` validates it.
"""

from __future__ import annotations

from dataclasses import dataclass

#: How the quantizer rounds the weights, and how it reads an activation's range.
ROUNDINGS = ("nearest", "data-aware")
CALIBRATIONS = ("minmax", "percentile")


@dataclass(frozen=True)
class TrainSettings:
    """What training needs (from ``params.yaml``'s ``mnist`` section).

    Attributes
    ----------
    seed : int
        Seeds the initial weights and the order of the images.
    channels : tuple of int
        Output channels of the two convolutions.
    epochs : int
    batch_size : int
    learning_rate : float
        Adam's step size.
    """

    seed: int
    channels: tuple[int, int]
    epochs: int
    batch_size: int
    learning_rate: float


@dataclass(frozen=True)
class QuantSettings:
    """How to quantize (from ``params.yaml``'s ``mnist.quantize``).

    Attributes
    ----------
    bits : int
        Weight width, 2 to 16.
    rounding : {"nearest", "data-aware"}
    bias_correction : bool
    calibration : {"minmax", "percentile"}
        How an activation's range is read off the calibration images.
    percentile : float
        With ``"percentile"``, the share of values (in percent) the range keeps, in (50, 100].
    """

    bits: int
    rounding: str
    bias_correction: bool
    calibration: str
    percentile: float


# -- calibration -----------------------------------------------------------------------------
