"""Batch prediction: ``quantpipe predict --model q8 < rows.csv > predictions.csv``.

Reads rows as CSV (with or without a header line of the feature names) or as JSON lines
(each line a list of the feature values, or an object keyed by feature name), in chunks,
so inputs of any size stream through in bounded memory. Writes one prediction per line.
A bad row stops the command with its line number and the reason; with ``--output`` the
file is written atomically, so a failed run leaves no partial file (on stdout, the
predictions of the lines before the bad one have already been written).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TextIO

import numpy as np

from quantpipe import cli
from quantpipe.errors import InputError, PredictionError
from quantpipe.io import atomic_path
from quantpipe.registry import ModelRegistry

log = logging.getLogger("quantpipe.predict")

FORMATS = ("auto", "csv", "jsonl")


def _csv_line_error(line: str, lineno: int, names: Sequence[str]) -> InputError | None:
    """The problem with one CSV line, or None if it is a good row."""
    fields = line.strip().split(",")
    if fields == [""]:
        return InputError(f"line {lineno}: empty line")
    if len(fields) != len(names):
        return InputError(
            f"line {lineno}: {len(fields)} values, expected {len(names)} ({','.join(names)})"
        )
    for col, field in enumerate(fields):
        try:
            value = float(field)
        except ValueError:
            return InputError(f"line {lineno}: {names[col]} = {field.strip()!r} is not a number")
        if not np.isfinite(value):
            return InputError(f"line {lineno}: {names[col]} = {field.strip()} is not finite")
    return None


def parse_csv_chunk(lines: Sequence[str], first_lineno: int, names: Sequence[str]) -> np.ndarray:
    """Parse CSV lines of numbers.

    Parameters
    ----------
    lines : sequence of str
        One row each, no header.
    first_lineno : int
        Line number of ``lines[0]`` in the input (1-based), for messages.
    names : sequence of str
        The feature names, one per column.

    Returns
    -------
    ndarray of shape (len(lines), len(names)), float64

    Raises
    ------
    InputError
        Naming the first bad line: wrong number of values, not a number, not finite, empty.
    """
    try:
        X = np.loadtxt(lines, delimiter=",", dtype=np.float64, ndmin=2, comments=None)
    except ValueError:
        X = None
    if X is None or X.shape != (len(lines), len(names)) or not np.isfinite(X).all():
        # slow path, only on bad input: find the first bad line and say what is wrong
        for offset, line in enumerate(lines):
            error = _csv_line_error(line, first_lineno + offset, names)
            if error is not None:
                raise error
        raise InputError(f"lines {first_lineno}-{first_lineno + len(lines) - 1}: not CSV rows")
    return X


def parse_jsonl_chunk(lines: Sequence[str], first_lineno: int, names: Sequence[str]) -> np.ndarray:
    """Parse JSON lines, each a list of values or an object keyed by feature name.

    Returns and raises as :func:`parse_csv_chunk`.
    """
    rows = []
    for offset, line in enumerate(lines):
        lineno = first_lineno + offset
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"line {lineno}: not valid JSON ({exc.msg})") from None
        if isinstance(item, dict):
            if set(item) != set(names):
                raise InputError(f"line {lineno}: keys are {sorted(item)}, expected {list(names)}")
            item = [item[name] for name in names]
        if not isinstance(item, list) or len(item) != len(names):
            raise InputError(
                f"line {lineno}: expected a list of {len(names)} numbers or an object "
                f"keyed by {','.join(names)}"
            )
        for col, value in enumerate(item):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InputError(f"line {lineno}: {names[col]} = {value!r} is not a number")
            if not np.isfinite(value):
                raise InputError(f"line {lineno}: {names[col]} = {value} is not finite")
        rows.append(item)
    return np.array(rows, dtype=np.float64).reshape(len(rows), len(names))


def _sniff(first: str, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    return "jsonl" if first.lstrip().startswith(("[", "{")) else "csv"


def read_chunks(
    stream: Iterable[str], names: Sequence[str], fmt: str = "auto", chunk_rows: int = 65536
) -> Iterator[np.ndarray]:
    """Stream an input as arrays of at most ``chunk_rows`` rows.

    Parameters
    ----------
    stream : iterable of str
        Lines of the input.
    names : sequence of str
        Feature names, in the model's order.
    fmt : {"auto", "csv", "jsonl"}
        ``auto`` looks at the first line.
    chunk_rows : int
        Rows per chunk.

    Yields
    ------
    ndarray of shape (n, len(names)), float64

    Raises
    ------
    InputError
        On the first bad line, or an input with no rows.
    """
    lines = iter(stream)
    first = next(lines, None)
    if first is None:
        raise InputError("the input is empty: no rows to predict")
    fmt = _sniff(first, fmt)
    lineno = 1
    header = [field.strip() for field in first.strip().split(",")]
    if fmt == "csv" and header == list(names):
        lineno = 2  # a header line of the feature names
    else:
        lines = itertools.chain([first], lines)
    parse = parse_csv_chunk if fmt == "csv" else parse_jsonl_chunk
    rows = 0
    while chunk := list(itertools.islice(lines, chunk_rows)):
        yield parse(chunk, lineno, names)
        lineno += len(chunk)
        rows += len(chunk)
    if rows == 0:
        raise InputError("the input has a header but no rows to predict")


def format_predictions(y: np.ndarray) -> str:
    """One prediction per line, each the shortest text that reads back as the same float64."""
    return "".join(f"{value!r}\n" for value in y.tolist())


def _body(args: argparse.Namespace) -> None:
    if args.chunk_rows < 1:
        raise InputError(f"--chunk-rows {args.chunk_rows} is not allowed; use a positive integer")
    registry = ModelRegistry.from_directory(args.models_dir)
    model = registry.get(args.model)
    names = registry.feature_names
    start = time.perf_counter()
    rows = 0
    with ExitStack() as stack:
        if args.input == "-":
            source: TextIO = sys.stdin
        else:
            try:
                source = stack.enter_context(open(args.input, encoding="utf-8"))
            except OSError as exc:
                raise InputError(f"{args.input}: cannot read ({exc.strerror})") from None
        if args.output == "-":
            sink: TextIO = sys.stdout
        else:
            tmp = stack.enter_context(atomic_path(args.output))
            sink = stack.enter_context(open(tmp, "w", encoding="utf-8"))
        for X in read_chunks(source, names, args.format, args.chunk_rows):
            try:
                predictions = model.predict(X)
            except PredictionError as exc:  # name the input's row, counting from 1
                raise PredictionError(rows + exc.row + 1, exc.value, "input row") from None
            sink.write(format_predictions(predictions))
            rows += len(X)
            log.debug("%d rows", rows)
        sink.flush()
    seconds = time.perf_counter() - start
    log.info("%s: %d rows in %.2f s (%.0f rows/s)", args.model, rows, seconds, rows / seconds)


def main(argv: Sequence[str] | None = None, prog: str = "quantpipe predict") -> int:
    """Run the command; returns the exit status."""
    p = cli.parser(prog, __doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="variant: fp64, q8, q16, ...")
    p.add_argument("--models-dir", type=Path, default=Path("models"), help="models directory")
    p.add_argument("--input", default="-", help="input file, - for stdin")
    p.add_argument("--output", default="-", help="output file (written atomically), - for stdout")
    p.add_argument("--format", choices=FORMATS, default="auto", help="input format")
    p.add_argument("--chunk-rows", type=int, default=65536, help="rows read at a time")
    return cli.run(_body, p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
