"""How `quantpipe serve` holds up under hostile or heavy clients, measured.

Starts the server on the pipeline's models (``--workers``, default 1) and prints, as
markdown:

1. health-check latency (median and max of up to 20 checks) while another client sends a
   64 MiB request header, and while another sends five 7.5 MiB JSON infer bodies;
2. the answer to the header (its status, how long until it came);
3. ``--connections`` clients (default 64) each sending 1,000-row JSON infer requests for
   ``--seconds``: requests, errors, p50, p99 and max latency, and p99 / p50.

Run from the repository root after the quick start::

    python benchmarks/hostile_bench.py [--workers 1] [--connections 64] [--seconds 5]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import socket
import statistics
import threading
import time

import numpy as np
from serve_bench import start_quantpipe, stop

MIB = 1024 * 1024


def _get(port: int, path: str) -> tuple[int, float]:
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path)
    status = conn.getresponse().status
    conn.close()
    return status, time.perf_counter() - start


def _health_while(port: int, busy: threading.Thread) -> list[float]:
    busy.start()
    time.sleep(0.05)
    seconds = []
    while busy.is_alive() and len(seconds) < 20:
        seconds.append(_get(port, "/v2/health/live")[1])
        time.sleep(0.02)
    busy.join()
    return seconds


def _big_header(port: int, result: dict) -> None:
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nx-big: " + b"a" * (64 * MIB))
        reply = b""
        with contextlib.suppress(OSError):
            reply = sock.recv(4096)
    result["status"] = reply.split(b" ", 2)[1].decode() if reply else "closed"
    result["seconds"] = time.perf_counter() - start


def _infer_body(rows: int) -> bytes:
    X = np.random.default_rng(0).normal(size=(rows, 8)) * 1000
    tensor = {"name": "input-0", "shape": [rows, 8], "datatype": "FP64", "data": X.ravel().tolist()}
    return json.dumps({"inputs": [tensor]}).encode()


def _post(port: int, body: bytes, times: int = 5) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for _ in range(times):
        conn.request("POST", "/v2/models/fp64/infer", body=body)
        conn.getresponse().read()
    conn.close()


def _load(port: int, body: bytes, seconds: float, out: list, errors: list) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        conn.request("POST", "/v2/models/fp64/infer", body=body)
        response = conn.getresponse()
        response.read()
        (out if response.status == 200 else errors).append(time.perf_counter() - start)
    conn.close()


def _row(what: str, seconds: list[float]) -> str:
    if not seconds:
        return f"| {what} | 0 | - | - |"
    median, most = statistics.median(seconds) * 1e3, max(seconds) * 1e3
    return f"| {what} | {len(seconds)} | {median:.1f} ms | {most:.1f} ms |"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--seconds", type=float, default=5)
    args = p.parse_args()
    proc, port, _ = start_quantpipe(args.workers)
    try:
        header: dict = {}
        during_header = _health_while(
            port, threading.Thread(target=_big_header, args=(port, header))
        )
        big = _infer_body(int(7.5 * MIB / 150))  # under the default 8 MiB JSON limit
        during_body = _health_while(port, threading.Thread(target=_post, args=(port, big)))
        print(f"{args.workers} worker(s)\n")
        print("| health checks while | checks | median | max |\n| --- | ---: | ---: | ---: |")
        print(_row("another client sends a 64 MiB header", during_header))
        print(_row(f"another sends five {len(big) / MIB:.1f} MiB JSON bodies", during_body))
        print(f"\nthe 64 MiB header: {header['status']} after {header['seconds']:.2f} s\n")
        body = _infer_body(1000)
        latencies: list[float] = []
        errors: list[float] = []
        clients = [
            threading.Thread(target=_load, args=(port, body, args.seconds, latencies, errors))
            for _ in range(args.connections)
        ]
        for c in clients:
            c.start()
        for c in clients:
            c.join()
        q = np.percentile(latencies, [50, 99]) * 1e3
        print("| connections | requests | errors | p50 | p99 | max | p99 / p50 |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        print(
            f"| {args.connections} | {len(latencies)} | {len(errors)} | {q[0]:.0f} ms | "
            f"{q[1]:.0f} ms | {max(latencies) * 1e3:.0f} ms | {q[1] / q[0]:.2f} |"
        )
    finally:
        stop(proc)


if __name__ == "__main__":
    main()
