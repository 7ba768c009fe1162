"""Infer requests: read within limits, parsed, predicted, answered and counted.

The work behind ``POST /v2/models/{name}/infer``, shared by the route in
:mod:`quantpipe.serve.app` and :class:`FastInfer`, which answers a served model's requests
before any routing. What the handlers share is a :class:`Server`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import orjson
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from quantpipe.errors import InputError, RequestError
from quantpipe.mnist.evaluation import DigitsNet
from quantpipe.registry import ModelRegistry
from quantpipe.serve.bodies import Budget, read_body
from quantpipe.serve.digits import answer_digits
from quantpipe.serve.protocol import (
    HEADER_LENGTH,
    MODEL_VERSION,
    infer_response,
    parse_infer_request,
    whole_number,
)
from quantpipe.serve.telemetry import DriftWindow, Metrics

#: Infer bodies above this many bytes are parsed and predicted off the event loop.
OFFLOAD_BYTES = 1024 * 1024
#: Digits infer bodies above this many bytes (about 10 images) are answered off the event loop.
DIGITS_OFFLOAD_BYTES = 8 * 1024
#: Large infer bodies decoded at once per worker process; the others wait their turn.
LARGE_AT_ONCE = 2


@dataclass(frozen=True)
class Server:
    """What the handlers of one app share (its ``state.server``)."""

    registry: ModelRegistry
    #: The digits networks, by name (``mnist-fp32``, ``mnist-q8``, ...).
    digits: Mapping[str, DigitsNet]
    metrics: Metrics
    drift: DriftWindow | None
    max_body_bytes: int
    max_json_bytes: int
    held: Budget
    large: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(LARGE_AT_ONCE, "quantpipe-infer")
    )

    @property
    def n_features(self) -> int:
        """Features a row of every model has."""
        return len(self.registry.feature_names)


def json_response(data: Any, status: int = 200) -> Response:
    """``data`` as a JSON response."""
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def error_response(status: int, message: str) -> Response:
    """The protocol's error: ``{"error": message}`` with ``status``."""
    return json_response({"error": message}, status)


class Answer(NamedTuple):
    """An infer request's answer, and what :meth:`record` counts once it is sent.

    A named tuple: immutable, and made in half the time of a frozen dataclass.
    """

    content: bytes
    headers: dict[str, str]
    model: str
    #: From the body being read to the response being formatted.
    seconds: float
    rows: int
    #: The rows for the drift window, shape (n, n_features); None for a digits model.
    inputs: np.ndarray | None

    def record(self, server: Server) -> None:
        """Count the answered request, its latency and rows; add its rows to the drift window.

        The answer's bookkeeping, done after its last byte is handed to the transport
        (:class:`FastInfer`): the client does not wait for it (about 4 µs of a 1-row
        request's work, timed alone). It runs before the worker reads anything more, so a
        request that worker reads after the answer was sent sees it counted; with several
        workers, a ``/metrics`` answered by another one at that very moment may not yet.
        Should it fail (a bug), :class:`quantpipe.serve.app.CatchAll` logs it and counts a
        500, though the client has its 200.
        """
        if server.drift is not None and self.inputs is not None:
            server.drift.add(self.inputs)
        server.metrics.answered(self.model, self.seconds, self.rows)


def answer(server: Server, name: str, body: bytes, header_length: str | None) -> Answer:
    """Parse, predict and format: the work of an infer request once its body is read."""
    start = time.perf_counter()
    if name in server.digits:
        content, headers, images = answer_digits(name, server.digits[name], body, header_length)
        return Answer(content, headers, name, time.perf_counter() - start, images, None)
    parsed = parse_infer_request(body, header_length, server.n_features)
    try:
        predictions = server.registry.get(name).predict(parsed.X)
    except InputError as exc:
        raise RequestError(400, str(exc)) from None
    content, headers = infer_response(name, parsed, predictions)
    seconds = time.perf_counter() - start
    return Answer(content, headers, name, seconds, len(predictions), parsed.X)


async def read_and_answer(
    server: Server,
    name: str,
    header_length: str | None,
    content_length: str | None,
    receive: Receive,
) -> Answer:
    """Predictions for the rows of an infer request to model ``name``: read and answer.

    A refusal is counted here; the answer is counted by its :meth:`Answer.record`, which the
    caller runs once it is sent.

    Raises
    ------
    RequestError
        For a 4xx or a 503, counted.
    ClientDisconnect
        If the client leaves before the whole body is read.
    """
    try:
        if header_length is None:
            limit, what = server.max_json_bytes, "JSON request body"
        else:
            limit, what = server.max_body_bytes, "request body"
        body = await read_body(content_length, receive, limit, what, server.held)
        try:
            json_length = whole_number(header_length)
            if json_length is not None and json_length > server.max_json_bytes:
                raise RequestError(413, f"JSON header over the {server.max_json_bytes}-byte limit")
            answer = await answered(server, name, body, header_length)
        finally:
            server.held.give(len(body))
    except RequestError as exc:
        server.metrics.count(name, "infer", exc.status)
        raise
    return answer


async def answered(server: Server, name: str, body: bytes, header_length: str | None) -> Answer:
    """:func:`answer` on the event loop for a small body, in a worker thread for a large one.

    A digits body is large sooner: an image costs up to 2 ms (fp32), a housing row 0.1 µs.
    """
    limit = DIGITS_OFFLOAD_BYTES if name in server.digits else OFFLOAD_BYTES
    if len(body) <= limit:
        return answer(server, name, body, header_length)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(server.large, answer, server, name, body, header_length)


def request_error_response(exc: RequestError) -> Response:
    """The answer to a :class:`RequestError`; a 413 or 503 also ends the connection."""
    response = error_response(exc.status, exc.message)
    if exc.status in (413, 503):  # the rest of the body will not be read: end the connection
        response.headers["connection"] = "close"
    if exc.status == 503:
        response.headers["retry-after"] = "1"
    return response


def disconnected_response() -> Response:
    """The answer to a body cut short (no one may read it: the client is gone)."""
    return error_response(400, "client disconnected before sending the whole body")


_HEADER_LENGTH = HEADER_LENGTH.encode()


class FastInfer:
    """ASGI middleware: ``POST`` infer requests to a served model, without routing.

    A request to ``/v2/models/{name}/infer`` (or ``.../versions/1/infer``) of a model the
    server has is answered here, by the code Starlette's route runs too
    (:func:`read_and_answer`), with the same answers and errors, but without the route
    matching (seven patterns tried), the request object and the exception handlers; the
    answer goes out as two ASGI messages, and is counted after them (:meth:`Answer.record`;
    the route counts before answering). Measured in process, with the metrics' label
    lookups cached as well, a 1-row request took 30 µs instead of 58. Anything else goes on to the
    routes: other methods, unknown names and versions (405, 404).
    """

    def __init__(self, app: ASGIApp):
        self.app = app
        self.paths: dict[str, str] | None = None

    def _paths(self, server: Server) -> dict[str, str]:
        names = [*server.registry, *server.digits]
        infer_paths = {f"/v2/models/{name}/infer": name for name in names}
        infer_paths |= {f"/v2/models/{n}/versions/{MODEL_VERSION}/infer": n for n in names}
        return infer_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a known model's infer request; pass anything else on."""
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        server: Server = scope["app"].state.server
        if self.paths is None:
            self.paths = self._paths(server)
        path, root = scope["path"], scope.get("root_path", "")
        name = self.paths.get(path[len(root) :] if root and path.startswith(root) else path)
        if name is None:
            await self.app(scope, receive, send)
            return
        scope["path_params"] = {"name": name}  # for CatchAll's count of a 500
        header_length = content_length = None
        for key, value in scope["headers"]:  # the first of each, as Starlette's headers.get
            if key == b"content-length" and content_length is None:
                content_length = value.decode("latin-1")
            elif key == _HEADER_LENGTH and header_length is None:
                header_length = value.decode("latin-1")
        try:
            answer = await read_and_answer(server, name, header_length, content_length, receive)
        except RequestError as exc:
            await request_error_response(exc)(scope, receive, send)
            return
        except ClientDisconnect:
            await disconnected_response()(scope, receive, send)
            return
        content, headers = answer.content, answer.headers
        raw = [(b"content-length", b"%d" % len(content))]  # what starlette's Response sends
        raw += [(key.encode("latin-1"), value.encode("latin-1")) for key, value in headers.items()]
        try:
            await send({"type": "http.response.start", "status": 200, "headers": raw})
            await send({"type": "http.response.body", "body": content})
        finally:  # counted even if sending fails or the task is cancelled (at shutdown)
            answer.record(server)
