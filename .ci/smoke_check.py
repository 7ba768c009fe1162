"""Smoke-test a running inference server against the local model files.

Usage: python .ci/smoke_check.py URL [--models-dir models]

Checks health, server and model metadata, a JSON and a binary infer call whose predictions
must equal the local predictor's bit for bit, and bad requests that must get a 4xx with an
error body. Exits 1 on the first failure.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request

import numpy as np

from quantpipe.data import load_dataset
from quantpipe.registry import ModelRegistry


def call(url, body=None, headers=None):
    request = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def check(condition, what):
    if not condition:
        sys.exit(f"smoke test FAILED: {what}")
    print(f"  ok  {what}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("url")
    p.add_argument("--models-dir", default="models")
    p.add_argument("--rows", default="data/split/test.npz")
    args = p.parse_args()
    base = args.url.rstrip("/")
    registry = ModelRegistry.from_directory(args.models_dir)
    X = load_dataset(args.rows).X[:1000]

    status, _, body = call(f"{base}/v2/health/ready")
    check(status == 200 and json.loads(body) == {"ready": True}, "GET /v2/health/ready")
    status, _, body = call(f"{base}/v2")
    check(status == 200 and "binary_tensor_data" in json.loads(body)["extensions"], "GET /v2")
    for name in registry:
        status, _, body = call(f"{base}/v2/models/{name}")
        meta = json.loads(body)
        check(status == 200 and meta["inputs"][0]["shape"] == [-1, 8], f"metadata of {name}")

        request = {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [len(X), 8],
                    "datatype": "FP64",
                    "data": X.ravel().tolist(),
                }
            ]
        }
        status, _, body = call(
            f"{base}/v2/models/{name}/infer",
            json.dumps(request).encode(),
            {"Content-Type": "application/json"},
        )
        got = np.array(json.loads(body)["outputs"][0]["data"]) if status == 200 else None
        expected = registry.get(name).predict(X)
        check(
            got is not None and np.array_equal(got, expected),
            f"JSON infer on {name}: {len(X)} predictions equal the local predictor's",
        )

    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [len(X), 8],
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": X.nbytes},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    status, headers, body = call(
        f"{base}/v2/models/q8/infer",
        header + X.astype("<f8").tobytes(),
        {"Inference-Header-Content-Length": str(len(header))},
    )
    n = int({k.lower(): v for k, v in headers.items()}.get("inference-header-content-length", 0))
    got = np.frombuffer(body[n:], "<f8") if status == 200 else None
    check(
        got is not None and np.array_equal(got, registry.get("q8").predict(X)),
        "binary infer on q8 equals the local predictor",
    )

    for what, url, payload in [
        ("unknown model", f"{base}/v2/models/nope/infer", b"{}"),
        ("malformed JSON", f"{base}/v2/models/q8/infer", b"{"),
        (
            "wrong shape",
            f"{base}/v2/models/q8/infer",
            b'{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP64","data":[1,2,3]}]}',
        ),
    ]:
        status, _, body = call(url, payload)
        check(400 <= status < 500 and "error" in json.loads(body), f"{what} gets {status}")
    status, _, _ = call(f"{base}/v2/health/live")
    check(status == 200, "still serving after the bad requests")
    image = {"name": "images", "datatype": "UINT8", "shape": [1, 28, 28], "data": [0] * 784}
    for name in ("mnist-fp32", "mnist-q8", "mnist-q16"):
        request = json.dumps({"inputs": [image]}).encode()
        status, _, body = call(f"{base}/v2/models/{name}/infer", request)
        outputs = json.loads(body)["outputs"] if status == 200 else []
        check(
            [o["name"] for o in outputs] == ["digit", "probabilities"]
            and 0 <= outputs[0]["data"][0] <= 9,
            f"{name} (the digits family) answers a blank image with a digit",
        )
    status, _, body = call(f"{base}/metrics")
    text = body.decode()
    check(
        status == 200
        and 'quantpipe_requests_total{endpoint="infer",model="q8",status="200"}' in text
        and 'quantpipe_drift_psi{feature="Latitude"}' in text,
        "/metrics has request counts and drift gauges (reference.npz shipped)",
    )


if __name__ == "__main__":
    main()
