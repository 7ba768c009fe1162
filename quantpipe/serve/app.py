"""The ASGI application: the Open Inference Protocol's endpoints over the model registry.

Endpoints: ``GET /v2/health/live``, ``/v2/health/ready``, ``/v2``,
``/v2/models/{name}[/versions/{v}]``, ``/v2/models/{name}[/versions/{v}]/ready``,
``POST /v2/models/{name}[/versions/{v}]/infer``, and Prometheus metrics at ``/metrics``.
The handlers are module-level functions; what they share (the registry, the metrics, the
drift window, the limits) is the app's ``state.server``. A served model's infer requests
are answered before routing (:class:`quantpipe.serve.infer.FastInfer`).

Every answer is JSON, failures included: a 4xx names the problem; anything unexpected is
logged with its traceback and answered with a counted JSON 500. An infer body larger than
:data:`quantpipe.serve.infer.OFFLOAD_BYTES` is parsed and predicted in one of
:data:`quantpipe.serve.infer.LARGE_AT_ONCE` worker threads, so that health checks and small
requests are answered meanwhile (orjson and numpy hold the GIL while they decode, so a
body's size also bounds the pause it can cause: hence a JSON body limit well below the
binary one).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from quantpipe import __version__
from quantpipe.drift import Reference, load_reference
from quantpipe.errors import RequestError, cut, show
from quantpipe.mnist.evaluation import DigitsNet
from quantpipe.registry import ModelRegistry
from quantpipe.serve.bodies import Budget
from quantpipe.serve.digits import digits_metadata
from quantpipe.serve.infer import (
    FastInfer,
    Server,
    disconnected_response,
    error_response,
    json_response,
    read_and_answer,
    request_error_response,
)
from quantpipe.serve.protocol import (
    EXTENSIONS,
    HEADER_LENGTH,
    INPUT_NAME,
    MODEL_VERSION,
    OUTPUT_NAME,
    PLATFORM,
    SERVER_NAME,
)
from quantpipe.serve.telemetry import DriftWindow, Metrics

log = logging.getLogger("quantpipe.serve")

DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
#: A JSON body (or a binary request's JSON header) decodes to about 17 bytes of Python
#: objects per byte: its own, lower limit.
DEFAULT_MAX_JSON_BYTES = 8 * 1024 * 1024
DEFAULT_DRIFT_WINDOW = 10_000
#: Request bodies one worker holds at once: past it, 503.
DEFAULT_MAX_HELD_BYTES = 256 * 1024 * 1024


def _server(request: Request) -> Server:
    return request.app.state.server


def _resolve(request: Request, endpoint: str) -> str:
    """The model a request names, or a counted 404."""
    server = _server(request)
    name = request.path_params["name"]
    version = request.path_params.get("version")
    if name not in server.registry and name not in server.digits:
        server.metrics.count(name, endpoint, 404)
        available = ", ".join([*server.registry, *server.digits])
        raise RequestError(404, f"unknown model {show(name)}; available: {available}")
    if version is not None and version != MODEL_VERSION:
        server.metrics.count(name, endpoint, 404)
        raise RequestError(
            404, f"model {name!r} has no version {show(version)}; available: {MODEL_VERSION}"
        )
    return name


async def live(request: Request) -> Response:
    """``GET /v2/health/live``."""
    return json_response({"live": True})


async def ready(request: Request) -> Response:
    """``GET /v2/health/ready``: the models are loaded before the app exists."""
    return json_response({"ready": True})


async def server_metadata(request: Request) -> Response:
    """``GET /v2``: name, version and extensions."""
    return json_response({"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS})


async def model_metadata(request: Request) -> Response:
    """``GET /v2/models/{name}``: the model's input, output and what it is."""
    server = _server(request)
    name = _resolve(request, "metadata")
    server.metrics.count(name, "metadata", 200)
    if name in server.digits:
        return json_response(digits_metadata(name, server.digits[name]))
    model = server.registry.get(name)
    return json_response(
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
    return json_response({"name": name, "ready": True})


async def infer(request: Request) -> Response:
    """``POST /v2/models/{name}/infer`` that :class:`FastInfer` passed on.

    An unknown name or version gets its 404 here; a known one (in an app without
    :class:`FastInfer`) is answered as :class:`FastInfer` would.
    """
    name = _resolve(request, "infer")
    server = _server(request)
    answer = await read_and_answer(
        server,
        name,
        request.headers.get(HEADER_LENGTH),
        request.headers.get("content-length"),
        request.receive,
    )
    answer.record(server)  # before the response here: this route is not the fast one
    return Response(answer.content, headers=answer.headers)


async def prometheus(request: Request) -> Response:
    """``GET /metrics``, in Prometheus text format."""
    return Response(_server(request).metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


async def _request_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestError)
    return request_error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    response = error_response(
        exc.status_code, f"{exc.detail}: {request.method} {cut(request.url.path)}"
    )
    response.headers.update(exc.headers or {})  # a 405's Allow
    return response


def _endpoint(request: Request) -> str:
    """The metrics' endpoint label of a request: infer, ready, metadata or server."""
    last = request.url.path.rstrip("/").rpartition("/")[2]
    if last in ("infer", "ready") and "name" in request.path_params:
        return last
    return "metadata" if "name" in request.path_params else "server"


async def _disconnected(request: Request, exc: Exception) -> Response:
    return disconnected_response()


class CatchAll:
    """ASGI middleware: the last resort, a counted JSON 500.

    Anything no handler expected is logged with its traceback, counted, and answered with
    a JSON 500. The server's one broad ``except``: Starlette's own last resort answers in
    plain text, uncounted, and raises the exception again for the ASGI server to log twice.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Call the app; on an unexpected exception, answer 500 unless it had started to."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:  # the boundary: log, count, answer
            request = Request(scope)
            log.error("%s %s failed", request.method, cut(request.url.path), exc_info=exc)
            name = request.path_params.get("name", "")
            _server(request).metrics.count(name, _endpoint(request), 500)
            if not started:
                response = error_response(500, "internal error; the server log has the details")
                await response(scope, receive, send)


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
    max_json_bytes: int = DEFAULT_MAX_JSON_BYTES,
    shared_dir: Path | None = None,
    max_held_bytes: int = DEFAULT_MAX_HELD_BYTES,
    digits: Mapping[str, DigitsNet] | None = None,
) -> Starlette:
    """The ASGI application serving every model of ``registry``.

    Parameters
    ----------
    registry : ModelRegistry
    max_body_bytes : int
        Larger infer bodies get 413.
    max_json_bytes : int
        Larger JSON infer bodies, or JSON headers of binary ones, get 413.
    max_held_bytes : int
        Request bodies held at once beyond this many bytes get 503 (a total bound on what
        requests cost in memory, apart from about 5 times a JSON body while it is decoded).
    shared_dir : Path, optional
        The folder the worker processes share (their metrics'): each keeps its drift window
        there, and the gauges score all of them together.
    reference : Reference, optional
        The training data's reference; with it, the last ``drift_window`` input rows are
        kept and scored for drift at ``/metrics``.
    drift_window : int
        Rows kept for drift scoring; 0 turns it off.
    digits : mapping of str to FloatNet or QuantNet, optional
        The digits networks to serve beside ``registry``'s models, by name.
    """
    drift = None
    if reference is not None and drift_window:
        drift = DriftWindow(reference, drift_window, shared_dir)
    app = Starlette(
        routes=_routes(),
        exception_handlers={
            RequestError: _request_error,
            HTTPException: _http_error,
            ClientDisconnect: _disconnected,
        },
        middleware=[Middleware(CatchAll), Middleware(FastInfer)],
    )
    app.router.redirect_slashes = False  # a redirect would go to whatever Host was sent
    digits = dict(digits or {})
    metrics = Metrics([*registry, *digits], drift)
    budget = Budget(max_held_bytes)
    app.state.server = Server(
        registry, digits, metrics, drift, max_body_bytes, max_json_bytes, budget
    )
    return app


def load_drift_reference(models_dir: Path) -> Reference | None:
    """``reference.npz`` beside the models, or None (drift gauges off) if there is none."""
    path = Path(models_dir) / "reference.npz"
    if not path.is_file():
        log.warning("no %s: the drift gauges are off (run `dvc repro` to build it)", path)
        return None
    return load_reference(path)
