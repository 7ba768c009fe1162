"""``quantpipe serve``: the models over the Open Inference Protocol (KServe V2), REST.

Endpoints: ``GET /v2/health/live``, ``/v2/health/ready``, ``/v2``,
``/v2/models/{name}[/versions/{v}]``, ``/v2/models/{name}[/versions/{v}]/ready``,
``POST /v2/models/{name}[/versions/{v}]/infer``, and Prometheus metrics at ``/metrics``.

Infer takes one input tensor of shape ``[n, n_features]``, ``FP64`` or ``FP32``, with its
values as JSON ``data`` (flat or nested) or, with the binary tensor data extension, as raw
little-endian bytes after a JSON header whose length is given by the
``Inference-Header-Content-Length`` request header. It answers with one ``FP64`` output of
shape ``[n]``, as JSON ``data`` or, when asked (``binary_data_output`` or an output's
``binary_data``), as raw bytes after the JSON header. Every bad request gets a 4xx with the
protocol's ``{"error": "..."}`` body.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from quantpipe import cli
from quantpipe.errors import QuantpipeError
from quantpipe.registry import ModelRegistry
from quantpipe.serve.app import (
    DEFAULT_DRIFT_WINDOW,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_JSON_BYTES,
    ENV_DRIFT_WINDOW,
    ENV_MAX_BODY,
    ENV_MAX_JSON,
    ENV_MODELS_DIR,
    create_app,
    load_drift_reference,
)
from quantpipe.serve.telemetry import ENV_PROMETHEUS_DIR

log = logging.getLogger("quantpipe.serve")
DEFAULT_MAX_CONNECTIONS = 256


def _body(args: argparse.Namespace) -> None:
    import uvicorn  # the server's own dependency; not needed to build the app in tests

    if args.workers < 1:
        raise QuantpipeError(f"--workers {args.workers} is not allowed; use 1 or more")
    if args.max_connections < 1:
        raise QuantpipeError(
            f"--max-connections {args.max_connections} is not allowed; use 1 or more"
        )
    if args.drift_window < 0:
        raise QuantpipeError(f"--drift-window {args.drift_window} is not allowed; use 0 or more")
    registry = ModelRegistry.from_directory(args.models_dir)  # fail here, in one line
    reference = load_drift_reference(args.models_dir) if args.drift_window else None
    log.info(
        "serving %s on http://%s:%d with %d worker(s) (Open Inference Protocol v2)",
        ", ".join(registry),
        args.host,
        args.port,
        args.workers,
    )
    options = {
        "host": args.host,
        "port": args.port,
        "log_level": "warning",
        "access_log": False,
        "server_header": False,
        "limit_concurrency": args.max_connections,  # beyond it, 503: bounds held bodies
    }
    if args.workers == 1:
        app = create_app(
            registry, args.max_body_bytes, reference, args.drift_window, args.max_json_bytes
        )
        uvicorn.run(app, **options)
        return
    with tempfile.TemporaryDirectory(prefix="quantpipe-prometheus-") as prometheus_dir:
        os.environ[ENV_MODELS_DIR] = str(args.models_dir.resolve())
        os.environ[ENV_MAX_BODY] = str(args.max_body_bytes)
        os.environ[ENV_MAX_JSON] = str(args.max_json_bytes)
        os.environ[ENV_DRIFT_WINDOW] = str(args.drift_window)
        os.environ[ENV_PROMETHEUS_DIR] = prometheus_dir
        factory = "quantpipe.serve.app:app_from_environment"
        uvicorn.run(factory, factory=True, workers=args.workers, **options)


def main(argv: Sequence[str] | None = None, prog: str = "quantpipe serve") -> int:
    """Run the server; returns the exit status."""
    p = cli.parser(prog, __doc__.split("\n\n")[0])
    p.add_argument("--models-dir", type=Path, default=Path("models"), help="models directory")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8080, help="port to listen on")
    p.add_argument(
        "--max-body-bytes",
        type=int,
        default=DEFAULT_MAX_BODY_BYTES,
        help="larger infer requests get 413",
    )
    p.add_argument(
        "--max-json-bytes",
        type=int,
        default=DEFAULT_MAX_JSON_BYTES,
        help="larger JSON infer bodies (or JSON headers of binary ones) get 413",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        default=DEFAULT_MAX_CONNECTIONS,
        help="open connections per worker; more get 503 (bounds the bodies held in memory)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes; /metrics sums over them (about one per core)",
    )
    p.add_argument(
        "--drift-window",
        type=int,
        default=DEFAULT_DRIFT_WINDOW,
        help="recent input rows scored for drift at /metrics (needs models/reference.npz; 0: off)",
    )
    return cli.run(_body, p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
