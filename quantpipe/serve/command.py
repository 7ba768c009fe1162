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
import socket
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from quantpipe import cli, compiled
from quantpipe.errors import QuantpipeError
from quantpipe.mnist.registry import load_digits_models
from quantpipe.registry import ModelRegistry
from quantpipe.serve.app import (
    DEFAULT_DRIFT_WINDOW,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_HELD_BYTES,
    DEFAULT_MAX_JSON_BYTES,
    create_app,
    load_drift_reference,
)
from quantpipe.serve.connection import (
    DEFAULT_HEAD_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_HEAD_BYTES,
    ENV_HEAD_TIMEOUT,
    ENV_MAX_CONNECTIONS,
    ENV_MAX_HEAD,
)
from quantpipe.serve.telemetry import ENV_PROMETHEUS_DIR
from quantpipe.serve.workers import (
    ENV_DRIFT_WINDOW,
    ENV_MAX_BODY,
    ENV_MAX_HELD,
    ENV_MAX_JSON,
    ENV_MODELS_DIR,
)

log = logging.getLogger("quantpipe.serve")
MAX_DRIFT_WINDOW = 1_000_000  # rows of 8 float64 features: 64 MB per worker


def _check(args: argparse.Namespace) -> None:
    """Every setting in range, or one line that says which is not."""
    checks = [
        (1 <= args.port <= 65535, f"--port {args.port} is not allowed; use 1 to 65535"),
        (args.workers >= 1, f"--workers {args.workers} is not allowed; use 1 or more"),
        (
            args.max_head_bytes >= 1024,
            f"--max-head-bytes {args.max_head_bytes} is not allowed; use 1024 or more",
        ),
        (
            args.head_timeout > 0,
            f"--head-timeout {args.head_timeout} is not allowed; use seconds > 0",
        ),
        (
            args.max_connections >= 1,
            f"--max-connections {args.max_connections} is not allowed; use 1 or more",
        ),
        (
            0 <= args.drift_window <= MAX_DRIFT_WINDOW,
            f"--drift-window {args.drift_window} is not allowed; use 0 to {MAX_DRIFT_WINDOW:,}",
        ),
        (
            args.max_body_bytes >= 1024,
            f"--max-body-bytes {args.max_body_bytes} is not allowed; use 1024 or more",
        ),
        (
            args.max_held_bytes >= args.max_body_bytes,
            f"--max-held-bytes {args.max_held_bytes} is not allowed; use at least "
            f"--max-body-bytes ({args.max_body_bytes})",
        ),
        (
            args.max_json_bytes >= 1024,
            f"--max-json-bytes {args.max_json_bytes} is not allowed; use 1024 or more",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise QuantpipeError(message)


def _check_port(host: str, port: int) -> None:
    """Fail in one line now if the address cannot be listened on.

    uvicorn would find out only after the "serving" line, then log its own error and exit.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(infos[0][4])
    except OSError as exc:
        raise QuantpipeError(f"cannot listen on {host}:{port} ({exc.strerror})") from None


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """Uvicorn's settings.

    The connections' guards read theirs from the environment, in this process and in every
    worker.
    """
    os.environ[ENV_MAX_HEAD] = str(args.max_head_bytes)
    os.environ[ENV_HEAD_TIMEOUT] = str(args.head_timeout)
    os.environ[ENV_MAX_CONNECTIONS] = str(args.max_connections)
    return {
        "http": "quantpipe.serve.connection:GuardedHttpTools",
        "host": args.host,
        "port": args.port,
        "log_level": "warning",
        "access_log": False,
        "server_header": False,
    }


#: Where the workers' shared folder goes when ``TMPDIR`` names no other place: memory
#: (tmpfs), so that the kernel never writes their memory-mapped metrics and drift windows back
#: to a disk. On a disk-backed ``/tmp`` that writeback stalled a worker now and then, for up
#: to 32 ms (docs/performance.md, "A sixth run").
SHARED_MEMORY = Path("/dev/shm")


def shared_folder_parent() -> str | None:
    """The folder the workers' shared folder is made in: :data:`SHARED_MEMORY`, or None.

    None (tempfile's choice: ``TMPDIR``, else ``/tmp``) when ``TMPDIR`` is set, or when
    :data:`SHARED_MEMORY` is not a folder this process may write in (not Linux, say).
    """
    if os.environ.get("TMPDIR") or not SHARED_MEMORY.is_dir():
        return None
    return str(SHARED_MEMORY) if os.access(SHARED_MEMORY, os.W_OK | os.X_OK) else None


def _run_workers(args: argparse.Namespace, options: dict[str, Any]) -> None:
    """``--workers N``: each worker builds its app from the environment set here."""
    import uvicorn

    try:
        metrics_dir = tempfile.TemporaryDirectory(
            prefix="quantpipe-prometheus-", dir=shared_folder_parent()
        )
    except OSError as exc:
        raise QuantpipeError(
            f"no temporary folder for the workers' metrics ({exc.strerror}); "
            "point TMPDIR at a writable folder"
        ) from None
    with metrics_dir as prometheus_dir:
        os.environ[ENV_MODELS_DIR] = str(args.models_dir.resolve())
        os.environ[ENV_MAX_BODY] = str(args.max_body_bytes)
        os.environ[ENV_MAX_JSON] = str(args.max_json_bytes)
        os.environ[ENV_MAX_HELD] = str(args.max_held_bytes)
        os.environ[ENV_DRIFT_WINDOW] = str(args.drift_window)
        os.environ[ENV_PROMETHEUS_DIR] = prometheus_dir
        factory = "quantpipe.serve.workers:app_from_environment"
        uvicorn.run(factory, factory=True, workers=args.workers, **options)


def _body(args: argparse.Namespace) -> None:
    import uvicorn  # the server's own dependency; not needed to build the app in tests

    _check(args)
    compiled.kernels()  # a missing or stale build fails here, not as a 500 on each infer
    registry = ModelRegistry.from_directory(args.models_dir)  # fail here, in one line
    digits = load_digits_models(args.models_dir / "mnist")
    reference = load_drift_reference(args.models_dir) if args.drift_window else None
    _check_port(args.host, args.port)
    log.info(
        "serving %s on http://%s:%d with %d worker(s) (Open Inference Protocol v2)",
        ", ".join([*registry, *digits]),
        args.host,
        args.port,
        args.workers,
    )
    options = _options(args)
    if args.workers > 1:
        _run_workers(args, options)
        return
    app = create_app(
        registry,
        args.max_body_bytes,
        reference,
        args.drift_window,
        args.max_json_bytes,
        max_held_bytes=args.max_held_bytes,
        digits=digits,
    )
    uvicorn.run(app, **options)


#: The limits' options: name, type, default, help.
_LIMITS = [
    ("--max-body-bytes", int, DEFAULT_MAX_BODY_BYTES, "larger infer requests get 413"),
    (
        "--max-json-bytes",
        int,
        DEFAULT_MAX_JSON_BYTES,
        "larger JSON infer bodies (or JSON headers of binary ones) get 413",
    ),
    (
        "--max-held-bytes",
        int,
        DEFAULT_MAX_HELD_BYTES,
        "request bodies held at once, per worker; past it, 503 (at least --max-body-bytes)",
    ),
    ("--max-head-bytes", int, DEFAULT_MAX_HEAD_BYTES, "a larger request line and headers get 431"),
    (
        "--head-timeout",
        float,
        DEFAULT_HEAD_TIMEOUT,
        "seconds a request line and headers may take to arrive; then 408",
    ),
    (
        "--max-connections",
        int,
        DEFAULT_MAX_CONNECTIONS,
        "open connections per worker; more get 503 (bounds the bodies held in memory)",
    ),
]


def main(argv: Sequence[str] | None = None, prog: str = "quantpipe serve") -> int:
    """Run the server; returns the exit status."""
    p = cli.parser(prog, __doc__.split("\n\n")[0])
    p.add_argument("--models-dir", type=Path, default=Path("models"), help="models directory")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8080, help="port to listen on")
    for flag, kind, default, text in _LIMITS:
        p.add_argument(flag, type=kind, default=default, help=text)
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
