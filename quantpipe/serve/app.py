"""The ASGI application: the Open Inference Protocol's endpoints over the model registry.

Endpoints: ``GET /v2/health/live``, ``/v2/health/ready``, ``/v2``,
``/v2/models/{name}[/versions/{v}]``, ``/v2/models/{name}[/versions/{v}]/ready``,
``POST /v2/models/{name}[/versions/{v}]/infer``, and Prometheus metrics at ``/metrics``.
The handlers are module-level functions; what they share (the registry, the metrics, the
drift window, the body limit) is the app's ``state.server``.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from quantpipe import __version__
from quantpipe.drift import Reference, load_reference
from quantpipe.errors import RequestError
from quantpipe.registry import ModelRegistry
from quantpipe.serve.protocol import (
    EXTENSIONS,
    HEADER_LENGTH,
    INPUT_NAME,
    MODEL_VERSION,
    OUTPUT_NAME,
    PLATFORM,
    SERVER_NAME,
    infer_response,
    parse_infer_request,
)
from quantpipe.serve.telemetry import DriftWindow, Metrics

log = logging.getLogger("quantpipe.serve")

DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
DEFAULT_DRIFT_WINDOW = 10_000
# With --workers > 1, each worker process builds its app from these.
ENV_MODELS_DIR = "QUANTPIPE_MODELS_DIR"
ENV_MAX_BODY = "QUANTPIPE_MAX_BODY_BYTES"
ENV_DRIFT_WINDOW = "QUANTPIPE_DRIFT_WINDOW"


@dataclass(frozen=True)
class Server:
    """What the handlers of one app share (its ``state.server``)."""

    registry: ModelRegistry
    metrics: Metrics
    drift: DriftWindow | None
    max_body_bytes: int

    @property
    def n_features(self) -> int:
        """Features a row of every model has."""
        return len(self.registry.feature_names)


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _error(status: int, message: str) -> Response:
    return _json({"error": message}, status)


def _server(request: Request) -> Server:
    return request.app.state.server


def _resolve(request: Request, endpoint: str) -> str:
    """The model a request names, or a counted 404."""
    server = _server(request)
    name = request.path_params["name"]
    version = request.path_params.get("version")
    if name not in server.registry:
        server.metrics.count(name, endpoint, 404)
        raise RequestError(404, f"unknown model {name!r}; available: {', '.join(server.registry)}")
    if version is not None and version != MODEL_VERSION:
        server.metrics.count(name, endpoint, 404)
        raise RequestError(
            404, f"model {name!r} has no version {version!r}; available: {MODEL_VERSION}"
        )
    return name


async def live(request: Request) -> Response:
    """``GET /v2/health/live``."""
    return _json({"live": True})


async def ready(request: Request) -> Response:
    """``GET /v2/health/ready``: the models are loaded before the app exists."""
    return _json({"ready": True})


async def server_metadata(request: Request) -> Response:
    """``GET /v2``: name, version and extensions."""
    return _json({"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS})


async def model_metadata(request: Request) -> Response:
    """``GET /v2/models/{name}``: the model's input, output and what it is."""
    server = _server(request)
    name = _resolve(request, "metadata")
    model = server.registry.get(name)
    server.metrics.count(name, "metadata", 200)
    return _json(
        {
            "name": name,
            "versions": [MODEL_VERSION],
            "platform": PLATFORM,
            "inputs": [{"name": INPUT_NAME, "datatype": "FP64", "shape": [-1, server.n_features]}],
            "outputs": [{"name": OUTPUT_NAME, "datatype": "FP64", "shape": [-1]}],
            "parameters": {
                "feature_names": list(server.registry.feature_names),
                "kind": model.header["kind"],
                "bits": model.bits,
                "param_bytes": model.param_bytes,
            },
        }
    )


async def model_ready(request: Request) -> Response:
    """``GET /v2/models/{name}/ready``."""
    name = _resolve(request, "ready")
    _server(request).metrics.count(name, "ready", 200)
    return _json({"name": name, "ready": True})


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"request body over the {limit}-byte limit")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"request body over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


async def infer(request: Request) -> Response:
    """``POST /v2/models/{name}/infer``: predictions for the rows sent."""
    server = _server(request)
    name = _resolve(request, "infer")
    try:
        body = await _read_body(request, server.max_body_bytes)
        start = time.perf_counter()
        parsed = parse_infer_request(body, request.headers.get(HEADER_LENGTH), server.n_features)
    except RequestError as exc:
        server.metrics.count(name, "infer", exc.status)
        raise
    predictions = server.registry.get(name).predict(parsed.X)
    if server.drift is not None:
        server.drift.add(parsed.X)
    content, headers = infer_response(name, parsed, predictions)
    server.metrics.latency.labels(name).observe(time.perf_counter() - start)
    server.metrics.rows.labels(name).inc(len(predictions))
    server.metrics.count(name, "infer", 200)
    return Response(content, headers=headers)


async def prometheus(request: Request) -> Response:
    """``GET /metrics``, in Prometheus text format."""
    return Response(_server(request).metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


async def _request_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestError)
    return _error(exc.status, exc.message)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error(exc.status_code, f"{exc.detail}: {request.method} {request.url.path}")


async def _disconnected(request: Request, exc: Exception) -> Response:
    return _error(400, "client disconnected before sending the whole body")


def _routes() -> list[Route]:
    routes = [
        Route("/v2/health/live", live),
        Route("/v2/health/ready", ready),
        Route("/v2", server_metadata),
        Route("/metrics", prometheus),
    ]
    for prefix in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        routes += [
            Route(prefix, model_metadata),
            Route(prefix + "/ready", model_ready),
            Route(prefix + "/infer", infer, methods=["POST"]),
        ]
    return routes


def create_app(
    registry: ModelRegistry,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    reference: Reference | None = None,
    drift_window: int = DEFAULT_DRIFT_WINDOW,
) -> Starlette:
    """The ASGI application serving every model of ``registry``.

    Parameters
    ----------
    registry : ModelRegistry
    max_body_bytes : int
        Larger infer bodies get 413.
    reference : Reference, optional
        The training data's reference; with it, the last ``drift_window`` input rows are
        kept and scored for drift at ``/metrics``.
    drift_window : int
        Rows kept for drift scoring; 0 turns it off.
    """
    drift = DriftWindow(reference, drift_window) if reference is not None and drift_window else None
    app = Starlette(
        routes=_routes(),
        exception_handlers={
            RequestError: _request_error,
            HTTPException: _http_error,
            ClientDisconnect: _disconnected,
        },
    )
    app.state.server = Server(registry, Metrics(list(registry), drift), drift, max_body_bytes)
    return app


def load_drift_reference(models_dir: Path) -> Reference | None:
    """``reference.npz`` beside the models, or None (drift gauges off) if there is none."""
    path = Path(models_dir) / "reference.npz"
    if not path.is_file():
        log.warning("no %s: the drift gauges are off (run `dvc repro` to build it)", path)
        return None
    return load_reference(path)


def app_from_environment() -> Starlette:
    """App factory for worker processes (``uvicorn --factory``), configured by environment."""
    models_dir = Path(os.environ.get(ENV_MODELS_DIR, "models"))
    return create_app(
        ModelRegistry.from_directory(models_dir),
        int(os.environ.get(ENV_MAX_BODY, DEFAULT_MAX_BODY_BYTES)),
        load_drift_reference(models_dir),
        int(os.environ.get(ENV_DRIFT_WINDOW, DEFAULT_DRIFT_WINDOW)),
    )
