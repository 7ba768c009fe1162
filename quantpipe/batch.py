"""Batch prediction: ``quantpipe predict --model q8 < rows.csv > predictions.csv``.

Reads rows as CSV (with or without a header line naming the columns, in any order) or as
JSON lines (each line a list of the feature values, or an object keyed by feature name), in
chunks, so inputs of any size stream through in bounded memory; the rules are those of
:mod:`quantpipe.tables`, which ``monitor`` reads by too. Writes one prediction per row.
A CSV of plain numbers is read by compiled code; large JSON-lines inputs are parsed by worker
processes (``--jobs``), with the same results. A bad row
stops the command with its line number and the reason; with ``--output`` the
file is written atomically, so a failed run leaves no partial file (on stdout, the
predictions of the lines before the bad one have already been written).
"""

from __future__ import annotations

import argparse
import io
import logging
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TextIO

import numpy as np

try:
    import orjson
except ModuleNotFoundError:  # quantpipe without the serve extra: repr, slower, the same bytes
    orjson = None  # type: ignore[assignment]

from quantpipe import cli
from quantpipe.errors import InputError, PredictionError
from quantpipe.io import atomic_path
from quantpipe.pool import MAX_JOBS
from quantpipe.registry import ModelRegistry
from quantpipe.tables import FORMATS, read_chunks

log = logging.getLogger("quantpipe.predict")

#: Where Python's ``repr`` of a float switches to exponent notation (and orjson's does not
#: switch at the same place): below 1e-4 and from 1e16 on, in magnitude.
_REPR_DECIMAL = (1e-4, 1e16)


def format_predictions(y: np.ndarray) -> str:
    """One prediction per line, each ``repr`` of its float64 (the shortest that reads back).

    orjson writes the same shortest digits ten times faster (both are shortest round-trip
    algorithms, and shortest digits are unique), but its exponent notation differs from
    ``repr``'s for magnitudes below 1e-4 or from 1e16 on: a chunk with one of those (for house
    values, one near zero) is written by ``repr``, so the bytes are ``repr``'s either way.
    """
    values = y.tolist()
    magnitude = np.abs(y)
    plain = ((magnitude >= _REPR_DECIMAL[0]) | (y == 0)) & (magnitude < _REPR_DECIMAL[1])
    if orjson is None or not plain.all() or not len(values):
        return "".join(f"{value!r}\n" for value in values)
    return orjson.dumps(values)[1:-1].replace(b",", b"\n").decode("ascii") + "\n"


def _utf8_stdin() -> TextIO:
    """Standard input as UTF-8 text whatever the locale says (a file is read the same way)."""
    if hasattr(sys.stdin, "buffer"):
        return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8")
    return sys.stdin  # already text (a test's StringIO)


def _body(args: argparse.Namespace) -> None:
    if args.chunk_rows < 1:
        raise InputError(f"--chunk-rows {args.chunk_rows} is not allowed; use a positive integer")
    if args.jobs is not None and args.jobs < 1:
        raise InputError(f"--jobs {args.jobs} is not allowed; use a positive integer")
    registry = ModelRegistry.from_directory(args.models_dir)
    model = registry.get(args.model)
    names = registry.feature_names
    start = time.perf_counter()
    rows = 0
    with ExitStack() as stack:
        if args.input == "-":
            source: TextIO = _utf8_stdin()
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
        for X, _ in read_chunks(source, names, args.format, args.chunk_rows, jobs=args.jobs):
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
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        help=f"processes that parse the input (default: 1 for a CSV, which the compiled reader "
        f"reads faster here than it can be sent to another process; for JSON lines the CPUs, "
        f"at most {MAX_JOBS}); 1 parses in this process; the predictions and the errors are "
        "the same whatever the number",
    )
    return cli.run(_body, p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
