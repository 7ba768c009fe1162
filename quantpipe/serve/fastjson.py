"""Large JSON infer requests read by simdjson, their ``data`` straight into float64.

The fast path of :func:`quantpipe.serve.protocol.parse_infer_request`: a request it reads is
the one orjson would give, and one it does not read (None) goes to the orjson path, which
says what is wrong. Pure: bytes in, dicts and arrays out.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np
import orjson

try:
    import simdjson
except ModuleNotFoundError:  # the orjson path alone: slower for large bodies, the same answers
    simdjson = None  # type: ignore[assignment]

log = logging.getLogger(__name__)
#: JSON bodies from this size on try simdjson (:func:`fast_request`); smaller ones cost
#: less through orjson than the fast path's checks.
FAST_JSON_BYTES = 4096
#: Bodies up to this size are read by one simdjson parser per thread, its buffers reused (a new
#: one per request cost the 1,000-row cell a third of its rate: docs/performance.md); larger
#: ones by their own, so no thread keeps a large body's buffers (15 bytes per JSON byte).
REUSED_PARSER_BYTES = 256 * 1024
_PARSERS = threading.local()


def _python(value: Any) -> Any:
    """A simdjson value as orjson gives it: lists and dicts for its arrays and objects."""
    if isinstance(value, simdjson.Array):
        return value.as_list()
    if isinstance(value, simdjson.Object):
        return value.as_dict()
    return value


def _unique_keys(obj: Any) -> list[str]:
    """An object's keys; ValueError if one repeats (simdjson keeps both, orjson the last)."""
    keys = list(obj.keys())
    if len(set(keys)) != len(keys):
        raise ValueError("a repeated key")
    return keys


def _count_byte(data: bytes, byte: bytes) -> int:
    """How many times ``byte`` occurs in ``data``: a vector compare, 5x ``bytes.count``'s speed."""
    return int(np.count_nonzero(np.frombuffer(data, dtype=np.uint8) == ord(byte)))


def _parsed(json_part: bytes) -> Any:
    """The simdjson document of ``json_part``, by this thread's parser for a small one.

    A parser reads again only once no value of its last document is alive (RuntimeError
    otherwise); if one is (an error's traceback holding it, say), the thread's parser is
    replaced, so that the fast path is never lost for good.
    """
    if len(json_part) > REUSED_PARSER_BYTES:
        return simdjson.Parser().parse(json_part)
    if not hasattr(_PARSERS, "parser"):
        _PARSERS.parser = simdjson.Parser()
    try:
        return _PARSERS.parser.parse(json_part)
    except RuntimeError:
        log.warning("a simdjson document outlived its request; a new parser replaces it")
        _PARSERS.parser = simdjson.Parser()
        return _PARSERS.parser.parse(json_part)


def fast_request(json_part: bytes) -> dict[str, Any] | None:
    """The request as orjson gives it, its input's ``data`` a float64 array; or None.

    The array is flat, or one row per list, read by simdjson. This path applies when the
    body is large, is a JSON object whose ``inputs`` is a list of one object with no key
    repeated, and whose ``data`` holds numbers only (simdjson's buffer refuses true, false,
    null and strings, and a number beyond float64), either flat or as lists of one length
    with no deeper nesting. The nesting is checked by counting: the body's ``[`` must be
    those of the other fields (re-serialized) and the data's lists, exactly, so that an
    extra list anywhere in ``data`` (``[1, [2]]``), or an escaped bracket in a string, sends
    the request to the orjson path. None is never an error: that path reads the body again
    and says what is wrong.
    """
    if simdjson is None or len(json_part) < FAST_JSON_BYTES:
        return None
    try:
        doc = _parsed(json_part)
        if not isinstance(doc, simdjson.Object):
            return None
        request = {k: doc[k] for k in _unique_keys(doc)}
        inputs = request.get("inputs")
        if not isinstance(inputs, simdjson.Array) or len(inputs) != 1:
            return None
        tensor_doc = inputs[0]
        if not isinstance(tensor_doc, simdjson.Object):
            return None
        tensor = {k: tensor_doc[k] for k in _unique_keys(tensor_doc)}
        data = tensor.pop("data", None)
        if not isinstance(data, simdjson.Array) or len(data) == 0:
            return None
        values = np.frombuffer(data.as_buffer(of_type="d"), dtype=np.float64)
        rows = len(data)
        if rows == values.size:  # flat: numbers only
            shape, lists = (rows,), 1
        else:  # one list per row, each of the same length
            width = values.size // rows
            if rows * width != values.size or set(map(len, data)) != {width}:
                return None
            shape, lists = (rows, width), 1 + rows
        light = {k: _python(v) for k, v in request.items() if k != "inputs"}
        light_tensor = {k: _python(v) for k, v in tensor.items()}
        others = orjson.dumps({**light, "inputs": [light_tensor]}).count(b"[")
    except (ValueError, TypeError, RuntimeError, IndexError, KeyError, RecursionError):
        return None  # not this path (KeyError: simdjson looks keys up cut at a "\u0000")
    if _count_byte(json_part, b"[") != others + lists:
        return None
    light_tensor["data"] = values.reshape(shape)
    light["inputs"] = [light_tensor]
    return light
