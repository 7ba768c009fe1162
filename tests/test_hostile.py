"""Hostile input: every request the server refuses gets a JSON 4xx; nothing unexpected is a
bare 500, a traceback or a hang; overflowing predictions are errors everywhere.

Fast cases run in process (the app through ASGI); `test_serve.py` keeps the cases that need
a real socket.
"""

from __future__ import annotations

import json
import reprlib
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from quantpipe.data import FEATURE_NAMES
from quantpipe.errors import PredictionError, show
from quantpipe.models import finite_predictions
from quantpipe.registry import ModelRegistry
from quantpipe.serve import infer as infer_module
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
    assert show(10**5000) == "an integer too long to show"


@given(st.text(max_size=60))
def test_show_of_a_short_string_is_what_reprlib_shows(text):
    # show() skips reprlib for strings whose repr fits; the result must not change
    reference = reprlib.Repr()
    reference.maxstring = reference.maxother = 40
    assert show(text) == reference.repr(text)


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
    answer = infer_module.answer

    def recording(*args):
        threads.append(threading.current_thread().name)
        return answer(*args)

    monkeypatch.setattr(infer_module, "answer", recording)
    monkeypatch.setattr(infer_module, "OFFLOAD_BYTES", 1000)
    small = infer_body(rows(2))
    large, headers = binary_request(rows(1000 // 64 + 1))
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


# -- the batch command's process: pipes, bytes, disks ----------------------------------------


def _predict_process(models, *extra, **popen):
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT

    command = [sys.executable, "-m", "quantpipe.batch", "--model", "q8"]
    return subprocess.Popen(
        [*command, "--models-dir", str(models), "-q", *extra],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **popen,
    )


@pytest.mark.slow
def test_a_reader_that_goes_away_stops_predict_quietly(models):
    """`quantpipe predict < rows | head -1`: exit 141 as Unix tools do, no traceback."""
    line = (",".join(["1.5"] * 8) + "\n").encode()
    with _predict_process(models, "--chunk-rows", "1000") as proc:
        assert proc.stdin is not None
        assert proc.stdout is not None
        assert proc.stderr is not None

        def write():
            try:
                proc.stdin.write(line * 200_000)
                proc.stdin.close()
            except BrokenPipeError:  # predict stopped reading: what this test wants
                pass

        writer = threading.Thread(target=write)
        writer.start()
        assert proc.stdout.readline()
        proc.stdout.close()
        writer.join()
        assert proc.wait(timeout=60) == 141
        assert proc.stderr.read() == b""


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"1,2,3,4,5,6,7,\xff8\n", b"error: the input is not UTF-8 text (invalid start byte)\n"),
        (
            "\ufeffmedinc,HOUSEAGE,AveRooms,AveBedrms,Population,AveOccup,Latitude,Longitude"
            "\r\n1,2,3,4,5,6,7,8\r\n".encode(),
            b"",
        ),
    ],
)
def test_stdin_is_read_as_utf8_whatever_the_locale(models, data, message):
    proc = _predict_process(models, env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"})
    out, err = proc.communicate(data, timeout=60)
    assert err == message
    assert proc.returncode == (1 if message else 0)
    assert len(out.splitlines()) == (0 if message else 1)


def test_a_full_disk_is_one_line_and_leaves_the_output_as_it_was(
    models, tmp_path, capsys, monkeypatch
):
    import errno
    import os

    out = tmp_path / "predictions.txt"
    out.write_text("old\n")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full)
    status, _, err = run_predict(
        models, ["--model", "q8", "--output", str(out)], "1,2,3,4,5,6,7,8\n", capsys, monkeypatch
    )
    assert status == 1
    assert err == f"error: {out}: cannot write (No space left on device); it is unchanged\n"
    assert out.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["predictions.txt"]  # no temporary left


def test_an_output_folder_that_cannot_be_made_is_one_line(models, tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    status, _, err = run_predict(
        models,
        ["--model", "q8", "--output", str(blocker / "out.txt")],
        "1,2,3,4,5,6,7,8\n",
        capsys,
        monkeypatch,
    )
    assert (status, err) == (1, f"error: {blocker / 'out.txt'}: cannot write (File exists)\n")


# -- files whose headers lie -----------------------------------------------------------------


def _npz_claiming(path, shape, dtype="<f8", payload=b"\0" * 8):
    import io as _io
    import zipfile

    header = _io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": dtype, "fortran_order": False, "shape": shape}
    )
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("X.npy", header.getvalue() + payload)


@pytest.mark.parametrize(
    ("shape", "dtype", "message"),
    [
        ((10**12,), "<f8", r"member X.npy claims shape \(1000000000000,\) of float64 \(8000000"),
        ((2,), "<f8", r"member X.npy claims shape \(2,\) of float64 \(16 bytes\) but holds 8"),
        ((1,), "|O", r"member X.npy holds Python objects"),
    ],
)
def test_an_npz_member_whose_header_lies_is_refused_before_allocating(
    tmp_path, shape, dtype, message
):
    from quantpipe.errors import DataError
    from quantpipe.io import load_npz

    _npz_claiming(tmp_path / "x.npz", shape, dtype)
    with pytest.raises(DataError, match=rf"x.npz: corrupt or truncated \({message}"):
        load_npz(tmp_path / "x.npz", DataError)


def test_serve_refuses_a_lying_model_file_in_one_line(models, tmp_path, capsys):
    import shutil

    from quantpipe.serve import command

    served = tmp_path / "models"
    shutil.copytree(models, served)
    _npz_claiming(served / "quantized" / "q8.npz", (10**12, 8))
    assert command.main(["--models-dir", str(served)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {served / 'quantized' / 'q8.npz'}: corrupt or truncated (")
    assert err.count("\n") == 1


# -- request heads: size and deadline (over a real socket) -------------------------------------


@pytest.fixture(scope="module")
def guarded(models):
    from tests.test_serve import start_server, stop_server

    proc, srv = start_server(models, "--max-head-bytes", "8192", "--head-timeout", "0.2")
    yield srv
    stop_server(proc)


def _raw(srv, data: bytes, wait: float = 5.0) -> tuple[int | None, bytes]:
    """Send raw bytes, read until the server closes; the status and the body."""
    import contextlib
    import socket

    with socket.create_connection(("127.0.0.1", srv.port), timeout=wait) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)  # the server may refuse before it has read it all
        reply = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                reply += chunk
    if not reply:
        return None, b""
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.mark.slow
def test_a_head_over_the_limit_gets_431_and_nothing_else_waits(guarded):
    status, body = _raw(guarded, b"GET /v2/health/live HTTP/1.1\r\nx-big: " + b"a" * 1_000_000)
    assert status == 431
    assert json.loads(body) == {"error": "request head over the 8192-byte limit"}
    assert guarded.json("GET", "/v2/health/live") == (200, {"live": True})


@pytest.mark.slow
def test_a_head_under_the_limit_with_a_body_in_the_same_packet_is_served(guarded):
    body = json.dumps(infer_body(rows(500))).encode()
    head = b"POST /v2/models/q8/infer HTTP/1.1\r\nhost: x\r\nconnection: close\r\n"
    status, answer = _raw(guarded, head + b"content-length: %d\r\n\r\n" % len(body) + body)
    assert status == 200
    assert len(json.loads(answer)["outputs"][0]["data"]) == 500


@pytest.mark.slow
@pytest.mark.parametrize(
    "partial", [b"GET /v2/hea", b"\r\n\r\n\r\n", b"GET / HTTP/1.1\r\nx: y\r\n"]
)
def test_a_head_that_does_not_arrive_in_time_gets_408(guarded, partial):
    status, body = _raw(guarded, partial)
    assert status == 408
    assert json.loads(body) == {"error": "request head not complete within 0.2 s"}


@pytest.mark.slow
def test_an_idle_connection_is_closed_without_an_answer(guarded):
    assert _raw(guarded, b"") == (None, b"")


@pytest.mark.slow
def test_a_request_that_does_not_parse_gets_a_json_400(guarded):
    status, body = _raw(guarded, b"NOT A REQUEST\r\n\r\n")
    assert status == 400
    assert json.loads(body) == {"error": "Invalid HTTP request received."}


def test_head_settings_must_be_sane(models, capsys):
    from quantpipe.serve import command

    assert command.main(["--models-dir", str(models), "--max-head-bytes", "10"]) == 1
    assert "--max-head-bytes 10 is not allowed; use 1024 or more" in capsys.readouterr().err
    assert command.main(["--models-dir", str(models), "--head-timeout", "0"]) == 1
    assert "--head-timeout 0.0 is not allowed; use seconds > 0" in capsys.readouterr().err


# -- the serve command: settings, ports, workers, files ----------------------------------------


def test_a_port_out_of_range_or_in_use_is_one_line_before_serving(models, capsys):
    import socket

    from quantpipe.serve import command

    assert command.main(["--models-dir", str(models), "--port", "99999"]) == 1
    assert capsys.readouterr().err == "error: --port 99999 is not allowed; use 1 to 65535\n"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert command.main(["--models-dir", str(models), "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert err == f"error: cannot listen on 127.0.0.1:{port} (Address already in use)\n"


def test_workers_without_a_writable_temporary_folder_is_one_line(models, capsys, monkeypatch):
    import tempfile

    from quantpipe.serve import command

    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(tempfile, "TemporaryDirectory", read_only)
    assert command.main(["--models-dir", str(models), "--workers", "2", "--port", "1"]) == 1
    assert capsys.readouterr().err == (
        "error: no temporary folder for the workers' metrics (Read-only file system); "
        "point TMPDIR at a writable folder\n"
    )


def test_the_workers_share_a_folder_in_memory_unless_tmpdir_says_otherwise(tmp_path, monkeypatch):
    from quantpipe.serve import command

    monkeypatch.delenv("TMPDIR", raising=False)
    monkeypatch.setattr(command, "SHARED_MEMORY", tmp_path)
    assert command.shared_folder_parent() == str(tmp_path)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "elsewhere"))
    assert command.shared_folder_parent() is None  # the user's choice, through tempfile
    monkeypatch.delenv("TMPDIR")
    monkeypatch.setattr(command, "SHARED_MEMORY", tmp_path / "missing")
    assert command.shared_folder_parent() is None


@pytest.mark.slow
def test_workers_do_not_outlive_a_killed_server(models):
    import os
    import signal

    from tests.test_serve import eventually, start_server

    proc, _ = start_server(models, "--workers", "2")
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    assert len(children) >= 2  # uvicorn's workers (and its resource tracker, if any)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=10)  # reaps it and closes its output pipe
    eventually(lambda: [c for c in children if Path(f"/proc/{c}").exists()], lambda a: not a, 20)
    alive = [c for c in children if Path(f"/proc/{c}/status").exists()]
    states = [Path(f"/proc/{c}/status").read_text().split("State:")[1].split()[0] for c in alive]
    assert set(states) <= {"Z"}, f"workers {alive} outlived the server ({states})"


def test_a_directory_in_place_of_a_model_file_is_an_error(models, tmp_path):
    import shutil

    from quantpipe.errors import ModelFileError

    served = tmp_path / "models"
    shutil.copytree(models, served)
    (served / "fp64.npz").unlink()
    (served / "fp64.npz").mkdir()
    with pytest.raises(ModelFileError, match=r"fp64.npz: not a file; delete it and run `dvc"):
        ModelRegistry.from_directory(served)


def test_a_drift_reference_holding_nan_is_refused(tmp_path):
    from quantpipe.drift import build_reference, load_reference, save_reference
    from quantpipe.errors import ModelFileError

    reference = build_reference(rows(500), tuple(FEATURE_NAMES), 10)
    reference.quantiles[0, 3] = np.nan
    save_reference(tmp_path / "reference.npz", reference)
    with pytest.raises(ModelFileError, match=r"reference.npz: holds a NaN or infinite value"):
        load_reference(tmp_path / "reference.npz")


# -- the campaign: every class of hostile request, one worker and two ------------------------


def _campaign(models):
    """(what, method, path, body, headers) of each class of hostile request."""
    from tests.test_serve import BAD_JSON_REQUESTS

    deep = json.dumps(_tensor(name=_deep(900), datatype=_deep(900), shape=_deep(900))).encode()
    binary, headers = binary_request(rows(2))
    cases = [
        (case, "POST", "/v2/models/q8/infer", body, {}) for case, body, *_ in BAD_JSON_REQUESTS
    ]
    cases += [
        ("deep", "POST", "/v2/models/q8/infer", deep, {}),
        (
            "length ²",
            "POST",
            "/v2/models/q8/infer",
            binary,
            {**headers, "Inference-Header-Content-Length": "²"},
        ),
        (
            "length 5000 digits",
            "POST",
            "/v2/models/q8/infer",
            binary,
            {**headers, "Inference-Header-Content-Length": "9" * 5000},
        ),
        ("overflow", "POST", "/v2/models/fp64/infer", _tensor(data=OVERFLOW), {}),
        ("long model name", "POST", "/v2/models/" + "m" * 10_000 + "/infer", _tensor(), {}),
        ("trailing slash", "GET", "/v2/health/ready/", None, {"Host": "evil.test"}),
        ("method", "DELETE", "/v2/models/q8", None, {}),
        ("unknown path", "GET", "/v3/" + "x" * 5000, None, {}),
    ]
    return cases


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_no_hostile_request_gets_a_5xx_with_one_worker_or_two(models, workers):
    from tests.test_serve import start_server, stop_server

    proc, srv = start_server(models, "--workers", str(workers), "--head-timeout", "0.3")
    try:
        for what, method, path, body, headers in _campaign(models):
            status, got_headers, content = srv.call(method, path, body, headers)
            assert 400 <= status < 500, (what, status, content[:200])
            assert got_headers.get("content-type") == "application/json", what
            assert set(json.loads(content)) == {"error"}, what
            assert srv.json("GET", "/v2/health/live") == (200, {"live": True}), what
        raw = [
            (b"GET / HTTP/1.1\r\nx: " + b"a" * 1_000_000, 431),
            (b"GET /v2/hea", 408),
            (b"\r\n" * 10, 408),
            (b"BAD\r\n\r\n", 400),
            # a JSON body over the limit, refused on its Content-Length before it is sent
            (b"POST /v2/models/q8/infer HTTP/1.1\r\ncontent-length: 9437184\r\n\r\n", 413),
        ]
        for data, want in raw:
            status, body = _raw(srv, data)
            assert status == want, (data[:20], status)
            assert set(json.loads(body)) == {"error"}
        assert srv.json("GET", "/v2/health/ready") == (200, {"ready": True})
    finally:
        stop_server(proc)


@pytest.mark.slow
def test_with_two_workers_the_drift_window_is_the_servers(models, tmp_path, monkeypatch):
    import shutil

    from quantpipe.drift import build_reference, save_reference
    from tests.test_serve import eventually, start_server, stop_server

    served = tmp_path / "models"
    shutil.copytree(models, served)
    save_reference(served / "reference.npz", build_reference(rows(5000, seed=7), FEATURE_NAMES))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))  # where the workers keep their windows
    proc, srv = start_server(served, "--workers", "2", "--drift-window", "1000")
    try:
        # each worker makes its window as it starts; a busy machine may start the second late
        windows = tmp_path / "tmp"
        eventually(lambda: list(windows.glob("*/drift-*.seen.npy")), lambda f: len(f) >= 2, 20)
        for seed in range(30):  # new connections: uvicorn spreads them over both workers
            body = json.dumps(infer_body(rows(3, seed=seed))).encode()
            assert srv.call("POST", "/v2/models/q8/infer", body)[0] == 200
        # a worker records an answer just after sending it: look until both have
        counted = 'quantpipe_requests_total{endpoint="infer",model="q8",status="200"} 30.0'
        window = "quantpipe_drift_window_rows 90.0"  # scored a moment before the counts are read
        text = eventually(
            lambda: srv.call("GET", "/metrics")[2].decode(), lambda t: counted in t and window in t
        )
        seen = [int(np.load(f)[0]) for f in (tmp_path / "tmp").glob("*/drift-*.seen.npy")]
        assert len(seen) == 2
        assert sum(seen) == 90
        assert min(seen) > 0, "one worker served every request: the test proves nothing"
        # one worker's window would hold only the rows that worker served
        assert window in text
        assert 'quantpipe_inferred_rows_total{model="q8"} 90.0' in text
    finally:
        stop_server(proc)


def test_an_npz_whose_zip_directory_lies_about_the_size_is_refused_without_allocating(tmp_path):
    import io as _io
    import struct
    import zipfile

    from quantpipe.errors import DataError
    from quantpipe.io import load_npz

    header = _io.BytesIO()
    shape = (2**28,)  # 2 GiB of float64, which the zip's directory claims too
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": shape}
    )
    buffer = _io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("X.npy", header.getvalue() + b"\0" * 8)
    data = bytearray(buffer.getvalue())
    lie = struct.pack("<I", len(header.getvalue()) + 8 * 2**28)
    local, central = data.find(b"PK\x03\x04"), data.find(b"PK\x01\x02")
    data[local + 18 : local + 26] = lie + lie  # compressed and uncompressed sizes
    data[central + 20 : central + 28] = lie + lie
    (tmp_path / "x.npz").write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"x.npz: corrupt or truncated \("):
        load_npz(tmp_path / "x.npz", DataError)
    # and with 1 GiB of address space, so that believing the 4 GiB claim would be a MemoryError
    import subprocess
    import sys

    script = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30)); "
        "from quantpipe.errors import DataError; from quantpipe.io import load_npz\n"
        "try: load_npz(sys.argv[1], DataError)\n"
        "except DataError as e: print('refused', e)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "x.npz")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-300:]
    assert result.stdout.startswith("refused ")


@pytest.mark.slow
def test_a_body_after_an_early_answer_and_pipelined_requests_are_no_head(guarded):
    import socket

    body = b"x" * 100_000  # far over the 8192-byte head limit
    head = b"POST /v2/models/nope/infer HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n"
    with socket.create_connection(("127.0.0.1", guarded.port), timeout=5) as sock:
        sock.sendall(head % len(body))
        assert sock.recv(65536).startswith(b"HTTP/1.1 404 ")  # answered before the body
        sock.sendall(body)
        live = b"GET /v2/health/live HTTP/1.1\r\nhost: x\r\n\r\n"
        sock.sendall(live + live[:-2] + b"connection: close\r\n\r\n")  # two, pipelined
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.count(b"HTTP/1.1 200 OK") == 2, reply[:300]
    assert b"431" not in reply


def test_a_cast_whose_header_names_another_dtype_is_refused(tmp_path):
    from quantpipe.errors import ModelFileError
    from quantpipe.modelfile import cast_model_arrays, load_model, save_model
    from quantpipe.npzformat import header_array
    from tests.models import COEF, INTERCEPT

    coef = COEF.astype(np.float16)
    arrays = cast_model_arrays(coef, np.float16(INTERCEPT), "float16", tuple(FEATURE_NAMES), {})
    header = json.loads(bytes(arrays["header"]).decode())
    header["variant"] = "float32"
    arrays["header"] = header_array(header)
    save_model(tmp_path / "float32.npz", arrays)
    with pytest.raises(ModelFileError, match=r"float32.npz: a float16 cast named 'float32'"):
        load_model(tmp_path / "float32.npz", "float32")


def test_bodies_held_past_the_budget_get_503_and_every_byte_is_given_back(models):
    registry = ModelRegistry.from_directory(models)
    small = InProcess(create_app(registry, MAX_BODY, max_json_bytes=MAX_JSON, max_held_bytes=5000))
    server = small.app.state.server
    assert small.call("POST", "/v2/models/q8/infer", infer_body(rows(2)))[0] == 200
    status, headers, content = small.call("POST", "/v2/models/q8/infer", infer_body(rows(100)))
    assert status == 503
    assert headers["retry-after"] == "1"
    assert json.loads(content) == {
        "error": "the server holds 5000 bytes of request bodies already; retry"
    }
    assert small.call("POST", "/v2/models/q8/infer", b"{")[0] == 400
    assert server.held.held == 0  # after a 200, a 503 and a 400


@pytest.mark.slow
def test_a_connection_past_the_limit_gets_a_json_503(models):
    import socket

    from tests.test_serve import start_server, stop_server

    proc, srv = start_server(models, "--max-connections", "2")
    try:
        held = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(2)]
        try:
            status, body = _raw(srv, b"GET /v2/health/live HTTP/1.1\r\nhost: x\r\n\r\n")
            assert status == 503
            assert json.loads(body) == {"error": "over 2 connections open; retry"}
        finally:
            for sock in held:
                sock.close()
        time.sleep(0.2)  # let the server see them go
        assert srv.json("GET", "/v2/health/live") == (200, {"live": True})
    finally:
        stop_server(proc)
