"""The checks of single ``params.yaml`` values.

Each raises one :class:`~quantpipe.errors.ParamsError` line that names the key and what is
allowed.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from typing import Any

from quantpipe.errors import ParamsError, show
from quantpipe.quant.codes import MAX_BITS, MIN_BITS, check_bits


def fix_for(key: Any, allowed: tuple[str, ...], what: str = "allowed keys") -> str:
    """What to say of an unknown key: the allowed key it is closest to, or all of them."""
    hint = difflib.get_close_matches(str(key), allowed, n=1)
    return f"did you mean '{hint[0]}'?" if hint else f"{what}: " + ", ".join(allowed)


def check_keys(section: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    """Exactly the keys ``allowed`` in ``section``: the first unknown or missing one is an error."""
    for key in section:
        if key not in allowed:
            name = f"{where}.{key}" if where else str(key)
            raise ParamsError(f"params.yaml: unknown key '{name}'; {fix_for(key, allowed)}")
    for key in allowed:
        if key not in section:
            name = f"{where}.{key}" if where else key
            raise ParamsError(f"params.yaml: missing key '{name}'; add it (see docs/parameters.md)")


def mapping(value: Any, where: str) -> Mapping[str, Any]:
    """``value`` if it is a mapping."""
    if not isinstance(value, Mapping):
        raise ParamsError(f"params.yaml: '{where}' must be a mapping of keys to values")
    return value


def is_int(value: Any) -> bool:
    """An integer, and not a bool (YAML's ``true`` is not a count)."""
    return isinstance(value, int) and not isinstance(value, bool)


def choice(value: Any, allowed: tuple[str, ...], where: str) -> str:
    """``value`` if it is one of ``allowed``."""
    if value not in allowed:
        raise ParamsError(
            f"params.yaml: {where} = {show(value)} is not allowed; use one of: "
            + ", ".join(allowed)
        )
    return value


def flag(value: Any, where: str) -> bool:
    """``value`` if it is ``true`` or ``false``."""
    if not isinstance(value, bool):
        raise ParamsError(f"params.yaml: {where} = {show(value)} is not allowed; use true or false")
    return value


def distinct_choices(value: Any, allowed: tuple[str, ...], where: str) -> tuple[str, ...]:
    """A list of distinct values of ``allowed`` (maybe empty), as a tuple."""
    use = f"a list of distinct values from: {', '.join(allowed)} (may be empty: [])"
    if not isinstance(value, list) or len(set(map(repr, value))) != len(value):
        raise ParamsError(f"params.yaml: {where} = {show(value)} is not allowed; use {use}")
    for i, item in enumerate(value):
        if item not in allowed:
            raise ParamsError(f"params.yaml: {where}[{i}] = {show(item)} is not allowed; use {use}")
    return tuple(value)


def validate_bits(
    value: Any, where: str = "quantize.bits", allow_empty: bool = False
) -> tuple[int, ...]:
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
        If ``value`` is not a list of distinct integers from 2 to 16 (non-empty unless
        ``allow_empty``).
    """
    allowed = (
        f"a list of distinct integers from {MIN_BITS} to {MAX_BITS} (may be empty: [])"
        if allow_empty
        else f"a non-empty list of distinct integers from {MIN_BITS} to {MAX_BITS}, e.g. [8, 16]"
    )
    if not isinstance(value, list) or (not value and not allow_empty):
        raise ParamsError(f"params.yaml: {where} = {show(value)} is not allowed; use {allowed}")
    for i, bits in enumerate(value):
        if not _is_width(bits):
            raise ParamsError(
                f"params.yaml: {where}[{i}] = {show(bits)} is not allowed; use {allowed}"
            )
    if len(set(value)) != len(value):
        raise ParamsError(f"params.yaml: {where} = {show(value)} repeats a width; use {allowed}")
    return tuple(value)


def _is_width(bits: Any) -> bool:
    """Whether ``bits`` passes the one bit-width rule, :func:`quantpipe.quant.codes.check_bits`."""
    try:
        check_bits(bits)
    except (TypeError, ValueError):
        return False
    return True


def non_negative(value: Any, where: str, strictly: bool = False) -> float:
    """``value`` as a float, if it is a number >= 0 (> 0 with ``strictly``)."""
    ok = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value > 0 if strictly else value >= 0)
    )
    if not ok:
        kind = "a number > 0" if strictly else "a number >= 0"
        raise ParamsError(f"params.yaml: {where} = {show(value)} is not allowed; use {kind}")
    return float(value)
