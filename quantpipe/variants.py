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


def variant_kind(name: str) -> tuple[str, int | None]:
    """The kind of model a variant name stands for, and its code width if the name says one.

    ``("float", None)`` for fp64, ``("quantized", 8)`` for q8, ``("integer", 8)`` for q8i,
    ``("cast", None)`` for a float cast.

    Raises
    ------
    ValueError
        If ``name`` is no variant name.
    """
    if name == FLOAT_VARIANT:
        return "float", None
    match = DERIVED_VARIANT.fullmatch(name)
    if match is None:
        raise ValueError(f"{name!r} is not a model variant (fp64, q{{bits}}, q{{bits}}i or a cast)")
    if match.group(1) is None:
        return "cast", None
    return ("integer" if match.group(2) else "quantized"), int(match.group(1))
