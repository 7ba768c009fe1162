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
import os
import sys
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from quantpipe.errors import QuantpipeError

T = TypeVar("T")
DIED = "a process parsing the input died (out of memory?); try --jobs 1"
#: A parser of a chunk: its lines and the 1-based number of its first line.
Parse = Callable[[list[str], int], T]
#: Chunks in flight per worker: enough to keep each busy, few enough to bound memory.
AHEAD = 2
#: Workers by default at most: parsing is most of a command's time, so more gain little.
MAX_JOBS = 4


def can_fork() -> bool:
    """Whether worker processes start by fork here.

    Linux only: fork is unsafe on macOS, and spawn would import everything again (0.3 s) in
    each worker.
    """
    return sys.platform.startswith("linux")


def _parse_text(parse: Parse[T], text: str, first_lineno: int) -> T:
    return parse(list(io.StringIO(text)), first_lineno)  # split as a text file is: on "\n"


def default_jobs() -> int:
    """The workers an input is parsed by when the caller names no number."""
    return min(cpus(), MAX_JOBS)


def cpus() -> int:
    """The CPUs this process may run on (its affinity, which a container's limit sets)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def parsed_in_order(
    chunks: Iterator[tuple[list[str], int]], parse: Parse[T], jobs: int
) -> Iterator[T]:
    """``parse(lines, first_lineno)`` of every chunk, in order, on ``jobs`` processes.

    With ``jobs`` of 1, where processes cannot fork, or for an input of one chunk, in this
    process. ``parse`` must be picklable (a module-level function, or a partial of one).

    Each result is yielded as soon as it and those before it are done, so a slow input
    (a pipe) is answered as it comes.

    Raises
    ------
    Exception
        What ``parse`` raised for the first chunk that failed, or what reading ``chunks``
        raised, after the results and errors of the chunks read before.
    QuantpipeError
        If a worker process died.
    """
    first = next(chunks, None)
    if first is None:
        return
    try:
        second = next(chunks, None)
    except Exception:  # reading the second chunk failed: the first one's answer comes first
        yield parse(*first)
        raise
    if jobs <= 1 or second is None or not can_fork():
        yield parse(*first)
        for lines, lineno in chunks if second is None else _chain(second, chunks):
            yield parse(lines, lineno)
        return
    yield from _in_workers(_chain(first, _chain(second, chunks)), parse, jobs)


def _in_workers(source: Iterator[tuple[list[str], int]], parse: Parse[T], jobs: int) -> Iterator[T]:
    """:func:`parsed_in_order` on ``jobs`` forked processes."""
    pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork"))
    pending: deque[Future[T]] = deque()
    try:
        while True:
            try:
                chunk = next(source, None)
            except Exception:  # reading ahead failed (bad UTF-8, a read error): the chunks
                while pending:  # read before it come first, and so do their errors
                    yield _result(pending.popleft())
                raise
            if chunk is None:
                break
            try:
                pending.append(pool.submit(_parse_text, parse, "".join(chunk[0]), chunk[1]))
            except BrokenProcessPool:  # a worker died while this chunk was being read
                raise QuantpipeError(DIED) from None
            while pending and (len(pending) > AHEAD * jobs or pending[0].done()):
                yield _result(pending.popleft())
        while pending:
            yield _result(pending.popleft())
    finally:  # on an error or a consumer that stops: drop what has not started
        pool.shutdown(wait=True, cancel_futures=True)


def _result(future: Future[T]) -> T:
    """A chunk's result; a worker that died (killed, out of memory) is one line."""
    try:
        return future.result()
    except BrokenProcessPool:
        raise QuantpipeError(DIED) from None


def _chain(
    first: tuple[list[str], int], rest: Iterator[tuple[list[str], int]]
) -> Iterator[tuple[list[str], int]]:
    yield first
    yield from rest
