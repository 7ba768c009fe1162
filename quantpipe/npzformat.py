"""The checked ``.npz`` layout that every quantpipe file format shares.

A ``header`` member of UTF-8 JSON bytes beside the arrays, and readers that turn anything
unexpected into one :class:`~quantpipe.errors.ModelFileError` line that says how to rebuild
the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from quantpipe.errors import ModelFileError
from quantpipe.io import json_text


def header_array(header: dict[str, Any]) -> np.ndarray:
    """``header`` as the bytes of the ``header`` member: compact, sorted JSON, UTF-8."""
    text = json_text(header, sort_keys=True, separators=(",", ":"))
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def expect(cond: bool, path: Path, what: str) -> None:
    """Raise ``ModelFileError`` with ``what`` unless ``cond``."""
    if not cond:
        raise ModelFileError(f"{path}: {what}; rebuild it with `dvc repro`")


def section(header: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    """The header's object ``name``, checked."""
    section = header.get(name)
    if not isinstance(section, dict):
        raise ModelFileError(f"{path}: header has no {name} section; rebuild it with `dvc repro`")
    return section


def int_field(value: Any, path: Path, what: str, lo: int, hi: int | None = None) -> int:
    """``value`` if it is an integer from ``lo`` to ``hi``, else the error ``what``."""
    ok = type(value) is int and value >= lo and (hi is None or value <= hi)
    if not ok:
        raise ModelFileError(f"{path}: {what}; rebuild it with `dvc repro`")
    return int(value)


def member(
    arrays: dict[str, np.ndarray], name: str, dtype: str, shape: tuple, path: Path
) -> np.ndarray:
    """The array ``name``, checked to have exactly ``dtype`` and ``shape``."""
    array = arrays[name]
    expect(
        array.dtype == np.dtype(dtype) and array.shape == shape,
        path,
        f"member '{name}' is {array.dtype}{list(array.shape)}, expected "
        f"{np.dtype(dtype)}{list(shape)}",
    )
    return array


def read_header(arrays: dict[str, np.ndarray], path: Path) -> dict[str, Any]:
    """The JSON object in a file's ``header`` member (UTF-8 bytes), checked."""
    expect("header" in arrays, path, "no header: not a quantpipe model file")
    raw = arrays["header"]
    expect(raw.dtype == np.uint8 and raw.ndim == 1, path, "header is not UTF-8 JSON bytes")
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelFileError(
            f"{path}: header is not valid JSON; rebuild it with `dvc repro`"
        ) from None
    expect(isinstance(header, dict), path, "header is not a JSON object")
    return header
