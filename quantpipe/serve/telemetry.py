"""What the server tells about itself: Prometheus metrics and the drift window.

The metrics are summed over worker processes when there are several; the window holds the
recent inputs, scored against the training data.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from quantpipe.drift import Reference, feature_drift

#: prometheus_client's multiprocess mode: every worker writes its samples here.
ENV_PROMETHEUS_DIR = "PROMETHEUS_MULTIPROC_DIR"


class DriftWindow:
    """The most recent inputs, scored against the training reference.

    A fixed-size ring buffer (memory stays bounded), shared by the request handlers under a
    lock. With ``directory`` (the workers' shared folder), the buffer and its row count are
    memory-mapped files there, one pair per worker process, and :meth:`scores` reads every
    live worker's window: the gauges then describe the server's recent inputs, not one
    worker's.
    """

    def __init__(self, reference: Reference, size: int, directory: Path | None = None):
        self.reference = reference
        self.directory = directory
        shape = (size, len(reference.feature_names))
        self.lock = threading.Lock()
        self._seen = 0
        if directory is None:
            self.buffer: np.ndarray = np.empty(shape)
            self.count: np.ndarray = np.zeros(1, dtype=np.int64)
            return
        stem = directory / f"drift-{os.getpid()}"
        self.buffer = np.lib.format.open_memmap(f"{stem}.rows.npy", "w+", np.float64, shape)
        self.count = np.lib.format.open_memmap(f"{stem}.seen.npy", "w+", np.int64, (1,))

    @property
    def seen(self) -> int:
        """Rows ever added to this process's window; it holds the last min(seen, size).

        Kept as a Python int, and written to ``count`` (a file, with ``directory``) for the
        other workers to read.
        """
        return self._seen

    def add(self, X: np.ndarray) -> None:
        """Append rows, shape (n, n_features), dropping the oldest beyond the window."""
        size, n = len(self.buffer), len(X)
        with self.lock:
            seen = self._seen
            rows = X if n <= size else X[-size:]
            # global row index g lives at slot g % size, so the oldest row is overwritten first
            start = (seen + n - len(rows)) % size
            first = min(len(rows), size - start)
            self.buffer[start : start + first] = rows if first == len(rows) else rows[:first]
            if first < len(rows):
                self.buffer[: len(rows) - first] = rows[first:]
            self._seen = self.count[0] = seen + n  # a Python int, and the one others read

    def _windows(self) -> list[np.ndarray]:
        with self.lock:
            windows = [self.buffer[: min(self.seen, self.buffer.shape[0])].copy()]
        if self.directory is None:
            return windows
        for seen_file in sorted(self.directory.glob("drift-*.seen.npy")):
            pid = int(seen_file.name.split("-")[1].split(".")[0])
            if pid == os.getpid() or not _alive(pid):
                continue
            try:  # read without the other worker's lock: a row may be torn, for a gauge
                seen = int(np.load(seen_file, mmap_mode="r")[0])
                rows = np.load(seen_file.with_name(f"drift-{pid}.rows.npy"), mmap_mode="r")
                windows.append(np.array(rows[: min(seen, rows.shape[0])]))
            except (OSError, ValueError):  # a worker still creating its files, or gone
                continue
        return windows

    def scores(self) -> tuple[int, dict[str, dict[str, float]]]:
        """Rows in the window (every live worker's) and each feature's PSI and KS."""
        window = np.concatenate(self._windows())
        if len(window) == 0:
            return 0, {}
        return len(window), feature_drift(self.reference, window)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists (a worker that died leaves its window file behind)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Metrics:
    """Prometheus metrics of one app, in a registry of their own."""

    def __init__(self, model_names: Sequence[str], drift: DriftWindow | None = None):
        self.registry = CollectorRegistry()
        self.models = set(model_names)
        # the label children of the metrics updated per request, looked up once: a lookup
        # (labels()) cost about 1 µs, a third of a 1-row request's metrics
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._answered: dict[str, tuple[Any, Any, Any]] = {}
        self.requests = Counter(
            "quantpipe_requests",
            "Model requests by model, endpoint and HTTP status.",
            ["model", "endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "quantpipe_infer_latency_seconds",
            "Time to answer an infer request, from its body being read to its response.",
            ["model"],
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
            registry=self.registry,
        )
        self.rows = Counter(
            "quantpipe_inferred_rows",
            "Rows predicted, by model.",
            ["model"],
            registry=self.registry,
        )
        self.drift = drift
        if drift is not None:
            self.window_rows = Gauge(
                "quantpipe_drift_window_rows",
                "Recent input rows in the drift window.",
                registry=self.registry,
                multiprocess_mode="livemostrecent",
            )
            self.psi = Gauge(
                "quantpipe_drift_psi",
                "Population stability index of the recent inputs against the training data.",
                ["feature"],
                registry=self.registry,
                multiprocess_mode="livemostrecent",
            )
            self.ks = Gauge(
                "quantpipe_drift_ks",
                "Kolmogorov-Smirnov statistic of the recent inputs against the training data.",
                ["feature"],
                registry=self.registry,
                multiprocess_mode="livemostrecent",
            )

    def exposition(self) -> bytes:
        """The metrics in Prometheus text format.

        Summed over worker processes if there are several; the drift gauges are those the
        answering worker has just computed over every live worker's window.
        """
        if self.drift is not None:
            rows, scores = self.drift.scores()
            self.window_rows.set(rows)
            for feature, stats in scores.items():
                self.psi.labels(feature).set(stats["psi"])
                self.ks.labels(feature).set(stats["ks"])
        if os.environ.get(ENV_PROMETHEUS_DIR):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)

    def count(self, model: str, endpoint: str, status: int) -> None:
        """Count one request (under the label ``_unknown`` for an unknown model name)."""
        key = (model, endpoint, status)
        counter = self._counters.get(key)
        if counter is None:
            # unknown names share one label value, so requests cannot grow the label set
            label = model if model in self.models else "_unknown"
            counter = self.requests.labels(label, endpoint, str(status))
            if label != "_unknown":  # only served names are remembered: the dict is bounded
                self._counters[key] = counter
        counter.inc()

    def answered(self, model: str, seconds: float, rows: int) -> None:
        """Record an answered infer request of a served ``model``: a 200, its latency and rows."""
        children = self._answered.get(model)
        if children is None:
            children = self._answered[model] = (
                self.requests.labels(model, "infer", "200"),
                self.latency.labels(model),
                self.rows.labels(model),
            )
        ok, latency, inferred = children
        latency.observe(seconds)
        inferred.inc(rows)
        ok.inc()  # last: a reader that sees the 200 counted sees the rest too
