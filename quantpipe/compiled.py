"""The compiled kernels (``quantpipe/_kernels.c``): the one door to them, typed and checked.

``setup.py`` builds the C file, when quantpipe is installed, as the top-level module
``_quantpipe_kernels``, and records the source's sha256 in it. A source tree that runs its
own ``quantpipe`` (the workspace, a ``dvc exp run --queue`` copy of it, a fresh clone) uses
the environment's build, so the build must be of that tree's C source: if the C file changed
since (an edit, a ``git pull``), ``dvc repro`` would rerun the stages, which list the
source, with the old code, and record outputs under a source they were not computed by.
:func:`kernels` refuses that, and a missing build, with a :class:`SetupError` saying how to
rebuild. An installed wheel carries the C source it was built from, so there the check
passes by construction (and without the source it is skipped). The module also records the
flags it was built with (``FLAGS``); a build without ``-ffp-contract=off`` is refused too.

On x86-64 the 8-feature loops also have AVX2 and AVX-512F versions, chosen when the module
loads by what the CPU runs (:func:`paths`); every path gives the same bits, and
:func:`kernel_path` runs another for tests and benchmarks. The functions below are the
kernels' signatures; the arithmetic is documented where it is
used (:func:`quantpipe.numerics.row_dot`, :class:`quantpipe.quant.integer.IntegerLinear`,
:func:`quantpipe.plain.plain_csv`).
Arrays must be C-contiguous, of the dtypes named; the kernels check, and raise ValueError.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np

from quantpipe.errors import SetupError

#: The C source of the running ``quantpipe``.
SOURCE = Path(__file__).with_name("_kernels.c")
MODULE = "_quantpipe_kernels"  # setup.py builds it
REBUILD = "rebuild it with `pip install --no-deps --no-build-isolation -e .` in the repository"
#: The flag that keeps a compiler from fusing a multiply and an add (setup.py; MSVC's
#: /fp:precise does not fuse).
NO_CONTRACTION = "/fp:precise" if sys.platform == "win32" else "-ffp-contract=off"


@functools.cache
def kernels() -> ModuleType:
    """The compiled module, once it is known to be built from :data:`SOURCE`.

    Raises
    ------
    SetupError
        If it is not built, or was built from another version of the C source.
    """
    try:
        import _quantpipe_kernels as module  # type: ignore[import-not-found]
    except ImportError:
        raise SetupError(
            f"quantpipe's compiled kernels ({MODULE}) are not built; {REBUILD}"
        ) from None
    if SOURCE.is_file():
        digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()
        if digest != module.SOURCE_SHA256:
            raise SetupError(f"{SOURCE} changed since {MODULE} was built from it; {REBUILD}")
    if NO_CONTRACTION not in getattr(module, "FLAGS", "").split():  # (an older build has none)
        raise SetupError(f"{MODULE} was built without {NO_CONTRACTION} (setup.py); {REBUILD}")
    return module


#: Every kernel path the C source has, slowest first: the baseline (every CPU of the
#: platform), and on x86-64 the 8-feature loops in AVX2 and in AVX-512F registers.
PATHS = ("baseline", "avx2", "avx512")
_forced: str | None = None  # the path kernel_path() set, if any


def paths() -> tuple[str, ...]:
    """The kernel paths this CPU runs, slowest first (of :data:`PATHS`).

    Every path gives every row the same bits; the fastest runs unless :func:`kernel_path`
    names another.
    """
    return tuple(kernels().PATHS)


@contextlib.contextmanager
def kernel_path(name: str) -> Iterator[None]:
    """Run every kernel call inside the block, in every thread, by the path named.

    For tests and benchmarks, which compare the paths: they give the same bits, so nothing
    else needs one. The choice is one for the whole process, not per thread: blocks in
    two threads at once would change each other's.

    Raises
    ------
    ValueError
        If this CPU does not run that path.
    """
    global _forced
    if name not in paths():
        raise ValueError(f"this CPU does not run the {name!r} kernel path; it runs {paths()}")
    before, _forced = _forced, name
    try:
        yield
    finally:
        _forced = before


def row_dot(X: np.ndarray, w: np.ndarray, out: np.ndarray, offset: float) -> int:
    """``out[i]`` = row ``i``'s fixed-order dot product, plus ``offset`` unless it is 0.

    ``X`` float64 (n, k), ``w`` float64 (k,), ``out`` float64 (n,), written. Returns the
    first row whose result is not finite, or -1.
    """
    return int(kernels().row_dot(X, w, out, offset, _forced))


def integer_predict(
    X: np.ndarray,
    input_lo: np.ndarray,
    input_scale: np.ndarray,
    weight_codes: np.ndarray,
    bits: int,
    bias_code: int,
    output_scale: float,
    out: np.ndarray,
) -> None:
    """An integer-only model's predictions of ``X`` (float64 (n, k)) into ``out`` (n,).

    ``weight_codes`` int64 (k,), ``input_lo`` and ``input_scale`` float64 (k,).
    """
    kernels().integer_predict(
        X, input_lo, input_scale, weight_codes, bits, bias_code, output_scale, out, _forced
    )


def input_codes(
    X: np.ndarray,
    input_lo: np.ndarray,
    input_scale: np.ndarray,
    weight_codes: np.ndarray,
    bits: int,
    codes: np.ndarray,
    saturated: np.ndarray,
) -> None:
    """An integer-only model's input codes of ``X`` (float64 (n, k)).

    Into ``codes`` (int64 (n, k)), and into ``saturated`` (bool (n,)) whether each row was
    clipped to the calibrated range.
    """
    kernels().input_codes(X, input_lo, input_scale, weight_codes, bits, codes, saturated)


def csv_floats(text: str, columns: int, out: np.ndarray) -> int:
    """The rows of a plain CSV of numbers (``text``, no header) into ``out``.

    ``out`` float64 (capacity, ``columns``), written. Returns the number of rows, or -1 where
    the text is anything but blank lines and rows of ``columns`` finite decimal numbers
    (then ``out`` holds nothing of use and the caller reads the text itself).
    """
    return int(kernels().csv_floats(text, columns, out))
