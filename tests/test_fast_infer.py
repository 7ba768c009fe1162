"""FastInfer answers a served model's infer requests before routing: exactly as the routes do.

Every request below goes to two apps, one with FastInfer and one without, and must get the
same status, headers and body (the response ``id`` aside: a fresh uuid when the request has
none), and leave the same counts in ``/metrics``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from quantpipe.registry import ModelRegistry
from quantpipe.serve.app import create_app
from quantpipe.serve.infer import FastInfer
from tests.models import rows, write_models
from tests.test_serve import InProcess, binary_request, infer_body

MAX_BODY, MAX_JSON = 200_000, 50_000
OVERFLOW = [1.7e308, 0, 0, 1.7e308, 0, 0, 0, 0]


def _apps(models):
    registry = ModelRegistry.from_directory(models)
    fast = create_app(registry, MAX_BODY, max_json_bytes=MAX_JSON)
    routed = create_app(registry, MAX_BODY, max_json_bytes=MAX_JSON)
    routed.user_middleware = [m for m in routed.user_middleware if m.cls is not FastInfer]
    assert len(routed.user_middleware) == len(fast.user_middleware) - 1
    return InProcess(fast), InProcess(routed)


def _without_id(content: bytes) -> object:
    try:
        answer = json.loads(content)
    except ValueError:  # a binary answer: its JSON header, then the raw predictions
        return content
    if isinstance(answer, dict):
        answer.pop("id", None)
    return answer


def _requests():
    binary, headers = binary_request(rows(3))
    cut_header = {"Inference-Header-Content-Length": "99999"}
    return [
        ("POST", "/v2/models/q8/infer", infer_body(rows(1)), None),
        ("POST", "/v2/models/fp64/versions/1/infer", infer_body(rows(5), id="r-1"), None),
        ("POST", "/v2/models/q16/infer", infer_body(rows(700)), None),  # simdjson's path
        ("POST", "/v2/models/q8/infer", infer_body(rows(700), nested=True), None),
        ("POST", "/v2/models/q8/infer", binary, headers),
        ("POST", "/v2/models/q8/infer", binary, cut_header),
        ("POST", "/v2/models/q8/infer", binary, "twice"),
        ("POST", "/v2/models/q8/infer", b'{"inputs": [', None),
        ("POST", "/v2/models/q8/infer", json.dumps(infer_body(rows(1))).encode()[:-3], None),
        ("POST", "/v2/models/q8/infer", b"x" * (MAX_JSON + 1), None),
        ("POST", "/v2/models/q8/infer", infer_body(rows(2), datatype="INT8"), None),
        ("POST", "/v2/models/q8/infer", infer_body(np.array([[np.nan] * 8])), None),
        ("POST", "/v2/models/fp64/infer", infer_body(np.array([OVERFLOW])), None),
        ("POST", "/v2/models/nope/infer", infer_body(rows(1)), None),
        ("POST", "/v2/models/q8/versions/2/infer", infer_body(rows(1)), None),
        ("GET", "/v2/models/q8/infer", None, None),
        ("PUT", "/v2/models/q8/infer", infer_body(rows(1)), None),
    ]


def _twice(fast, routed, body):
    _, headers = binary_request(rows(3))
    length = headers["Inference-Header-Content-Length"]
    for first, second in ((length, "99999"), ("99999", length)):
        answers = []
        for app in (fast, routed):
            scope_headers = [("inference-header-content-length", v) for v in (first, second)]
            answers.append(app.call("POST", "/v2/models/q8/infer", body, scope_headers))
        assert answers[0][0] == answers[1][0]
        assert _without_id(answers[0][2]) == _without_id(answers[1][2])


@pytest.mark.parametrize("index", range(len(_requests())))
def test_fast_infer_answers_as_the_routes_do(tmp_path_factory, index):
    fast, routed = _apps(write_models(tmp_path_factory.mktemp("fast") / "models"))
    method, path, body, headers = _requests()[index]
    if headers == "twice":  # a header sent twice: the first counts, in both
        return _twice(fast, routed, body)
    got = fast.call(method, path, body, headers)
    expected = routed.call(method, path, body, headers)
    assert got[0] == expected[0]
    assert got[1] == expected[1]
    assert _without_id(got[2]) == _without_id(expected[2])


def test_fast_infer_leaves_the_same_counts(tmp_path_factory):
    fast, routed = _apps(write_models(tmp_path_factory.mktemp("counts") / "models"))
    for method, path, body, headers in _requests():
        if headers == "twice":
            continue
        fast.call(method, path, body, headers)
        routed.call(method, path, body, headers)

    def counts(app):
        text = app.call("GET", "/metrics")[2].decode()
        return sorted(
            line for line in text.splitlines() if line.startswith("quantpipe_requests_total")
        )

    assert counts(fast) == counts(routed)
    assert any('model="q8",status="200"' in line for line in counts(fast))


def test_a_served_models_infer_never_reaches_the_routes(tmp_path_factory):
    fast, _ = _apps(write_models(tmp_path_factory.mktemp("unrouted") / "models"))
    fast.app.router.routes = []  # nothing is routed any more
    assert fast.call("POST", "/v2/models/q8/infer", infer_body(rows(2)))[0] == 200
    assert fast.call("POST", "/v2/models/q8/versions/1/infer", infer_body(rows(2)))[0] == 200
    assert fast.call("GET", "/v2/health/ready")[0] == 404
    assert fast.call("POST", "/v2/models/nope/infer", infer_body(rows(2)))[0] == 404
