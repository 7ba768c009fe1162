"""Chunks of input lines parsed in worker processes, the results in input order.

numpy's ``loadtxt`` and orjson hold the GIL while they parse, so threads gain nothing (two
threads parsed a CSV no faster than one, measured); processes do. Each chunk goes to a worker
as one string (joining and pickling a 65,536-line chunk takes 3 ms, a list of its lines 6 ms)
and comes back as arrays. A worker's error, such as a bad line's :class:`InputError`, is
raised when its chunk's turn comes, so the first bad line of the input is the one reported,
whatever finished first.
"""

from __future__ import annotations

import io
import multiprocessing
import sys
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import TypeVar

T = TypeVar("T")
#: A parser of a chunk: its lines and the 1-based number of its first line.
Parse = Callable[[list[str], int], T]
#: Chunks in flight per worker: enough to keep each busy, few enough to bound memory.
AHEAD = 2


def can_fork() -> bool:
    """Whether worker processes start by fork here.

    Linux only: fork is unsafe on macOS, and spawn would import everything again (0.3 s) in
    each worker.
    """
    return sys.platform.startswith("linux")


def _parse_text(parse: Parse[T], text: str, first_lineno: int) -> T:
    return parse(list(io.StringIO(text)), first_lineno)  # split as a text file is: on "\n"


def parsed_in_order(
    chunks: Iterator[tuple[list[str], int]], parse: Parse[T], jobs: int
) -> Iterator[T]:
    """``parse(lines, first_lineno)`` of every chunk, in order, on ``jobs`` processes.

    With ``jobs`` of 1, where processes cannot fork, or for an input of one chunk, in this
    process. ``parse`` must be picklable (a module-level function, or a partial of one).

    Raises
    ------
    Exception
        What ``parse`` raised for the first chunk that failed.
    """
    first = next(chunks, None)
    if first is None:
        return
    second = next(chunks, None)
    if jobs <= 1 or second is None or not can_fork():
        yield parse(*first)
        for lines, lineno in chunks if second is None else _chain(second, chunks):
            yield parse(lines, lineno)
        return
    pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork"))
    pending: deque[Future[T]] = deque()
    try:
        for lines, lineno in _chain(first, _chain(second, chunks)):
            pending.append(pool.submit(_parse_text, parse, "".join(lines), lineno))
            if len(pending) > AHEAD * jobs:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:  # on an error or a consumer that stops: drop what has not started
        pool.shutdown(wait=True, cancel_futures=True)


def _chain(
    first: tuple[list[str], int], rest: Iterator[tuple[list[str], int]]
) -> Iterator[tuple[list[str], int]]:
    yield first
    yield from rest
