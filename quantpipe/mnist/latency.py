"""Latency per image of the digits variants, on the path the server takes (numpy).

Timings depend on the machine, so they are kept out of what ``dvc repro`` must rebuild
byte for byte (``metrics/mnist/latency.json``; see docs/mnist.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from quantpipe.mnist.evaluation import DigitsNet, predict


def median_seconds(call: Callable[[], object], repeats: int) -> float:
    """The median wall time of ``repeats`` calls, after one warm-up call."""
    call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def latency(net: DigitsNet, images: np.ndarray, repeats: int = 50) -> dict[str, float]:
    """Milliseconds per image at batch 1 and batch 256 (median of ``repeats`` batches).

    Parameters
    ----------
    net : FloatNet or QuantNet
    images : ndarray of shape (n >= 256, 28, 28), uint8
    """
    one, batch = images[:1], images[:256]
    return {
        "batch1_ms": round(1e3 * median_seconds(lambda: predict(net, one), repeats), 4),
        "batch256_ms": round(
            1e3 * median_seconds(lambda: predict(net, batch), max(repeats // 10, 3)) / len(batch), 4
        ),
    }
