"""The fast readers of plain inputs: rows of finite numbers and nothing else.

Each returns the rows, or None for anything unusual, which :mod:`quantpipe.tables` then reads
line by line, to give the same values or to say what is wrong and where.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

try:
    import orjson
except ModuleNotFoundError:  # quantpipe without the serve extra: the line-by-line parser
    orjson = None  # type: ignore[assignment]

from quantpipe import compiled


def plain_csv(text: str, columns: int) -> np.ndarray | None:
    r"""The rows of a CSV's text (no header), read by the compiled reader, or None.

    Parameters
    ----------
    text : str
        Lines ending in ``"\n"`` (the last one may not).
    columns : int
        Values a row.

    Returns
    -------
    ndarray of shape (n_rows, columns), float64, or None
        None unless every line is blank (spaces, tabs, ``"\r"``) or ``columns`` decimal
        numbers separated by commas, each finite and a normal float64 or zero: then the values
        are ``float()``'s of the fields, bit for bit (``_kernels.c``'s CSV section says how).
    """
    table = np.empty((text.count("\n") + 1, columns))
    rows = compiled.csv_floats(text, columns, table)
    return None if rows < 0 else table[:rows]


#: Each line blank or one bracketed list, and only the characters of JSON numbers between.
_JSON_LIST_LINES = re.compile(r"(?:[ \t]*(?:\[[0-9eE.+\-, \t]*\])?[ \t]*\r?\n)*")


def plain_jsonl(lines: Sequence[str], n_features: int) -> np.ndarray | None:
    """The rows of a chunk of list-form JSON lines of numbers, parsed by orjson, or None.

    None when the chunk is anything else (objects, booleans, strings, nulls, a wrong length,
    a value beyond float64): the line-by-line parser then reads it and names what is wrong.
    One regular expression checks that every line is blank or a single list holding only the
    characters of numbers (so that booleans and strings, which a float conversion would
    take, never reach orjson); orjson then parses the numbers, and numpy checks that every
    row has ``n_features`` of them.
    """
    if orjson is None or n_features == 0 or not lines:
        return None
    text = "".join(lines)
    if not text.endswith("\n"):
        text += "\n"
    if not _JSON_LIST_LINES.fullmatch(text):
        return None
    rows = [line for line in lines if line.strip()]
    try:
        items = orjson.loads("[" + ",".join(rows) + "]")
        table = np.array(items, dtype=np.float64)
    except (orjson.JSONDecodeError, ValueError, TypeError):  # bad syntax, beyond float64, ragged
        return None
    if table.shape != (len(rows), n_features) or not np.isfinite(table).all():
        return None
    return table
