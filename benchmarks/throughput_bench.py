"""Predictor throughput on 10,000,000 rows against numpy's float matmul and memory bandwidth.

A linear model's prediction reads 8 float64 features and writes one float64 a row: 72
bytes. At this machine's memory bandwidth B, no implementation can pass B / 72 rows/s.
This script measures B (a streaming read, and a copy), then rows/s of: numpy's ``X @ w``
(BLAS gemv: fast, but its result for a row depends on the batch and the CPU), numpy's
``einsum`` (the same bits for a row whatever its batch, but not whatever the CPU: the float
path before it became machine-independent), quantpipe's float path (a fixed tree of IEEE
operations, :func:`quantpipe.numerics.row_dot`: the same bits whatever the batch and the
machine) on one thread and on every core, and the integer-only path. Medians of 5 runs, one
process, figures printed as markdown.

Run from the repository root after ``dvc repro``::

    python benchmarks/throughput_bench.py [--rows 10000000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from quantpipe.quant.linear import PARALLEL_CHUNK_ROWS
from quantpipe.registry import ModelRegistry

BYTES_PER_ROW = 8 * 8 + 8


def median_seconds(f: Callable[[], object], runs: int = 5) -> float:
    f()  # warm up: page in, allocate
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def einsum_predict(X: np.ndarray, w: np.ndarray, b: float, threads: int) -> np.ndarray:
    """The float path as it was before it became machine-independent, for comparison:
    ``einsum`` (batch-invariant, but its accumulation depends on the CPU), in the same
    chunks over the same threads."""
    out = np.empty(X.shape[0])

    def rows(start: int) -> None:
        stop = min(start + PARALLEL_CHUNK_ROWS, X.shape[0])
        np.einsum("ij,j->i", X[start:stop], w, out=out[start:stop])
        out[start:stop] += b

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(rows, range(0, X.shape[0], PARALLEL_CHUNK_ROWS)))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--models-dir", default="models")
    args = p.parse_args()
    n, cores = args.rows, os.cpu_count() or 1
    registry = ModelRegistry.from_directory(args.models_dir)
    X = np.random.default_rng(0).normal(size=(n, 8))
    X += registry.get("q8i").model.input_lo + 0.5 * np.ptp(X)  # inside q8i's input range
    q8 = registry.get("q8")

    copy_target = np.empty_like(X)
    read_bw = X.nbytes / median_seconds(X.sum)
    copy_bw = 2 * X.nbytes / median_seconds(lambda: np.copyto(copy_target, X))
    bandwidth = max(read_bw, copy_bw)
    limit = bandwidth / BYTES_PER_ROW
    print(f"{n:,} rows x 8 float64 ({X.nbytes / 1e9:.2f} GB), {cores} cores")
    print(
        f"memory bandwidth: read {read_bw / 1e9:.1f} GB/s, copy {copy_bw / 1e9:.1f} GB/s "
        f"(read + write); limit at {bandwidth / 1e9:.1f} GB/s and {BYTES_PER_ROW} B/row: "
        f"{limit / 1e6:.0f} M rows/s\n"
    )

    paths = {
        "numpy X @ w + b (BLAS gemv, 1 thread)": lambda: X @ q8.weights + q8.intercept,
        "einsum, 1 thread (the float path before: not machine-independent)": lambda: einsum_predict(
            X, q8.weights, q8.intercept, 1
        ),
        f"einsum, {cores} threads (the same)": lambda: einsum_predict(
            X, q8.weights, q8.intercept, cores
        ),
        "quantpipe float path (row_dot), 1 thread": lambda: q8.predict(X),
        f"quantpipe float path (row_dot), {cores} threads": lambda: q8.predict(X, threads=cores),
        "quantpipe integer-only path (q8i), 1 thread": lambda: registry.get("q8i").predict(X),
    }
    print("| path | M rows/s | GB/s | share of the bandwidth limit |")
    print("| --- | ---: | ---: | ---: |")
    for name, f in paths.items():
        rows_per_s = n / median_seconds(f)
        print(
            f"| {name} | {rows_per_s / 1e6:.0f} | {rows_per_s * BYTES_PER_ROW / 1e9:.1f} | "
            f"{rows_per_s / limit:.0%} |"
        )
    same = np.array_equal(q8.predict(X), q8.predict(X, threads=cores))
    print(f"\nthreaded float predictions identical to one thread's: {same}")


if __name__ == "__main__":
    main()
