"""Hostile input: every request the server refuses gets a JSON 4xx; nothing unexpected is a
bare 500, a traceback or a hang; overflowing predictions are errors everywhere.

Fast cases run in process (the app through ASGI); `test_serve.py` keeps the cases that need
a real socket.
"""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from quantpipe.data import FEATURE_NAMES
from quantpipe.errors import PredictionError, show
from quantpipe.models import finite_predictions
from quantpipe.registry import ModelRegistry
from quantpipe.serve import app as app_module
from quantpipe.serve.app import create_app
from quantpipe.serve.protocol import whole_number
from tests.models import rows, write_models
from tests.test_predict import run_predict
from tests.test_serve import InProcess, binary_request, infer_body

MAX_BODY = 400_000
MAX_JSON = 100_000


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return write_models(tmp_path_factory.mktemp("hostile") / "models")


@pytest.fixture
def app(models):
    registry = ModelRegistry.from_directory(models)
    return InProcess(create_app(registry, MAX_BODY, max_json_bytes=MAX_JSON))


def _deep(levels: int):
    value: list = []
    for _ in range(levels):
        value = [value]
    return value


def _tensor(**fields):
    base = {"name": "input-0", "shape": [1, 8], "datatype": "FP64", "data": [1.0] * 8}
    return {"inputs": [{**base, **fields}]}


DEEP = _deep(900)


@pytest.mark.parametrize(
    ("case", "body", "message"),
    [
        ("name", _tensor(name=DEEP), "'name' must be a string of 1 to 256 characters, not [[[["),
        ("datatype", _tensor(datatype=DEEP), "datatype [[[[...]]]] is not supported"),
        ("shape", _tensor(shape=DEEP), "shape [[[[...]]]] is not allowed"),
        ("output", {**_tensor(), "outputs": [{"name": DEEP}]}, "unknown output [[[[...]]]];"),
        ("id", {**_tensor(), "id": DEEP}, "'id' must be a string"),
    ],
)
def test_json_nested_deep_in_any_field_gets_a_400_that_says_what(app, case, body, message):
    status, answer = app.json("POST", "/v2/models/q8/infer", body)
    assert (status, set(answer)) == (400, {"error"})
    assert message in answer["error"]


@pytest.mark.parametrize("length", ["²", "٣", "1" * 5000, "-1", "1e3", " 12", ""])
def test_a_header_length_that_is_no_whole_number_gets_a_400(app, length):
    body, _ = binary_request(rows(1))
    status, answer = app.json(
        "POST", "/v2/models/q8/infer", body, {"Inference-Header-Content-Length": length}
    )
    assert status == 400, answer
    assert "must be a whole number no larger than the body" in answer["error"]
    assert len(answer["error"]) < 300


def test_whole_number_takes_ascii_digits_only():
    assert whole_number("0012") == 12
    assert [whole_number(t) for t in ("²", "١٢", "1" * 19, "", "+1", None)] == [None] * 6


def test_show_is_short_for_any_value():
    assert show("n" * 10**6) == "'" + "n" * 17 + "..." + "n" * 18 + "'"
    assert show([1, 2.5, "x"]) == "[1, 2.5, 'x']"
    assert show(DEEP) == "[[[[...]]]]"
    assert show({"a": DEEP}) == "{'a': [[[...]]]}"
    assert show(list(range(9))) == "[0, 1, 2, 3, 4, 5, ...]"
    assert len(show([["x" * 50] * 6] * 6)) == 60


def test_an_unexpected_failure_is_a_counted_json_500(app, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    model = app.app.state.server.registry.get("q8")
    monkeypatch.setattr(type(model), "predict", broken)
    status, headers, content = app.call("POST", "/v2/models/q8/infer", infer_body(rows(1)))
    assert status == 500
    assert headers["content-type"] == "application/json"
    assert json.loads(content) == {"error": "internal error; the server log has the details"}
    metrics = app.call("GET", "/metrics")[2].decode()
    assert 'quantpipe_requests_total{endpoint="infer",model="q8",status="500"} 1.0' in metrics


def test_405_keeps_allow_and_a_trailing_slash_is_not_redirected(app):
    status, headers, content = app.call("GET", "/v2/models/q8/infer")
    assert status == 405
    assert headers["allow"] == "POST"
    assert json.loads(content) == {"error": "Method Not Allowed: GET /v2/models/q8/infer"}
    status, headers, content = app.call("GET", "/v2/health/ready/", headers={"host": "evil.test"})
    assert status == 404
    assert "location" not in headers
    assert json.loads(content) == {"error": "Not Found: GET /v2/health/ready/"}


def test_a_404_does_not_echo_a_long_name_whole(app):
    status, answer = app.json("POST", f"/v2/models/{'m' * 10_000}/infer", _tensor())
    assert status == 404
    assert answer["error"].startswith("unknown model 'mmmmmmm")
    assert len(answer["error"]) < 120


def test_json_bodies_have_their_own_lower_limit(app):
    X = rows(MAX_JSON // 150)  # JSON text of about 1.2x MAX_JSON, far below MAX_BODY
    body = json.dumps(infer_body(X)).encode()
    assert MAX_JSON < len(body) < MAX_BODY
    assert app.json("POST", "/v2/models/q8/infer", body) == (
        413,
        {"error": f"JSON request body over the {MAX_JSON}-byte limit"},
    )
    binary, headers = binary_request(rows(MAX_BODY // 80))  # binary: the body limit applies
    assert app.call("POST", "/v2/models/q8/infer", binary, headers)[0] == 200
    huge_header = {**headers, "Inference-Header-Content-Length": str(MAX_JSON + 1)}
    padded = binary[: int(headers["Inference-Header-Content-Length"])].ljust(MAX_JSON + 1) + b""
    assert app.json("POST", "/v2/models/q8/infer", padded, huge_header) == (
        413,
        {"error": f"JSON header over the {MAX_JSON}-byte limit"},
    )


def test_a_large_body_is_answered_off_the_event_loop(app, monkeypatch):
    threads = []
    answer = app_module._answer

    def recording(*args):
        threads.append(threading.current_thread().name)
        return answer(*args)

    monkeypatch.setattr(app_module, "_answer", recording)
    small = infer_body(rows(2))
    large, headers = binary_request(rows(app_module.OFFLOAD_BYTES // 64 + 1))
    assert app.call("POST", "/v2/models/q8/infer", small)[0] == 200
    assert app.call("POST", "/v2/models/q8/infer", large, headers)[0] == 200
    assert threads[0] == threading.main_thread().name
    assert threads[1].startswith("quantpipe-infer")


OVERFLOW = [1.7e308, 0, 0, 1.7e308, 0, 0, 0, 0]  # finite, but the sum of products is not


def test_finite_predictions_name_the_first_bad_row():
    assert finite_predictions(np.array([1.0, 2.0])).tolist() == [1.0, 2.0]
    with pytest.raises(PredictionError, match=r"^row 1: the prediction is inf, not a finite"):
        finite_predictions(np.array([1.0, np.inf, np.nan]))
    with pytest.raises(PredictionError, match=r"^row 0: the prediction is nan"):
        finite_predictions(np.array([np.nan]))


def test_an_overflowing_prediction_is_a_400_naming_the_row(app):
    body = _tensor(shape=[2, 8], data=[1.0] * 8 + OVERFLOW)
    for model in ("fp64", "q8", "q16"):
        status, answer = app.json("POST", f"/v2/models/{model}/infer", body)
        assert status == 400, (model, answer)
        assert answer["error"].startswith("row 1: the prediction is ")
        assert "(an input is too large for the model)" in answer["error"]


def test_an_overflowing_prediction_stops_the_batch_command_naming_the_row(
    models, capsys, monkeypatch
):
    stdin = "".join(json.dumps(r) + "\n" for r in [[1.0] * 8] * 3 + [OVERFLOW])
    status, out, err = run_predict(
        models, ["--model", "fp64", "--chunk-rows", "2"], stdin, capsys, monkeypatch
    )
    assert status == 1
    assert out.count("\n") == 2  # the first chunk streamed out before the second failed
    assert err == (
        "error: input row 4: the prediction is inf, not a finite number "
        "(an input is too large for the model)\n"
    )


def test_max_connections_must_be_positive(models, capsys):
    from quantpipe.serve import command

    assert command.main(["--models-dir", str(models), "--max-connections", "0"]) == 1
    assert capsys.readouterr().err == ("error: --max-connections 0 is not allowed; use 1 or more\n")


# -- a model file under another model's name ---------------------------------------------------


def test_a_model_file_copied_over_another_is_refused_wherever_it_is_loaded(tmp_path):
    from quantpipe.errors import ModelFileError
    from quantpipe.modelfile import load_model

    served = write_models(tmp_path / "models")
    quantized = served / "quantized"
    (quantized / "q8.npz").write_bytes((quantized / "q16.npz").read_bytes())
    message = r"q8.npz: header says variant 'q16', file name says 'q8'; rebuild it"
    with pytest.raises(ModelFileError, match=message):
        load_model(quantized / "q8.npz", "q8")
    with pytest.raises(ModelFileError, match=message):
        ModelRegistry.from_directory(served)
    (served / "fp64.npz").write_bytes((quantized / "q16.npz").read_bytes())
    with pytest.raises(ModelFileError, match=r"fp64.npz: header says variant 'q16', file name"):
        load_model(served / "fp64.npz", "fp64")  # as evaluate loads it


def test_a_header_whose_width_is_not_its_names_is_refused(tmp_path):
    from quantpipe.errors import ModelFileError
    from quantpipe.modelfile import load_model, quantized_model_arrays, save_model
    from quantpipe.quant.linear import quantize_linear
    from tests.models import COEF, INTERCEPT, MEAN, SCHEME, STD

    q16 = quantize_linear(COEF, INTERCEPT, MEAN, STD, bits=16)
    arrays = quantized_model_arrays(q16, "q8", tuple(FEATURE_NAMES), SCHEME, (MEAN, STD), {})
    save_model(tmp_path / "q8.npz", arrays)
    with pytest.raises(ModelFileError, match=r"holds a 16-bit quantized model, which is not 'q8'"):
        load_model(tmp_path / "q8.npz", "q8")
    assert load_model(tmp_path / "q8.npz").bits == 16  # without a name, nothing to check


def test_variant_kind_of_every_kind_of_name():
    from quantpipe.variants import variant_kind

    assert [variant_kind(n) for n in ("fp64", "q8", "q4i", "bfloat16")] == [
        ("float", None),
        ("quantized", 8),
        ("integer", 4),
        ("cast", None),
    ]
    with pytest.raises(ValueError, match=r"'q8x' is not a model variant"):
        variant_kind("q8x")
