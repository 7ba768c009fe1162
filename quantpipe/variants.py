"""The names of the model variants: ``fp64``, ``q{bits}``, ``q{bits}i`` and the float casts."""

from __future__ import annotations

import re

from quantpipe.quant.casts import CASTS

FLOAT_VARIANT = "fp64"
#: Names of the derived variants: q{bits}, q{bits}i (integer-only), and the float casts.
#: Groups: 1 the width of a quantized variant, 2 "i" for an integer-only one.
DERIVED_VARIANT = re.compile(r"q(\d+)(i?)|" + "|".join(CASTS))


def variant_name(bits: int) -> str:
    """Name of the quantized variant of a width: ``q8`` for 8 bits."""
    return f"q{bits}"


def integer_variant_name(bits: int) -> str:
    """Name of the integer-only variant of a width: ``q8i`` for 8 bits."""
    return f"q{bits}i"
