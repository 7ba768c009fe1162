"""One infer request's cost in process: quantpipe's app against the framework's floor.

Calls the ASGI apps directly, without a socket or an HTTP server (a fake ``receive`` gives
the whole body, ``send`` keeps the messages): quantpipe's app as ``quantpipe serve`` builds
it (drift window on, the models and reference under ``models/``) and the floor app of
``serve_bench.FLOOR_APP``, each ``--requests`` times per round, rounds alternating. Prints
the median and the lowest time per request of each. Less noisy than the wire (wrk), and
it leaves out what both pay alike: uvicorn, the HTTP parser, the kernel's sockets.

Run from the repository root after ``dvc repro``; ``--checkout`` times another checkout's
code and models (a clone of an older revision, after ``dvc repro`` in it)::

    python benchmarks/infer_inprocess.py [--rows 1] [--checkout ../quantpipe-old]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path


def scope(body: bytes) -> dict:
    """An HTTP scope as uvicorn makes it for ``POST /v2/models/fp64/infer``."""
    headers = [
        (b"host", b"127.0.0.1:8080"),
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
    ]
    path = "/v2/models/fp64/infer"
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
        "state": {},
    }


async def per_request(app, body: bytes, n: int) -> float:
    """Seconds per request over ``n`` requests; the last answer must be a 200."""

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    start = time.perf_counter()
    for _ in range(n):
        sent.clear()
        await app(scope(body), receive, send)
    seconds = (time.perf_counter() - start) / n
    if sent[0].get("status") != 200:
        sys.exit(f"the app answered {sent[0].get('status')}: {sent[-1].get('body', b'')[:200]}")
    return seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=1, help="rows per request (JSON)")
    p.add_argument("--requests", type=int, default=20_000, help="requests per round")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--checkout", type=Path, help="time another checkout's code and models")
    args = p.parse_args()
    root = (args.checkout or Path.cwd()).resolve()
    sys.path.insert(0, str(root))  # before anything imports quantpipe
    import uvloop
    from serve_bench import FLOOR_APP

    from quantpipe.data import load_dataset
    from quantpipe.registry import ModelRegistry
    from quantpipe.serve.app import create_app, load_drift_reference

    models = root / "models"
    app = create_app(ModelRegistry.from_directory(models), reference=load_drift_reference(models))
    floor: dict = {"__name__": "floor"}
    exec(FLOOR_APP, floor)  # the floor's app, not its server (see FLOOR_APP)
    X = load_dataset("data/split/test.npz").X[: args.rows]  # this checkout's: the same body
    tensor = {"name": "input-0", "shape": list(X.shape), "datatype": "FP64"}
    body = json.dumps({"inputs": [{**tensor, "data": X.ravel().tolist()}]}).encode()
    times: dict[str, list[float]] = {"quantpipe": [], "floor": []}

    async def rounds() -> None:
        for target in (app, floor["app"]):
            await per_request(target, body, max(args.requests // 10, 1))  # warm up
        for _ in range(args.rounds):
            for name, target in (("quantpipe", app), ("floor", floor["app"])):
                times[name].append(await per_request(target, body, args.requests))

    uvloop.run(rounds())
    print(
        f"{root}: {args.rows}-row JSON ({len(body):,} bytes), {args.rounds} rounds of "
        f"{args.requests:,} requests, per request:"
    )
    for name, t in times.items():
        print(
            f"  {name:9s} median {statistics.median(t) * 1e6:7.1f} µs, "
            f"lowest {min(t) * 1e6:7.1f} µs"
        )
    ratio = statistics.median(times["quantpipe"]) / statistics.median(times["floor"])
    print(f"  quantpipe / floor: {ratio:.2f}x the floor's time")


if __name__ == "__main__":
    main()
