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
import itertools
import logging
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from quantpipe import __version__, cli
from quantpipe.drift import Reference, feature_drift, load_reference
from quantpipe.errors import QuantpipeError, RequestError
from quantpipe.registry import ModelRegistry

log = logging.getLogger("quantpipe.serve")

SERVER_NAME = "quantpipe"
MODEL_VERSION = "1"
PLATFORM = "quantpipe-linear"
INPUT_NAME = "input-0"
OUTPUT_NAME = "predictions"
HEADER_LENGTH = "inference-header-content-length"
DTYPES: dict[str, np.dtype] = {"FP64": np.dtype("<f8"), "FP32": np.dtype("<f4")}
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
EXTENSIONS = ["binary_tensor_data"]
# With --workers > 1, each worker process builds its app from these.
ENV_MODELS_DIR = "QUANTPIPE_MODELS_DIR"
ENV_MAX_BODY = "QUANTPIPE_MAX_BODY_BYTES"
ENV_DRIFT_WINDOW = "QUANTPIPE_DRIFT_WINDOW"
DEFAULT_DRIFT_WINDOW = 10_000
# prometheus_client's multiprocess mode: every worker writes its samples here.
ENV_PROMETHEUS_DIR = "PROMETHEUS_MULTIPROC_DIR"


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _error(status: int, message: str) -> Response:
    return _json({"error": message}, status)


@dataclass(frozen=True)
class InferRequest:
    """A parsed, validated infer request.

    Attributes
    ----------
    id : str or None
    X : ndarray of shape (n, n_features), float64
    binary_output : bool
        Whether the predictions go back as raw bytes.
    """

    id: str | None
    X: np.ndarray
    binary_output: bool


def _short(value: Any, limit: int = 40) -> str:
    """``repr`` of a client-sent value, cut short so that no error message can be huge."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _object(value: Any, where: str) -> dict[str, Any]:
    """An optional JSON object: absent or null gives {}, anything else must be an object."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RequestError(400, f"{where} must be an object")
    return value


def _split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    if not header_length.isdigit() or int(header_length) > len(body):
        raise RequestError(
            400,
            f"Inference-Header-Content-Length {_short(header_length)} must be a whole number no "
            f"larger than the body ({len(body)} bytes)",
        )
    n = int(header_length)
    return body[:n], body[n:]


def _has_bool(data: list) -> bool:
    flat = itertools.chain.from_iterable(x if isinstance(x, list) else [x] for x in data)
    return bool in map(type, flat)


def _tensor_from_json(data: Any, json_part: bytes, where: str) -> np.ndarray:
    if not isinstance(data, list):
        raise RequestError(400, f"{where}: 'data' must be a list of numbers")
    try:
        array = np.array(data)
    except ValueError:  # ragged nesting
        raise RequestError(400, f"{where}: 'data' is ragged: rows of different lengths") from None
    if array.dtype.kind not in "fiu" or array.dtype == np.bool_:
        raise RequestError(400, f"{where}: 'data' must hold numbers only")
    # JSON true/false become 1/0 among numbers; rule them out, scanning only if the bytes occur
    if (b"true" in json_part or b"false" in json_part) and _has_bool(data):
        raise RequestError(400, f"{where}: 'data' must hold numbers only, not true/false")
    return array


def parse_infer_request(body: bytes, header_length: str | None, n_features: int) -> InferRequest:
    """Parse and validate an infer request body.

    Parameters
    ----------
    body : bytes
        The whole request body.
    header_length : str or None
        The ``Inference-Header-Content-Length`` header, if sent.
    n_features : int

    Returns
    -------
    InferRequest

    Raises
    ------
    RequestError
        400, naming the problem: malformed JSON, a missing or malformed field, a datatype
        other than FP64/FP32, a shape other than ``[n, n_features]``, values that are not
        numbers or not finite, binary data of the wrong size, an unknown output.
    """
    json_part, tail = _split_body(body, header_length)
    try:
        request = orjson.loads(json_part)
    except orjson.JSONDecodeError as exc:
        raise RequestError(400, f"malformed JSON: {exc}") from None
    if not isinstance(request, dict):
        raise RequestError(400, "the request must be a JSON object with 'inputs'")
    request_id = request.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise RequestError(400, "'id' must be a string")
    params = _object(request.get("parameters"), "'parameters'")
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise RequestError(400, f"'inputs' must be a list of one tensor, {INPUT_NAME!r}")
    tensor = inputs[0]
    where = f"input {_short(tensor.get('name', INPUT_NAME))}"
    datatype = tensor.get("datatype")
    if not isinstance(datatype, str) or datatype not in DTYPES:
        raise RequestError(
            400, f"{where}: datatype {_short(datatype)} is not supported; use FP64 or FP32"
        )
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or not all(type(d) is int for d in shape)
        or shape[0] < 1
        or shape[1] != n_features
    ):
        raise RequestError(
            400, f"{where}: shape {_short(shape)} is not allowed; use [n, {n_features}] with n >= 1"
        )
    n = shape[0]
    dtype = DTYPES[datatype]
    tparams = _object(tensor.get("parameters"), f"{where}: 'parameters'")
    size = tparams.get("binary_data_size")
    if size is not None:
        expected = n * n_features * dtype.itemsize
        if type(size) is not int or size != expected or len(tail) != size:
            raise RequestError(
                400,
                f"{where}: binary_data_size {_short(size)} with {len(tail)} bytes after the JSON "
                f"header; shape {shape} of {datatype} needs exactly {expected}",
            )
        X = np.frombuffer(tail, dtype=dtype).reshape(n, n_features)
    else:
        if tail:
            raise RequestError(400, f"{where}: bytes after the JSON header but no binary_data_size")
        if "data" not in tensor:
            raise RequestError(400, f"{where}: no 'data' and no binary_data_size")
        array = _tensor_from_json(tensor["data"], json_part, where)
        if array.size != n * n_features or array.shape not in ((n * n_features,), (n, n_features)):
            raise RequestError(
                400,
                f"{where}: 'data' has shape {list(array.shape)}, which does not match shape "
                f"{shape}",
            )
        with np.errstate(over="ignore"):  # FP32 overflow becomes inf, refused just below
            X = array.astype(dtype).reshape(n, n_features)
    X = X.astype(np.float64)
    if not np.isfinite(X).all():
        row, col = (int(i) for i in np.argwhere(~np.isfinite(X))[0])
        raise RequestError(400, f"{where}: row {row}, column {col} is not a finite number")
    binary = params.get("binary_data_output", False)
    if type(binary) is not bool:
        raise RequestError(400, "'parameters.binary_data_output' must be true or false")
    outputs = request.get("outputs")
    if outputs is not None:
        if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
            raise RequestError(400, "'outputs' must be a list of objects with a 'name'")
        for output in outputs:
            if output.get("name") != OUTPUT_NAME:
                raise RequestError(
                    400,
                    f"unknown output {_short(output.get('name'))}; this model has {OUTPUT_NAME!r}",
                )
            oparams = _object(output.get("parameters"), "an output's 'parameters'")
            if type(oparams.get("binary_data", binary)) is not bool:
                raise RequestError(
                    400, "an output's 'parameters.binary_data' must be true or false"
                )
            binary = oparams.get("binary_data", binary)
    return InferRequest(id=request_id, X=X, binary_output=binary)


def infer_response(
    model_name: str, request: InferRequest, predictions: np.ndarray
) -> tuple[bytes, dict[str, str]]:
    """The response body and headers for predictions of shape (n,)."""
    output: dict[str, Any] = {"name": OUTPUT_NAME, "shape": [len(predictions)], "datatype": "FP64"}
    payload = {
        "model_name": model_name,
        "model_version": MODEL_VERSION,
        "id": request.id if request.id is not None else str(uuid.uuid4()),
        "outputs": [output],
    }
    if not request.binary_output:
        output["data"] = predictions
        return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY), {
            "content-type": "application/json"
        }
    raw = predictions.astype("<f8").tobytes()
    output["parameters"] = {"binary_data_size": len(raw)}
    header = orjson.dumps(payload)
    return header + raw, {
        "content-type": "application/octet-stream",
        "inference-header-content-length": str(len(header)),
    }


class DriftWindow:
    """The most recent inputs, in a fixed-size ring buffer (memory stays bounded), shared
    by the request handlers under a lock, and scored against the training reference."""

    def __init__(self, reference: Reference, size: int):
        self.reference = reference
        self.buffer = np.empty((size, len(reference.feature_names)))
        self.seen = 0  # rows ever added; the window holds the last min(seen, size)
        self.lock = threading.Lock()

    def add(self, X: np.ndarray) -> None:
        size = self.buffer.shape[0]
        with self.lock:
            rows = X[-size:]
            # global row index g lives at slot g % size, so the oldest row is overwritten first
            start = (self.seen + len(X) - len(rows)) % size
            first = min(len(rows), size - start)
            self.buffer[start : start + first] = rows[:first]
            self.buffer[: len(rows) - first] = rows[first:]
            self.seen += len(X)

    def scores(self) -> tuple[int, dict[str, dict[str, float]]]:
        """Rows in the window and each feature's PSI and KS against the training data."""
        with self.lock:
            window = self.buffer[: min(self.seen, self.buffer.shape[0])].copy()
        if len(window) == 0:
            return 0, {}
        return len(window), feature_drift(self.reference, window)


class Metrics:
    """Prometheus metrics of one app, in a registry of their own."""

    def __init__(self, model_names: Sequence[str], drift: DriftWindow | None = None):
        self.registry = CollectorRegistry()
        self.models = set(model_names)
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
                multiprocess_mode="max",
            )
            self.psi = Gauge(
                "quantpipe_drift_psi",
                "Population stability index of the recent inputs against the training data.",
                ["feature"],
                registry=self.registry,
                multiprocess_mode="max",
            )
            self.ks = Gauge(
                "quantpipe_drift_ks",
                "Kolmogorov-Smirnov statistic of the recent inputs against the training data.",
                ["feature"],
                registry=self.registry,
                multiprocess_mode="max",
            )

    def exposition(self) -> bytes:
        """The metrics in Prometheus text format, summed over worker processes if several
        (the drift gauges: the largest worker's)."""
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
        # unknown names share one label value, so requests cannot grow the label set
        label = model if model in self.models else "_unknown"
        self.requests.labels(label, endpoint, str(status)).inc()


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
    metrics = Metrics(list(registry), drift)
    n_features = len(registry.feature_names)

    def resolve(request: Request, endpoint: str) -> str:
        name = request.path_params["name"]
        version = request.path_params.get("version")
        if name not in registry:
            metrics.count(name, endpoint, 404)
            raise RequestError(404, f"unknown model {name!r}; available: {', '.join(registry)}")
        if version is not None and version != MODEL_VERSION:
            metrics.count(name, endpoint, 404)
            raise RequestError(
                404, f"model {name!r} has no version {version!r}; available: {MODEL_VERSION}"
            )
        return name

    async def live(request: Request) -> Response:
        return _json({"live": True})

    async def ready(request: Request) -> Response:
        return _json({"ready": True})

    async def server_metadata(request: Request) -> Response:
        return _json({"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS})

    async def model_metadata(request: Request) -> Response:
        name = resolve(request, "metadata")
        model = registry.get(name)
        metrics.count(name, "metadata", 200)
        return _json(
            {
                "name": name,
                "versions": [MODEL_VERSION],
                "platform": PLATFORM,
                "inputs": [{"name": INPUT_NAME, "datatype": "FP64", "shape": [-1, n_features]}],
                "outputs": [{"name": OUTPUT_NAME, "datatype": "FP64", "shape": [-1]}],
                "parameters": {
                    "feature_names": list(registry.feature_names),
                    "kind": model.header["kind"],
                    "bits": model.bits,
                    "param_bytes": model.param_bytes,
                },
            }
        )

    async def model_ready(request: Request) -> Response:
        name = resolve(request, "ready")
        metrics.count(name, "ready", 200)
        return _json({"name": name, "ready": True})

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
            raise RequestError(413, f"request body over the {max_body_bytes}-byte limit")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body_bytes:
                raise RequestError(413, f"request body over the {max_body_bytes}-byte limit")
            chunks.append(chunk)
        return b"".join(chunks)

    async def infer(request: Request) -> Response:
        name = resolve(request, "infer")
        try:
            body = await read_body(request)
            start = time.perf_counter()
            parsed = parse_infer_request(body, request.headers.get(HEADER_LENGTH), n_features)
        except RequestError as exc:
            metrics.count(name, "infer", exc.status)
            raise
        predictions = registry.get(name).predict(parsed.X)
        if drift is not None:
            drift.add(parsed.X)
        content, headers = infer_response(name, parsed, predictions)
        metrics.latency.labels(name).observe(time.perf_counter() - start)
        metrics.rows.labels(name).inc(len(predictions))
        metrics.count(name, "infer", 200)
        return Response(content, headers=headers)

    async def prometheus(request: Request) -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    async def request_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestError)
        return _error(exc.status, exc.message)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _error(exc.status_code, f"{exc.detail}: {request.method} {request.url.path}")

    async def disconnected(request: Request, exc: Exception) -> Response:
        return _error(400, "client disconnected before sending the whole body")

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
    return Starlette(
        routes=routes,
        exception_handlers={
            RequestError: request_error,
            HTTPException: http_error,
            ClientDisconnect: disconnected,
        },
    )


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


def _body(args: argparse.Namespace) -> None:
    import uvicorn  # the server's own dependency; not needed to build the app in tests

    if args.workers < 1:
        raise QuantpipeError(f"--workers {args.workers} is not allowed; use 1 or more")
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
    }
    if args.workers == 1:
        uvicorn.run(
            create_app(registry, args.max_body_bytes, reference, args.drift_window), **options
        )
        return
    with tempfile.TemporaryDirectory(prefix="quantpipe-prometheus-") as prometheus_dir:
        os.environ[ENV_MODELS_DIR] = str(args.models_dir.resolve())
        os.environ[ENV_MAX_BODY] = str(args.max_body_bytes)
        os.environ[ENV_DRIFT_WINDOW] = str(args.drift_window)
        os.environ[ENV_PROMETHEUS_DIR] = prometheus_dir
        uvicorn.run(
            "quantpipe.serve:app_from_environment", factory=True, workers=args.workers, **options
        )


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
