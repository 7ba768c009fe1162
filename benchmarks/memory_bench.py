"""Peak memory of `quantpipe serve` under large JSON infer requests.

Starts the server on the pipeline's models (one worker), reads its resident set from
``/proc`` (``VmRSS`` idle, ``VmHWM`` after), and sends JSON bodies of ``--mib`` MiB: one
alone, then ``--concurrent`` at once over separate connections. Prints the peak's rise over
the idle server as a multiple of one body. Linux only (``/proc``).

Run from the repository root after the quick start::

    python benchmarks/memory_bench.py [--mib 8] [--concurrent 16] [--nested]
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading

import numpy as np
from serve_bench import start_quantpipe, stop

MIB = 1024 * 1024


def _status(pid: int, field: str) -> int:
    """A ``/proc/<pid>/status`` field in bytes (``VmRSS``, ``VmHWM``)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise LookupError(field)


def _post(port: int, body: bytes, statuses: list[int]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    conn.request("POST", "/v2/models/fp64/infer", body=body)
    response = conn.getresponse()
    response.read()
    statuses.append(response.status)
    conn.close()


def _body(mib: float, nested: bool) -> bytes:
    n = int(mib * MIB / 150)  # about 150 bytes of JSON per row of 8 numbers
    X = np.random.default_rng(0).normal(size=(n, 8)) * 1000
    data = X.tolist() if nested else X.ravel().tolist()
    tensor = {"name": "input-0", "shape": [n, 8], "datatype": "FP64", "data": data}
    return json.dumps({"inputs": [tensor]}).encode()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mib", type=float, default=8, help="size of each JSON body, MiB")
    p.add_argument("--concurrent", type=int, default=16, help="bodies sent at once")
    p.add_argument("--nested", action="store_true", help="rows as nested lists")
    args = p.parse_args()
    body = _body(args.mib, args.nested)
    limit = str(len(body) + 1024)
    proc, port, _ = start_quantpipe(1, None, "--max-json-bytes", limit, "--max-body-bytes", limit)
    try:
        idle = _status(proc.pid, "VmRSS")
        print(f"body {len(body) / MIB:.1f} MiB ({'nested' if args.nested else 'flat'} data)")
        print(f"idle server: {idle / MIB:.0f} MiB resident\n")
        print("| requests | statuses | peak rise | times one body |")
        print("| --- | --- | ---: | ---: |")
        for count in (1, args.concurrent):
            statuses: list[int] = []
            threads = [
                threading.Thread(target=_post, args=(port, body, statuses)) for _ in range(count)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            rise = _status(proc.pid, "VmHWM") - idle
            seen = ", ".join(f"{s}: {statuses.count(s)}" for s in sorted(set(statuses)))
            print(f"| {count} | {seen} | {rise / MIB:.0f} MiB | {rise / len(body):.1f} |")
    finally:
        stop(proc)


if __name__ == "__main__":
    main()
