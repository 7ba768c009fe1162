"""Predictor throughput on 10,000,000 rows against numpy's matmul and the memory's speed.

A linear model's prediction reads 8 float64 features and writes one float64 a row: 72
bytes. This script measures the memory first, three ways:

* the **bandwidth limit** (the issue's yardstick): the larger of a streaming read
  (``X.sum()``) and a copy (read plus write), divided by 72 bytes a row;
* the **access pattern's floor**: one thread copying each row's first value out
  (``out[:] = X[:, 0]``), which moves the same cache lines as a prediction (every line of
  ``X`` read, 8 bytes a row written) and computes nothing. No single-threaded predictor can
  be much faster than this on the machine.

Then rows/s of: numpy's ``X @ w + b`` (BLAS gemv: fast, but its result for a row depends on
the batch and the CPU), on one thread and on OpenBLAS's default of every core; the compiled
loop alone (:func:`quantpipe.numerics.row_dot`: a fixed order of IEEE operations, the same
bits whatever the batch and the machine) into an output array allocated once, by each
kernel path this CPU runs (:func:`quantpipe.compiled.paths`: the baseline, AVX2, AVX-512,
whose outputs of 2**18 rows or more go by the AVX2 loop); every linear variant's ``predict``
on one thread, once allocating its output (the first writes to fresh memory fault its pages
in) and once into the same ``out`` each call, and fp64's on every core; the integer-only
model, both ways;
and, side by side in the same run, the numpy implementations they replaced (the float path
as per-level numpy passes, the integer path as numpy array expressions), with a check that
each gives the same bits as its replacement, and that every kernel path gives the same
bits. Medians of 5 runs, one process, printed as markdown.

Run from the repository root after ``dvc repro``::

    python benchmarks/throughput_bench.py [--rows 10000000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
from threadpoolctl import threadpool_limits

from quantpipe import compiled
from quantpipe.compiled import integer_predict
from quantpipe.numerics import row_dot, tree_sum_order
from quantpipe.quant.integer import IntegerLinear
from quantpipe.registry import ModelRegistry

LOOP = "quantpipe q8i's loop into a preallocated out, 1 thread"
REUSED = "predict(X, out=out)"

BYTES_PER_ROW = 8 * 8 + 8
LINEAR_VARIANTS = ("fp64", "q8", "q16", "float32", "float16", "bfloat16")


def median_seconds(f: Callable[[], object], runs: int = 5) -> float:
    f()  # warm up: page in, allocate
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def numpy_row_dot(X: np.ndarray, w: np.ndarray, offset: float, block: int = 8192) -> np.ndarray:
    """The float path before it was compiled (b1336fb): the same order of IEEE operations,
    each tree level one numpy pass over a block of rows laid out by column."""
    n, k = X.shape
    out = np.empty(n)
    levels = tree_sum_order(k)
    column = w.reshape(k, 1)
    products = np.empty((k, min(n, block)))
    for start in range(0, n, block):
        stop = min(start + block, n)
        p = products[:, : stop - start]
        np.multiply(X[start:stop].T, column, out=p)
        width = k
        for level in levels[:-1]:
            half = len(level)
            np.add(p[:half], p[width - half : width], out=p[:half])
            width -= half
        np.add(p[0], p[1], out=out[start:stop])
        if offset:
            out[start:stop] += offset
    return out


def numpy_integer(model: IntegerLinear, X: np.ndarray) -> np.ndarray:
    """The integer path before it was compiled (b1336fb), in numpy array expressions."""
    levels = 2**model.bits - 1
    codes = np.rint((X - model.input_lo) / model.input_scale)
    xq = np.clip(codes, 0, levels).astype(np.int64)
    acc = xq @ model.weight_codes.astype(np.int64) + model.bias_code
    return model.output_scale * acc.astype(np.float64)


def memory(X: np.ndarray) -> tuple[float, float, float]:
    """Read and copy bandwidth (bytes/s), and the access pattern's floor (rows/s)."""
    copy_target, column = np.empty_like(X), np.empty(X.shape[0])
    read_bw = X.nbytes / median_seconds(X.sum)
    copy_bw = 2 * X.nbytes / median_seconds(lambda: np.copyto(copy_target, X))
    floor = X.shape[0] / median_seconds(lambda: np.copyto(column, X[:, 0]))
    return read_bw, copy_bw, floor


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=10_000_000, help="rows of 8 float64 features")
    p.add_argument("--models-dir", default="models", help="the models `dvc repro` built")
    args = p.parse_args()
    n, cores = args.rows, os.cpu_count() or 1
    registry = ModelRegistry.from_directory(args.models_dir)
    q8i_model = registry.get("q8i")
    q8i = q8i_model.model
    assert isinstance(q8i, IntegerLinear)
    X = np.random.default_rng(0).normal(size=(n, 8))
    X += q8i.input_lo + 0.5 * np.ptp(X)  # inside q8i's input range

    read_bw, copy_bw, floor = memory(X)
    limit = max(read_bw, copy_bw) / BYTES_PER_ROW
    print(
        f"{n:,} rows x 8 float64 ({X.nbytes / 1e9:.2f} GB), {cores} cores; kernel paths "
        f"{', '.join(compiled.paths())}, predict by {compiled.paths()[-1]}"
        + (" (the float loop by avx2 from 2**18 rows)" if compiled.paths()[-1] == "avx512" else "")
    )
    print(
        f"memory: read {read_bw / 1e9:.1f} GB/s, copy {copy_bw / 1e9:.1f} GB/s (read + write); "
        f"bandwidth limit at {max(read_bw, copy_bw) / 1e9:.1f} GB/s and {BYTES_PER_ROW} B/row: "
        f"{limit / 1e6:.0f} M rows/s; the access pattern's floor on one thread "
        f"(out[:] = X[:, 0]): {floor / 1e6:.0f} M rows/s\n"
    )

    fp64 = registry.get("fp64")
    w, b = fp64.weights, fp64.intercept  # type: ignore[union-attr]
    out = np.empty(n)

    def gemv_one_thread() -> object:
        with threadpool_limits(1):  # OpenBLAS runs gemv on every core by default
            return X @ w + b

    paths: dict[str, Callable[[], object]] = {
        "numpy X @ w + b (OpenBLAS gemv), 1 thread": gemv_one_thread,
        f"numpy X @ w + b (OpenBLAS gemv), its default {cores} threads": lambda: X @ w + b,
    }
    for path in compiled.paths():  # the compiled loop by each instruction-set path
        paths[f"quantpipe row_dot into a preallocated out, 1 thread, {path}"] = on_path(
            path, lambda: row_dot(X, w, out, b)
        )
    for name in LINEAR_VARIANTS:
        model = registry.get(name)
        paths[f"quantpipe {name}, 1 thread"] = lambda model=model: model.predict(X)
    for name in LINEAR_VARIANTS:
        model = registry.get(name)
        paths[f"quantpipe {name}, 1 thread, {REUSED}"] = lambda model=model: model.predict(
            X, out=out
        )
    paths[f"quantpipe fp64, {cores} threads"] = lambda: fp64.predict(X, threads=cores)
    paths["quantpipe q8i (integer-only), 1 thread"] = lambda: q8i_model.predict(X)
    paths[f"quantpipe q8i (integer-only), 1 thread, {REUSED}"] = lambda: q8i_model.predict(
        X, out=out
    )
    # the same compiled loop without predict's new output array (its pages, faulted in anew
    # on every call, are the difference between the two rows)
    lo, scale = np.asarray(q8i.input_lo, np.float64), np.asarray(q8i.input_scale, np.float64)
    codes = np.asarray(q8i.weight_codes, np.int64)
    for path in compiled.paths():
        paths[f"{LOOP}, {path}"] = on_path(
            path,
            lambda: integer_predict(
                X, lo, scale, codes, q8i.bits, q8i.bias_code, q8i.output_scale, out
            ),
        )
    paths["before: fp64 as numpy passes (b1336fb), 1 thread"] = lambda: numpy_row_dot(X, w, b)
    paths["before: q8i as numpy expressions (b1336fb), 1 thread"] = lambda: numpy_integer(q8i, X)

    print("| path | M rows/s | GB/s | share of the bandwidth limit | share of the floor |")
    print("| --- | ---: | ---: | ---: | ---: |")
    rates: dict[str, float] = {}
    for name, f in paths.items():
        rows_per_s = rates[name] = n / median_seconds(f)
        print(
            f"| {name} | {rows_per_s / 1e6:.0f} | {rows_per_s * BYTES_PER_ROW / 1e9:.1f} | "
            f"{rows_per_s / limit:.0%} | {rows_per_s / floor:.0%} |"
        )
    before = rates["before: q8i as numpy expressions (b1336fb), 1 thread"]
    print(
        f"\nq8i against the numpy expressions: "
        f"{rates['quantpipe q8i (integer-only), 1 thread'] / before:.1f}x by predict, "
        f"{rates[f'{LOOP}, {compiled.paths()[-1]}'] / before:.1f}x "
        f"into a preallocated out"
    )
    one = fp64.predict(X)
    print(
        f"float predictions on {cores} threads identical to one thread's: "
        f"{np.array_equal(one, fp64.predict(X, threads=cores))}"
    )
    print(
        f"float predictions identical to the numpy passes': "
        f"{np.array_equal(one.view(np.int64), numpy_row_dot(X, w, b).view(np.int64))}"
    )
    print(
        f"integer predictions identical to the numpy expressions': "
        f"{np.array_equal(q8i.predict(X), numpy_integer(q8i, X))}"
    )
    for path in compiled.paths():
        with compiled.kernel_path(path):
            same = np.array_equal(fp64.predict(X).view(np.int64), one.view(np.int64))
            same = same and np.array_equal(q8i.predict(X), numpy_integer(q8i, X))
        print(f"float and integer predictions by the {path} path identical: {same}")


def on_path(path: str, f: Callable[[], object]) -> Callable[[], object]:
    """``f`` run by the kernel path named."""

    def run() -> object:
        with compiled.kernel_path(path):
            return f()

    return run


if __name__ == "__main__":
    main()
