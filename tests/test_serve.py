"""The Open Inference Protocol server, started for real on a loopback port, over HTTP."""

from __future__ import annotations

import asyncio
import http.client
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_array_equal

from quantpipe.data import FEATURE_NAMES
from quantpipe.errors import RequestError
from quantpipe.registry import ModelRegistry
from quantpipe.serve import protocol
from quantpipe.serve.app import create_app
from quantpipe.serve.protocol import parse_infer_request
from tests.conftest import REPO_ROOT
from tests.models import rows, write_models

MAX_BODY = 200_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, port: int):
        self.port = port

    def call(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            if isinstance(body, dict | list):
                body = json.dumps(body).encode()
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def json(self, method, path, body=None, headers=None):
        status, _, content = self.call(method, path, body, headers)
        return status, json.loads(content)


class InProcess(Server):
    """The app itself, called through ASGI in this process: the same interface as
    :class:`Server`, without a socket or a uvicorn process."""

    def __init__(self, app):
        self.app = app

    def call(self, method, path, body=None, headers=None):
        if isinstance(body, dict | list):
            body = json.dumps(body).encode()
        body = body or b""
        # headers: a dict, or a list of pairs (to send one twice)
        pairs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        pairs.append(("content-length", str(len(body))))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(k.lower().encode(), v.encode()) for k, v in pairs],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
        }
        incoming = [{"type": "http.request", "body": body, "more_body": False}]
        sent = []

        async def receive():
            return incoming.pop(0) if incoming else {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)

        asyncio.run(self.app(scope, receive, send))
        start = next(m for m in sent if m["type"] == "http.response.start")
        content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, content


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return write_models(tmp_path_factory.mktemp("serve") / "models")


def start_server(models, *extra):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "quantpipe.serve",
            "--models-dir",
            str(models),
            "--port",
            str(port),
            "--max-body-bytes",
            str(MAX_BODY),
            "-q",
            *extra,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    srv = Server(port)
    deadline = time.monotonic() + 30
    while True:
        try:
            if srv.call("GET", "/v2/health/ready")[0] == 200:
                break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"server did not start:\n{proc.communicate()[0]}")
        time.sleep(0.1)
    return proc, srv


def stop_server(proc):
    proc.terminate()
    output = proc.communicate(timeout=20)[0]
    assert "Traceback" not in output, output


@pytest.fixture(scope="module")
def app(models):
    return InProcess(create_app(ModelRegistry.from_directory(models), MAX_BODY))


@pytest.fixture(scope="module")
def server(models):
    proc, srv = start_server(models)
    yield srv
    stop_server(proc)


def eventually(read, done, seconds: float = 5.0):
    """``read()`` again until ``done`` (a text it must contain, or a test of it) or time is up.

    For what a worker records just after an answer is sent (:meth:`Answer.record`): another
    process may look a moment before it does. Returns the last reading.
    """
    check = done if callable(done) else (lambda text: done in text)
    deadline = time.monotonic() + seconds
    value = read()
    while not check(value) and time.monotonic() < deadline:
        time.sleep(0.01)
        value = read()
    return value


@pytest.mark.slow
def test_two_workers_serve_and_sum_their_metrics(models):
    proc, srv = start_server(models, "--workers", "2")
    try:
        for _ in range(20):  # new connections, spread over both workers
            assert (
                srv.call("POST", "/v2/models/q8/infer", json.dumps(infer_body(rows(2))))[0] == 200
            )
        # a worker counts an answer just after sending it: the other may scrape a moment early
        counted = 'quantpipe_requests_total{endpoint="infer",model="q8",status="200"} 20.0'
        text = eventually(lambda: srv.call("GET", "/metrics")[2].decode(), counted)
        assert counted in text
        assert 'quantpipe_inferred_rows_total{model="q8"} 40.0' in text  # counted before the 200
    finally:
        stop_server(proc)


def test_workers_must_be_positive(models):
    result = subprocess.run(
        [sys.executable, "-m", "quantpipe.serve", "--models-dir", str(models), "--workers", "0"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=30,
    )
    assert result.returncode == 1
    assert result.stderr == "error: --workers 0 is not allowed; use 1 or more\n"


def infer_body(X, datatype="FP64", nested=False, **extra):
    data = X.tolist() if nested else X.ravel().tolist()
    tensor = {"name": "input-0", "shape": list(X.shape), "datatype": datatype, "data": data}
    return {"inputs": [tensor], **extra}


def expected(models, name, X):
    return ModelRegistry.from_directory(models).get(name).predict(X)


def test_health_and_server_metadata(server):
    assert server.json("GET", "/v2/health/live") == (200, {"live": True})
    assert server.json("GET", "/v2/health/ready") == (200, {"ready": True})
    status, meta = server.json("GET", "/v2")
    assert status == 200
    assert meta["name"] == "quantpipe"
    assert "binary_tensor_data" in meta["extensions"]


@pytest.mark.parametrize("prefix", ["/v2/models/q8", "/v2/models/q8/versions/1"])
def test_model_metadata_and_ready(server, prefix):
    status, meta = server.json("GET", prefix)
    assert status == 200
    assert meta["name"] == "q8"
    assert meta["versions"] == ["1"]
    assert meta["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 8]}]
    assert meta["outputs"] == [{"name": "predictions", "datatype": "FP64", "shape": [-1]}]
    assert meta["parameters"]["bits"] == 8
    assert server.json("GET", prefix + "/ready") == (200, {"name": "q8", "ready": True})


@pytest.mark.parametrize("name", ["fp64", "q8", "q16"])
@pytest.mark.parametrize("nested", [False, True])
def test_infer_json_equals_the_predictor_bit_for_bit(server, models, name, nested):
    X = rows(50, seed=1)
    status, answer = server.json(
        "POST", f"/v2/models/{name}/infer", infer_body(X, nested=nested, id="req-1")
    )
    assert status == 200, answer
    assert answer["model_name"] == name
    assert answer["id"] == "req-1"
    (output,) = answer["outputs"]
    assert (output["name"], output["shape"], output["datatype"]) == ("predictions", [50], "FP64")
    assert_array_equal(output["data"], expected(models, name, X))


def test_infer_versioned_path_fp32_and_generated_id(server, models):
    X = rows(3).astype(np.float32)
    status, answer = server.json("POST", "/v2/models/q16/versions/1/infer", infer_body(X, "FP32"))
    assert status == 200, answer
    assert len(answer["id"]) == 36
    assert_array_equal(answer["outputs"][0]["data"], expected(models, "q16", X.astype(np.float64)))


def test_requested_outputs_are_honoured(server):
    body = infer_body(rows(2), outputs=[{"name": "predictions"}])
    assert server.json("POST", "/v2/models/q8/infer", body)[0] == 200
    body = infer_body(rows(2), outputs=[{"name": "probabilities"}])
    assert server.json("POST", "/v2/models/q8/infer", body) == (
        400,
        {"error": "unknown output 'probabilities'; this model has 'predictions'"},
    )


def binary_request(X, datatype="FP64", **params):
    tensor = {"name": "input-0", "shape": list(X.shape), "datatype": datatype}
    raw = X.astype("<f8" if datatype == "FP64" else "<f4").tobytes()
    tensor["parameters"] = {"binary_data_size": len(raw)}
    header = json.dumps({"inputs": [tensor], **params}).encode()
    return header + raw, {"Inference-Header-Content-Length": str(len(header))}


def split_binary_response(headers, content):
    n = int(headers["inference-header-content-length"])
    return json.loads(content[:n]), content[n:]


@pytest.mark.parametrize("datatype", ["FP64", "FP32"])
def test_binary_tensor_in_and_out(server, models, datatype):
    X = rows(1000, seed=2)
    body, headers = binary_request(X, datatype, parameters={"binary_data_output": True})
    status, response_headers, content = server.call("POST", "/v2/models/q8/infer", body, headers)
    assert status == 200, content
    header, raw = split_binary_response(response_headers, content)
    (output,) = header["outputs"]
    assert output["parameters"] == {"binary_data_size": 8000}
    assert "data" not in output
    sent = X if datatype == "FP64" else X.astype(np.float32).astype(np.float64)
    assert_array_equal(np.frombuffer(raw, "<f8"), expected(models, "q8", sent))


def test_binary_input_json_output_and_per_output_binary(server, models):
    X = rows(4)
    body, headers = binary_request(X)
    status, answer = server.json("POST", "/v2/models/fp64/infer", body, headers)
    assert status == 200
    assert_array_equal(answer["outputs"][0]["data"], expected(models, "fp64", X))
    body, headers = binary_request(
        X, outputs=[{"name": "predictions", "parameters": {"binary_data": True}}]
    )
    status, response_headers, content = server.call("POST", "/v2/models/fp64/infer", body, headers)
    _, raw = split_binary_response(response_headers, content)
    assert_array_equal(np.frombuffer(raw, "<f8"), expected(models, "fp64", X))


def _tensor(**fields):
    base = {"name": "input-0", "shape": [1, 8], "datatype": "FP64", "data": [1.0] * 8}
    return {"inputs": [{**base, **fields}]}


BAD_JSON_REQUESTS = [
    ("malformed", b'{"inputs": [', 400, "malformed JSON: "),
    ("not an object", b"[1, 2]", 400, "the request must be a JSON object with 'inputs'"),
    ("no inputs", {"id": "x"}, 400, "'inputs' must be a list of one tensor"),
    ("two inputs", {"inputs": [_tensor()["inputs"][0]] * 2}, 400, "'inputs' must be a list"),
    ("datatype", _tensor(datatype="INT32"), 400, "datatype 'INT32' is not supported; use FP64"),
    ("shape rank", _tensor(shape=[8]), 400, "shape [8] is not allowed; use [n, 8] with n >= 1"),
    ("shape cols", _tensor(shape=[1, 7], data=[1.0] * 7), 400, "shape [1, 7] is not allowed"),
    ("shape zero", _tensor(shape=[0, 8], data=[]), 400, "shape [0, 8] is not allowed"),
    ("shape float", _tensor(shape=[1.0, 8]), 400, "shape [1.0, 8] is not allowed"),
    ("data short", _tensor(data=[1.0] * 7), 400, "'data' has shape [7], which does not match"),
    ("data ragged", _tensor(data=[[1.0] * 8, [1.0]]), 400, "'data' is ragged"),
    ("string", _tensor(data=[1.0] * 7 + ["1.5"]), 400, "'data' must hold numbers only"),
    ("bool", _tensor(data=[1.0] * 7 + [True]), 400, "numbers only, not true/false"),
    ("null", _tensor(data=[1.0] * 7 + [None]), 400, "'data' must hold numbers only"),
    ("object", _tensor(data=[{}] * 8), 400, "'data' must hold numbers only"),
    ("data not list", _tensor(data="12345678"), 400, "'data' must be a list of numbers"),
    (
        "no data",
        {"inputs": [{"name": "x", "shape": [1, 8], "datatype": "FP64"}]},
        400,
        "no 'data' and no binary_data_size",
    ),
    (
        "infinite",
        b'{"inputs":[{"name":"x","shape":[1,8],"datatype":"FP64","data":[1e999,1,1,1,1,1,1,1]}]}',
        400,
        "malformed JSON: number is infinity",
    ),
    (
        "fp32 overflow",
        _tensor(datatype="FP32", data=[1e300] * 8),
        400,
        "row 0, column 0 is not a finite number",
    ),
    ("id", {**_tensor(), "id": 5}, 400, "'id' must be a string"),
    ("params list", {**_tensor(), "parameters": []}, 400, "'parameters' must be an object"),
    ("params zero", {**_tensor(), "parameters": 0}, 400, "'parameters' must be an object"),
    (
        "huge name",
        _tensor(name="n" * 100_000, datatype="X"),
        400,
        "the input's 'name' must be a string of 1 to 256 characters, not 'nnnnnnnnnn",
    ),
    (
        "long name",
        _tensor(name="n" * 200, datatype="X"),
        400,
        "n...nnnnnnnnnnnnnnnnnn': datatype 'X'",
    ),
    ("no name", {"inputs": [{"shape": [1, 8], "datatype": "FP64"}]}, 400, "not None"),
    ("name number", _tensor(name=7), 400, "the input's 'name' must be a string of 1 to 256"),
    ("name empty", _tensor(name=""), 400, "the input's 'name' must be a string of 1 to 256"),
    (
        "binary flag",
        {**_tensor(), "parameters": {"binary_data_output": "yes"}},
        400,
        "'parameters.binary_data_output' must be true or false",
    ),
]


@pytest.mark.parametrize(
    ("case", "body", "status", "message"), BAD_JSON_REQUESTS, ids=[c[0] for c in BAD_JSON_REQUESTS]
)
def test_bad_requests_get_4xx_with_an_error_body(app, case, body, status, message):
    got, answer = app.json("POST", "/v2/models/q8/infer", body)
    assert got == status, answer
    assert set(answer) == {"error"}
    assert message in answer["error"]
    assert len(answer["error"]) < 300


@pytest.mark.parametrize(("case", "body", "status", "message"), BAD_JSON_REQUESTS[:3])
def test_bad_requests_over_http_get_the_same_answer(server, app, case, body, status, message):
    """A few of the matrix over real HTTP: uvicorn passes the app's status and body on."""
    assert server.json("POST", "/v2/models/q8/infer", body) == app.json(
        "POST", "/v2/models/q8/infer", body
    )


def test_bad_binary_requests(server):
    body, headers = binary_request(rows(2))
    for length, message in [
        ("x", "Inference-Header-Content-Length 'x' must be a whole number"),
        (str(len(body) + 1), "must be a whole number no larger than the body"),
    ]:
        got = server.json(
            "POST",
            "/v2/models/q8/infer",
            body,
            {**headers, "Inference-Header-Content-Length": length},
        )
        assert got[0] == 400
        assert message in got[1]["error"]
    got = server.json("POST", "/v2/models/q8/infer", body[:-8], headers)
    assert got[0] == 400
    assert "binary_data_size 128 with 120 bytes after the JSON header" in got[1]["error"]
    header_only = body[: int(headers["Inference-Header-Content-Length"])]
    got = server.json("POST", "/v2/models/q8/infer", header_only + b"\0" * 8, {})
    assert got[0] == 400
    assert "malformed JSON" in got[1]["error"]


def test_unknown_model_version_route_and_method(server):
    assert server.json("POST", "/v2/models/q3/infer", _tensor()) == (
        404,
        {"error": "unknown model 'q3'; available: fp64, q8, q16"},
    )
    assert server.json("GET", "/v2/models/q8/versions/2") == (
        404,
        {"error": "model 'q8' has no version '2'; available: 1"},
    )
    assert server.json("GET", "/v3/anything") == (404, {"error": "Not Found: GET /v3/anything"})
    assert server.json("GET", "/v2/models/q8/infer") == (
        405,
        {"error": "Method Not Allowed: GET /v2/models/q8/infer"},
    )


def test_body_over_the_limit_gets_413(server):
    X = rows(MAX_BODY // 64 + 10)
    body, headers = binary_request(X)
    assert server.json("POST", "/v2/models/q8/infer", body, headers) == (
        413,
        {"error": f"request body over the {MAX_BODY}-byte limit"},
    )
    # a chunked body, with no Content-Length to check up front
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request(
        "POST",
        "/v2/models/q8/infer",
        body=iter([body[:100_000], body[100_000:]]),
        headers={**headers, "Transfer-Encoding": "chunked"},
        encode_chunked=True,
    )
    response = conn.getresponse()
    assert response.status == 413
    conn.close()
    assert server.json("GET", "/v2/health/ready")[0] == 200


def test_prometheus_metrics(server):
    server.call("POST", "/v2/models/q16/infer", json.dumps(infer_body(rows(3))).encode())
    server.call("POST", "/v2/models/q16/infer", b"{")
    status, headers, content = server.call("GET", "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    text = content.decode()
    assert 'quantpipe_requests_total{endpoint="infer",model="q16",status="200"}' in text
    assert 'quantpipe_requests_total{endpoint="infer",model="q16",status="400"}' in text
    assert 'quantpipe_infer_latency_seconds_bucket{le="0.001",model="q16"}' in text
    assert 'quantpipe_inferred_rows_total{model="q16"}' in text


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.sampled_from(
                [
                    "name",
                    "shape",
                    "datatype",
                    "data",
                    "parameters",
                    "id",
                    "inputs",
                    "outputs",
                    "binary_data_size",
                    "binary_data_output",
                    "binary_data",
                ]
            )
            | st.text(max_size=4),
            children,
            max_size=5,
        )
    ),
    max_leaves=30,
)


@st.composite
def mutated_requests(draw):
    body = _tensor(data=draw(st.lists(st.floats(-1e6, 1e6), min_size=8, max_size=8)))
    tensor = body["inputs"][0]
    for key in draw(
        st.lists(st.sampled_from(["name", "shape", "datatype", "data", "parameters"]), max_size=3)
    ):
        tensor[key] = draw(JSON_VALUES)
    if draw(st.booleans()):
        body[draw(st.sampled_from(["id", "parameters", "outputs", "inputs"]))] = draw(JSON_VALUES)
    return json.dumps(body).encode()


BODIES = mutated_requests() | JSON_VALUES.map(lambda v: json.dumps(v).encode()) | st.binary()
HEADER_LENGTHS = (
    st.none()
    | st.integers(-5, 400).map(str)
    | st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=3)
)


@settings(
    # QUANTPIPE_FUZZ_EXAMPLES=5000 pytest tests/test_serve.py -k parser  for a longer campaign
    max_examples=int(os.environ.get("QUANTPIPE_FUZZ_EXAMPLES", "300")),
    deadline=None,
)
@given(body=BODIES, header_length=HEADER_LENGTHS)
def test_the_parser_refuses_a_bad_body_only_with_a_request_error(body, header_length):
    """In process, many examples: parsing succeeds or raises a 4xx RequestError, never
    anything else (which the server would answer with a 5xx)."""
    try:
        parsed = parse_infer_request(body, header_length, len(FEATURE_NAMES))
    except RequestError as exc:
        refused = exc
    else:
        assert parsed.X.shape[1] == len(FEATURE_NAMES)
        return
    assert 400 <= refused.status < 500
    assert refused.message


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=BODIES, header_length=HEADER_LENGTHS)
def test_no_infer_body_gets_a_5xx(server, body, header_length):
    """Over real HTTP, fewer examples: the server maps every outcome to a status and a body."""
    headers = {} if header_length is None else {"Inference-Header-Content-Length": header_length}
    status, _, content = server.call("POST", "/v2/models/q8/infer", body, headers)
    assert status < 500, content
    assert status == 200 or set(json.loads(content)) == {"error"}


def _general(body: bytes, monkeypatch) -> protocol.InferRequest | str:
    """What the general path (no plain shortcut) makes of ``body``: a request or its error."""
    with monkeypatch.context() as m:
        m.setattr(protocol, "_plain_request", lambda request, n_features: None)
        try:
            return parse_infer_request(body, None, len(FEATURE_NAMES))
        except RequestError as exc:
            return f"{exc.status} {exc}"


EDGES = (
    st.integers(-(2**53) - 2, 2**53 + 2)
    | st.integers(-(2**63), 2**64 - 1)
    | st.sampled_from([True, False, None, "1.5", [1.5], 1e308])
)


@st.composite
def near_plain_requests(draw):
    """Requests like a client's, at most one field off, some values at the plain path's edges."""
    n = draw(st.integers(1, 3))
    numbers = draw(st.sampled_from([st.floats(-1e6, 1e6), st.integers(-(2**20), 2**20)]))
    values = draw(st.lists(numbers, min_size=n * 8, max_size=n * 8))
    for _ in range(draw(st.integers(0, 2))):
        values[draw(st.integers(0, n * 8 - 1))] = draw(EDGES)
    data = values if draw(st.booleans()) else [values[i : i + 8] for i in range(0, n * 8, 8)]
    tensor = {"name": "input-0", "shape": [n, 8], "datatype": "FP64", "data": data}
    request: dict = {"inputs": [tensor]}
    change = draw(st.sampled_from([None, "name", "shape", "data", "rows", "id", "datatype"]))
    if change == "name":
        tensor["name"] = draw(st.sampled_from(["", "x" * 256, "x" * 257, 7]))
    elif change == "shape":
        shapes = [[n * 8, 1], [n, 8.0], [True, 8], [n, 8, 1], [0, 8], [n + 1, 8], [-n, -8]]
        tensor["shape"] = draw(st.sampled_from(shapes))
    elif change == "data":
        tensor["data"] = draw(st.sampled_from([values[:-1], [data], [*values, 1.0], {}]))
    elif change == "rows":  # as many rows as the shape says, one a value short
        rows = [values[i : i + 8] for i in range(0, n * 8, 8)]
        tensor["data"] = [*rows[:-1], rows[-1][:-1]]
    elif change == "id":
        request["id"] = draw(st.sampled_from(["r1", 7, None]))
    elif change == "datatype":
        tensor["datatype"] = draw(st.sampled_from(["FP32", "fp64", None]))
    return json.dumps(request).encode()


@settings(
    max_examples=int(os.environ.get("QUANTPIPE_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # monkeypatch.context() each
)
@given(body=near_plain_requests() | BODIES)
def test_the_plain_path_gives_what_the_general_path_gives(body, monkeypatch):
    """A small request the plain path reads is the general path's, bit for bit; any other
    (refused, or valid but not plain) gets the general path's answer."""
    try:  # what parse_infer_request gives the plain path: a checked object
        checked = protocol._checked_request(orjson.loads(body))
    except (orjson.JSONDecodeError, RequestError):
        checked = None
    plain = None if checked is None else protocol._plain_request(checked, 8)
    general = _general(body, monkeypatch)
    if plain is None:
        return
    assert isinstance(general, protocol.InferRequest), general
    assert plain.X.tobytes() == general.X.tobytes()
    assert (plain.X.shape, plain.X.dtype) == (general.X.shape, general.X.dtype)
    assert (plain.id, plain.binary_output) == (general.id, general.binary_output)


@pytest.mark.parametrize(
    ("data", "plain", "valid"),
    [
        ([0.5] * 8, True, True),
        ([[0.5] * 8], True, True),
        ([1, 2, 3, 4, 5, 6, 7, 2**53 - 1], True, True),  # integers float64 holds exactly
        ([1, 2, 3, 4, 5, 6, 7, 2**53], False, True),
        ([1e308] * 8, False, True),  # a sum that overflows: left to the general path
        ([0.5] * 7 + [True], False, False),
    ],
)
def test_the_plain_path_takes_the_usual_request(data, plain, valid, monkeypatch):
    request = _tensor(data=data)
    assert (protocol._plain_request(request, len(FEATURE_NAMES)) is not None) is plain
    body = json.dumps(request).encode()
    general = _general(body, monkeypatch)
    assert isinstance(general, protocol.InferRequest) is valid
    if valid:
        assert parse_infer_request(body, None, 8).X.tobytes() == general.X.tobytes()


def test_drift_gauges_follow_the_recent_inputs(models, tmp_path):
    from quantpipe.drift import build_reference, save_reference

    served = tmp_path / "models"
    shutil.copytree(models, served)
    save_reference(served / "reference.npz", build_reference(rows(5000, seed=7), FEATURE_NAMES))
    proc, srv = start_server(served, "--drift-window", "300")
    try:

        def latitude_psi():
            text = srv.call("GET", "/metrics")[2].decode()
            assert "quantpipe_drift_window_rows 300.0" in text
            line = next(
                x
                for x in text.splitlines()
                if x.startswith('quantpipe_drift_psi{feature="Latitude"}')
            )
            return float(line.split()[-1])

        for seed in range(4):  # 4 x 100 rows like the training data: the window holds 300
            assert (
                srv.call(
                    "POST", "/v2/models/q8/infer", json.dumps(infer_body(rows(100, seed=seed)))
                )[0]
                == 200
            )
        calm = latitude_psi()
        shifted = rows(300, seed=11)
        shifted[:, 6] += 5.0  # five degrees north
        srv.call("POST", "/v2/models/q8/infer", json.dumps(infer_body(shifted)))
        assert calm < 0.2 < latitude_psi()
    finally:
        stop_server(proc)


def test_response_ids_are_distinct_version_4_uuids_and_new_in_a_forked_child():
    import uuid

    from quantpipe.serve.ids import response_id

    ids = [response_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(str(uuid.UUID(i)) == i for i in ids)  # canonical: lowercase, dashed
    steps = {uuid.UUID(b).int - uuid.UUID(a).int for a, b in itertools.pairwise(ids)}
    assert 1 in steps  # consecutive
    assert all(uuid.UUID(i).version == 4 and uuid.UUID(i).variant == uuid.RFC_4122 for i in ids)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child: send its next id, then leave at once
        os.write(write, response_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    with os.fdopen(read) as pipe:
        from_child = pipe.read()
    assert uuid.UUID(from_child).version == 4
    assert from_child not in ids
    assert uuid.UUID(from_child).int - uuid.UUID(ids[-1]).int not in range(-(2**70), 2**70)


def test_serve_refuses_to_start_on_a_stale_or_missing_build(models, monkeypatch, capsys):
    from quantpipe import compiled
    from quantpipe.errors import SetupError
    from quantpipe.serve import command

    def stale():
        raise SetupError("_kernels.c changed since _quantpipe_kernels was built from it")

    loaded = []

    class Registry:  # records whether the models were loaded before the build was checked
        @staticmethod
        def from_directory(path):
            loaded.append(path)
            raise SetupError("the models were loaded before the build was checked")

    monkeypatch.setattr(compiled, "kernels", stale)
    monkeypatch.setattr(command, "ModelRegistry", Registry)
    status = command.main(["--models-dir", str(models), "--port", str(free_port())])
    assert status == 1
    assert capsys.readouterr().err == (
        "error: _kernels.c changed since _quantpipe_kernels was built from it\n"
    )
    assert loaded == []
