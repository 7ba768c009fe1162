"""Rows of features from CSV or JSON lines: the one reader of ``predict`` and ``monitor``.

The rules, the same for a file and for standard input:

- text is UTF-8; a byte-order mark at the start (Excel writes one) is dropped;
- a CSV may start with a header line naming the columns: the features in any order and in
  any case, and optionally the target ``MedHouseVal``, which is ignored by ``predict`` and
  scored by ``monitor``; without a header the columns are the features in the model's order;
- JSON lines hold a list of the feature values, or an object keyed by them in any case (the
  target key is allowed);
- blank lines are skipped (line numbers in messages still count them); Windows and Unix
  line endings both end a line;
- an empty field, ``nan`` or ``inf`` is a missing value: ``predict`` refuses it, naming the
  line; ``monitor`` counts it;
- an error names the line and the column and quotes at most a short cut of the field.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from quantpipe.data import TARGET_NAME
from quantpipe.errors import InputError, cut, show
from quantpipe.plain import plain_csv, plain_jsonl
from quantpipe.pool import Parse, default_jobs, parsed_in_order

FORMATS = ("auto", "csv", "jsonl")
BOM = "\ufeff"


@dataclass(frozen=True)
class Layout:
    """Where a CSV's values are.

    Attributes
    ----------
    names : tuple of str
        The column names (the header's, or the features' for a CSV without one).
    features : tuple of int
        The column of each of the model's features, in the model's order.
    target : int or None
        The column of the target, if there is one.
    has_header : bool
    """

    names: tuple[str, ...]
    features: tuple[int, ...]
    target: int | None
    has_header: bool


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def csv_layout(first_line: str, names: Sequence[str]) -> Layout:
    """The layout a CSV's first line gives: a header of column names, or the first row.

    Raises
    ------
    InputError
        If the first line is a header that is not the features (in any order and case) and
        optionally the target, each once.
    """
    fields = [f.strip() for f in first_line.strip().split(",")]
    if all(f == "" or _is_number(f) for f in fields):
        return Layout(tuple(names), tuple(range(len(names))), None, False)
    lower = [f.lower() for f in fields]
    wanted = [n.lower() for n in (*names, TARGET_NAME)]
    if len(set(lower)) != len(lower) or not set(wanted[:-1]) <= set(lower) <= set(wanted):
        raise InputError(
            f"line 1: columns are {show(fields)}; expected the features {list(names)} in any "
            f"order, and optionally {TARGET_NAME}"
        )
    target = lower.index(wanted[-1]) if wanted[-1] in lower else None
    features = tuple(lower.index(n) for n in wanted[:-1])
    return Layout(tuple(fields), features, target, True)


def _field_value(field: str, lineno: int, column: str, missing_ok: bool) -> float:
    text = field.strip()
    if text == "":
        value = math.nan
    else:
        try:
            value = float(text)
        except ValueError:
            raise InputError(f"line {lineno}: {column} = {show(text)} is not a number") from None
    if not missing_ok and not math.isfinite(value):
        what = "is missing" if text == "" else f"= {cut(text, 40)} is not finite"
        raise InputError(f"line {lineno}: {column} {what}")
    return value


def _csv_row(line: str, lineno: int, layout: Layout, missing_ok: bool) -> list[float]:
    fields = line.strip().split(",")
    if len(fields) != len(layout.names):
        raise InputError(
            f"line {lineno}: {len(fields)} values, expected {len(layout.names)} "
            f"({','.join(layout.names)})"
        )
    return [  # the target may be missing: only monitor reads it, and it checks
        _field_value(f, lineno, column, missing_ok or i == layout.target)
        for i, (f, column) in enumerate(zip(fields, layout.names, strict=True))
    ]


def _numbered(lines: Sequence[str], first_lineno: int) -> Iterator[tuple[int, str]]:
    """The non-blank lines, each with its 1-based line number in the input."""
    return ((first_lineno + i, line) for i, line in enumerate(lines) if line.strip())


def parse_csv(
    lines: Sequence[str], first_lineno: int, layout: Layout, missing_ok: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """Parse CSV lines (no header) into features and, if present, targets.

    Parameters
    ----------
    lines : sequence of str
        Lines of the input; blank ones are skipped.
    first_lineno : int
        The 1-based line number of ``lines[0]`` in the input, for messages.
    layout : Layout
    missing_ok : bool
        Whether an empty or non-finite value is a missing value (NaN) rather than an error.

    Returns
    -------
    X : ndarray of shape (n_rows, n_features), float64
    y : ndarray of shape (n_rows,) or None

    Raises
    ------
    InputError
        Naming the first bad line and column.
    """
    rows_only = lines
    if "\n" in lines or "\r\n" in lines:  # C-speed checks for the usual blank lines
        rows_only = [line for line in lines if line.strip()]
    if not rows_only:
        empty = np.empty((0, len(layout.features)))
        return empty, (np.empty(0) if layout.target is not None else None)
    try:  # the fast path: numpy's reader, for well-formed rows of numbers
        table = np.loadtxt(rows_only, delimiter=",", dtype=np.float64, ndmin=2, comments=None)
    except ValueError:
        table = None
    if table is not None and table.shape == (len(rows_only), len(layout.names)):
        X = _features(table, layout)
        if missing_ok or np.isfinite(X).all():
            return X, (table[:, layout.target] if layout.target is not None else None)
    # the slow path, on anything unusual: line by line, to say what is wrong and where
    rows = [_csv_row(line, n, layout, missing_ok) for n, line in _numbered(lines, first_lineno)]
    table = np.array(rows, dtype=np.float64).reshape(len(rows), len(layout.names))
    return _features(table, layout), (
        table[:, layout.target] if layout.target is not None else None
    )


def _features(table: np.ndarray, layout: Layout) -> np.ndarray:
    """The feature columns of a parsed table, in the model's order.

    The table itself, not a copy, when it is exactly those columns in that order.
    """
    if layout.features == tuple(range(table.shape[1])):
        return table
    return table[:, list(layout.features)]


def _json_value(value: object, lineno: int, column: str, missing_ok: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        if missing_ok and value is None:
            return math.nan
        raise InputError(f"line {lineno}: {column} = {show(value)} is not a number")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond float64
        raise InputError(f"line {lineno}: {column} = {show(value)} is too large") from None
    if not missing_ok and not math.isfinite(number):
        raise InputError(f"line {lineno}: {column} = {number} is not finite")
    return number


def _json_row(
    line: str, lineno: int, names: Sequence[str], missing_ok: bool
) -> tuple[list[float], bool]:
    """The features of one JSON line and its target (NaN if absent), and whether it had one."""
    try:
        item = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"line {lineno}: not valid JSON ({exc.msg})") from None
    except ValueError:  # an integer of more than 4,300 digits (Python's int() limit)
        raise InputError(f"line {lineno}: a number with too many digits") from None
    except RecursionError:
        raise InputError(f"line {lineno}: JSON nested too deeply") from None
    target: object = None
    if isinstance(item, dict):  # keys matched in any case, as a CSV header's names are
        keyed = {str(k).lower(): v for k, v in item.items()}
        wanted = [n.lower() for n in names]
        if len(keyed) != len(item) or not set(wanted) <= set(keyed) <= {*wanted, "medhouseval"}:
            raise InputError(
                f"line {lineno}: keys are {show(sorted(map(str, item)))}, expected "
                f"{list(names)} and optionally {TARGET_NAME}"
            )
        target = keyed.get(TARGET_NAME.lower())
        item = [keyed[name] for name in wanted]
    if not isinstance(item, list) or len(item) != len(names):
        raise InputError(
            f"line {lineno}: expected a list of {len(names)} numbers or an object "
            f"keyed by {','.join(names)}"
        )
    row = [_json_value(v, lineno, c, missing_ok) for v, c in zip(item, names, strict=True)]
    row.append(_json_value(target, lineno, TARGET_NAME, True))
    return row, target is not None


def parse_jsonl(
    lines: Sequence[str], first_lineno: int, names: Sequence[str], missing_ok: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """Parse JSON lines; takes, returns and raises as :func:`parse_csv`.

    The targets are returned if a line has a ``MedHouseVal`` key (NaN where one has not).
    A chunk of list-form lines of numbers only is parsed by orjson in one call
    (:func:`quantpipe.plain.plain_jsonl`); anything else line by line, with the same values
    and messages.
    """
    fast = plain_jsonl(lines, len(names))
    if fast is not None:
        return fast, None
    parsed = [_json_row(line, n, names, missing_ok) for n, line in _numbered(lines, first_lineno)]
    table = np.array([row for row, _ in parsed], dtype=np.float64)
    table = table.reshape(len(parsed), len(names) + 1)
    has_target = any(has for _, has in parsed)
    return table[:, : len(names)], table[:, len(names)] if has_target else None


def _first_line(lines: Iterator[str]) -> tuple[int, str] | None:
    """The first non-blank line and its number, a leading byte-order mark dropped."""
    for lineno, line in enumerate(lines, start=1):
        if lineno == 1:
            line = line.removeprefix(BOM)
        if line.strip():
            return lineno, line
    return None


def read_chunks(
    stream: Iterable[str],
    names: Sequence[str],
    fmt: str = "auto",
    chunk_rows: int = 65536,
    missing_ok: bool = False,
    jobs: int | None = 1,
) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """Stream an input as arrays of at most ``chunk_rows`` rows.

    Parameters
    ----------
    stream : iterable of str
        Lines of the input (a text file or standard input).
    names : sequence of str
        Feature names, in the model's order.
    fmt : {"auto", "csv", "jsonl"}
        ``auto`` looks at the first non-blank line.
    chunk_rows : int
        Rows per chunk.
    missing_ok : bool
        As for :func:`parse_csv`.
    jobs : int or None, default=1
        Worker processes that parse chunks (:mod:`quantpipe.pool`); 1 parses here. None: 1
        for a CSV (the compiled reader reads a chunk faster than it can be sent to a worker)
        and :func:`quantpipe.pool.default_jobs` for JSON lines. The arrays and the errors are
        the same whatever the number.

    Yields
    ------
    X : ndarray of shape (n, len(names)), float64
    y : ndarray of shape (n,) or None
        The targets, if the input has them.

    Raises
    ------
    InputError
        On the first bad line, or an input with no rows.
    """
    lines = iter(stream)
    try:
        yield from _chunks(lines, names, fmt, chunk_rows, missing_ok, jobs)
    except UnicodeDecodeError as exc:
        raise InputError(f"the input is not UTF-8 text ({exc.reason})") from None
    except OSError as exc:  # an input that fails while read: not to be taken for the output's
        raise InputError(f"the input cannot be read ({exc.strerror})") from None


def _chunks(
    lines: Iterator[str],
    names: Sequence[str],
    fmt: str,
    chunk_rows: int,
    missing_ok: bool,
    jobs: int | None,
) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    first = _first_line(lines)
    if first is None:
        raise InputError("the input is empty: no rows")
    lineno, line = first
    if fmt == "auto":
        fmt = "jsonl" if line.lstrip().startswith(("[", "{")) else "csv"
    layout = csv_layout(line, names) if fmt == "csv" else None
    if layout is not None and layout.has_header:
        lineno += 1
    else:
        lines = itertools.chain([line], lines)
    if layout is not None:
        parse: Parse[Table] = functools.partial(_csv_chunk, layout=layout, missing_ok=missing_ok)
    else:
        parse = functools.partial(_jsonl_chunk, names=tuple(names), missing_ok=missing_ok)
    if jobs is None:
        jobs = 1 if layout is not None else default_jobs()
    rows = 0
    for X, y in parsed_in_order(_numbered_chunks(lines, lineno, chunk_rows), parse, jobs):
        if len(X):
            rows += len(X)
            yield X, y
    if rows == 0:
        raise InputError("the input has a header but no rows")


#: A parsed chunk: its features and, if the input has them, its targets.
Table = tuple[np.ndarray, np.ndarray | None]


def _csv_chunk(lines: list[str], first_lineno: int, layout: Layout, missing_ok: bool) -> Table:
    # a text file's lines: each ends with its "\n" but the input's last, so joined, the text
    table = plain_csv("".join(lines), len(layout.names))
    if table is None:  # anything but plain rows of finite numbers: named errors, missing values
        return parse_csv(lines, first_lineno, layout, missing_ok)
    target = table[:, layout.target] if layout.target is not None else None
    return _features(table, layout), target


def _jsonl_chunk(
    lines: list[str], first_lineno: int, names: tuple[str, ...], missing_ok: bool
) -> Table:
    return parse_jsonl(lines, first_lineno, names, missing_ok)


def _numbered_chunks(
    lines: Iterator[str], lineno: int, chunk_rows: int
) -> Iterator[tuple[list[str], int]]:
    """Chunks of at most ``chunk_rows`` lines, each with the number of its first line."""
    while chunk := list(itertools.islice(lines, chunk_rows)):
        yield chunk, lineno
        lineno += len(chunk)
