"""Large JSON requests read by simdjson give what the orjson path gives, or go to it."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from quantpipe.errors import RequestError
from quantpipe.serve import fastjson, protocol

ROWS = np.random.default_rng(0).normal(2.0, 3.0, (1000, 8))


def _body(data: str, name: str = '"input-0"', extra: str = "", datatype: str = "FP64") -> bytes:
    return (
        f'{{"id": "r1", {extra}"inputs": [{{"name": {name}, "shape": [1000, 8], '
        f'"datatype": "{datatype}", "data": {data}}}]}}'
    ).encode()


GOOD = orjson.dumps(ROWS.tolist()).decode()


def _slow(body: bytes, monkeypatch) -> protocol.InferRequest | str:
    with monkeypatch.context() as m:
        m.setattr(fastjson, "simdjson", None)
        try:
            return protocol.parse_infer_request(body, None, 8)
        except RequestError as exc:
            return f"{exc.status} {exc}"


def _either(body: bytes) -> protocol.InferRequest | str:
    try:
        return protocol.parse_infer_request(body, None, 8)
    except RequestError as exc:
        return f"{exc.status} {exc}"


@pytest.mark.parametrize(
    "body",
    [
        _body(GOOD),
        _body(orjson.dumps(ROWS.ravel().tolist()).decode()),  # flat
        _body(GOOD, datatype="FP32"),
        _body(GOOD, extra='"parameters": {"binary_data_output": true}, '),
        _body(GOOD.replace("[", "[ ").replace(",", " , ")),  # whitespace
    ],
)
def test_a_valid_large_request_is_read_by_simdjson_with_the_same_values(body, monkeypatch):
    assert fastjson.fast_request(body) is not None
    fast, slow = _either(body), _slow(body, monkeypatch)
    assert isinstance(fast, protocol.InferRequest)
    assert isinstance(slow, protocol.InferRequest)
    assert fast.X.tobytes() == slow.X.tobytes()
    assert (fast.id, fast.binary_output) == (slow.id, slow.binary_output)


ROW = "[1.5, 2, 3, 4, 5, 6, 7, 8]"
REST = ", ".join([ROW] * 999)


@pytest.mark.parametrize(
    ("what", "body"),
    [
        ("a boolean", _body(f"[[true, 2, 3, 4, 5, 6, 7, 8], {REST}]")),
        ("a string", _body(f'[["1.5", 2, 3, 4, 5, 6, 7, 8], {REST}]')),
        ("a null", _body(f"[[null, 2, 3, 4, 5, 6, 7, 8], {REST}]")),
        (
            "a short row",
            _body(f"[[1, 2, 3, 4, 5, 6, 7], [1, 2, 3, 4, 5, 6, 7, 8, 9], {REST[: -len(ROW) - 2]}]"),
        ),
        ("a list in a row", _body(f"[[[1], 2, 3, 4, 5, 6, 7, 8], {REST}]")),
        ("a row that is a number", _body(f"[1, {REST}]")),
        ("a number beyond float64", _body(f"[[1e400, 2, 3, 4, 5, 6, 7, 8], {REST}]")),
        (
            "a huge integer",
            _body(f"[[123456789012345678901234567890, 2, 3, 4, 5, 6, 7, 8], {REST}]"),
        ),
        ("data twice", _body(f'{GOOD}, "data": [[0, 0, 0, 0, 0, 0, 0, 0]]')),
        ("inputs twice", _body(GOOD, extra='"inputs": [], ')),
        ("the datatype twice", _body(GOOD + ', "datatype": "FP32"')),  # orjson: the last
        ("the id twice", _body(GOOD, extra='"id": "r2", ')),
        ("an escaped bracket in a name", _body(GOOD, name='"a\\u005bb"')),
        ("a bracket in a name", _body(GOOD, name='"a[b"')),
        ("deep parameters", _body(GOOD, extra='"parameters": ' + "[" * 600 + "]" * 600 + ", ")),
        ("rows that do not match the shape", _body(f"[{REST}]")),
        ("no data", _body("[]")),
    ],
)
def test_anything_else_gets_the_orjson_paths_answer(what, body, monkeypatch):
    assert _answer(_either(body)) == _answer(_slow(body, monkeypatch)), what


def _answer(result: protocol.InferRequest | str) -> tuple:
    if isinstance(result, str):
        return ("error", result)
    return ("request", result.id, result.binary_output, result.X.tobytes())


def test_nested_lists_and_non_numbers_never_take_the_fast_path():
    assert fastjson.fast_request(_body(f"[[[1], 2, 3, 4, 5, 6, 7, 8], {REST}]")) is None
    assert fastjson.fast_request(_body(f"[[true, 2, 3, 4, 5, 6, 7, 8], {REST}]")) is None
    assert fastjson.fast_request(_body(f'{GOOD}, "data": [[0]]')) is None
    assert fastjson.fast_request(_body(GOOD, name='"a\\u005bb"')) is None
    assert fastjson.fast_request(b'{"inputs": []}') is None  # small: orjson's


def test_the_threads_parser_is_reused_after_a_request_that_took_the_fast_path_or_not():
    body = _body(GOOD)
    assert len(body) <= fastjson.REUSED_PARSER_BYTES
    refused = [  # each fails at a different step of the fast path
        _body(GOOD, extra='"id": "r2", '),  # a repeated key
        _body(f"[[true, 2, 3, 4, 5, 6, 7, 8], {REST}]"),
        _body(f"[[[1], 2, 3, 4, 5, 6, 7, 8], {REST}]"),
        _body(GOOD)[:-5],  # not JSON
    ]
    first = fastjson.fast_request(body)
    for bad in refused:
        assert fastjson.fast_request(bad) is None
        again = fastjson.fast_request(body)  # the parser was free to read again
        assert again is not None
        assert again["inputs"][0]["data"].tobytes() == first["inputs"][0]["data"].tobytes()
    assert fastjson._PARSERS.parser.parse(b"[1]").as_list() == [1]


def test_a_body_over_the_reused_parsers_size_has_a_parser_of_its_own(monkeypatch):
    fastjson.fast_request(_body(GOOD))
    kept = fastjson._PARSERS.parser
    monkeypatch.setattr(fastjson, "REUSED_PARSER_BYTES", len(_body(GOOD)) - 1)
    fast = fastjson.fast_request(_body(GOOD))  # a parser of its own
    assert fast is not None
    assert fast["inputs"][0]["data"].shape == (1000, 8)
    assert fastjson._PARSERS.parser is kept
    held = kept.parse(b"[1, 2]")  # a value alive: the kept parser could not read now
    assert fastjson.fast_request(_body(GOOD)) is not None  # no parser of its own needed it
    del held


def test_a_parser_held_by_a_live_value_is_replaced_not_lost(caplog):
    fastjson.fast_request(_body(GOOD))
    held = fastjson._PARSERS.parser.parse(b"[1, 2]")  # as an error's traceback might
    fast = fastjson.fast_request(_body(GOOD))
    assert fast is not None
    assert fast["inputs"][0]["data"].shape == (1000, 8)
    assert "a simdjson document outlived its request" in caplog.text
    assert fastjson.fast_request(_body(GOOD)) is not None
    assert held.as_list() == [1, 2]


def test_a_key_simdjson_cannot_look_up_goes_to_the_orjson_path(monkeypatch):
    body = _body(GOOD, extra='"a\\u0000b": 1, ')
    assert fastjson.fast_request(body) is None
    fast, slow = _either(body), _slow(body, monkeypatch)
    assert isinstance(fast, protocol.InferRequest)
    assert fast.X.tobytes() == slow.X.tobytes()
