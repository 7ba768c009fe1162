"""The Open Inference Protocol's REST messages: parse an infer request, format a response.

Pure: bytes in, arrays and bytes out, no HTTP, testable in process.

A large JSON request (a batch of rows) is read by simdjson, its ``data`` straight into a
float64 buffer, when it holds numbers only, in rows of equal length and no deeper
(:mod:`quantpipe.serve.fastjson`): a 1,000-row body in about a third of the time orjson
takes to make its Python floats. Anything else, and any body when simdjson is not
installed, goes through orjson, which says what is wrong; the two give the same request.
A small request of the usual kind (a few rows of numbers, no parameters) is checked by a
shorter path after orjson, which gives what the general checks give (:func:`_plain_request`).
"""

from __future__ import annotations

import itertools
import math
from typing import Any, NamedTuple, TypeGuard

import numpy as np
import orjson

from quantpipe.errors import RequestError, show
from quantpipe.serve.fastjson import FAST_JSON_BYTES, fast_request
from quantpipe.serve.ids import response_id

SERVER_NAME = "quantpipe"
MODEL_VERSION = "1"
PLATFORM = "quantpipe-linear"
INPUT_NAME = "input-0"
OUTPUT_NAME = "predictions"
HEADER_LENGTH = "inference-header-content-length"
DTYPES: dict[str, np.dtype] = {"FP64": np.dtype("<f8"), "FP32": np.dtype("<f4")}
EXTENSIONS = ["binary_tensor_data"]


class InferRequest(NamedTuple):
    """A parsed, validated infer request (a named tuple: made faster than a frozen dataclass).

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


#: The longest input tensor ``name`` taken, in characters.
MAX_NAME_CHARS = 256


def _is_name(value: Any) -> TypeGuard[str]:
    """Whether ``value`` is a valid tensor name: a string of 1 to :data:`MAX_NAME_CHARS`."""
    return isinstance(value, str) and 1 <= len(value) <= MAX_NAME_CHARS


def _is_shape(value: Any, n_features: int) -> TypeGuard[list[int]]:
    """Whether ``value`` is a valid input shape: ``[n, n_features]`` with n >= 1."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and all(type(d) is int for d in value)
        and value[0] >= 1
        and value[1] == n_features
    )


def _name(tensor: dict[str, Any]) -> str:
    """The input tensor's ``name``: required by the protocol (:func:`_is_name`)."""
    name = tensor.get("name")
    if not _is_name(name):
        raise RequestError(
            400,
            f"the input's 'name' must be a string of 1 to {MAX_NAME_CHARS} characters, "
            f"not {show(name)}",
        )
    return name


def _object(value: Any, where: str) -> dict[str, Any]:
    """An optional JSON object: absent or null gives {}, anything else must be an object."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RequestError(400, f"{where} must be an object")
    return value


def whole_number(text: str | None) -> int | None:
    """A header's value as a whole number, or None if it is not one.

    ASCII digits only (``"²".isdigit()`` is true) and at most 18 of them (``int()`` of
    4,300 digits raises): anything else is no length a request can have.
    """
    if text is None or not (text.isascii() and text.isdigit()) or len(text) > 18:
        return None
    return int(text)


def _split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    length = whole_number(header_length)
    if length is None or length > len(body):
        raise RequestError(
            400,
            f"Inference-Header-Content-Length {show(header_length)} must be a whole number no "
            f"larger than the body ({len(body)} bytes)",
        )
    return body[:length], body[length:]


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


#: Integers a plain request's ``data`` may hold: float64 holds each of them exactly.
_EXACT_INT = 2**53


def _plain_numbers(values: list[Any]) -> bool:
    """Whether ``values`` are floats and exactly representable integers with a finite sum."""
    for value in values:
        kind = type(value)  # orjson makes no subclasses; a bool is not an int here
        if kind is not float and (kind is not int or not -_EXACT_INT < value < _EXACT_INT):
            return False
    return math.isfinite(sum(values))


def _plain_request(request: dict[str, Any], n_features: int) -> InferRequest | None:
    """A small request of the kind most clients send, checked in fewer steps; else None.

    ``request`` is a checked request object (:func:`_checked_request`: its id is valid).

    Plain: no ``parameters`` and no ``outputs`` (the answer is JSON), one FP64 input with a
    valid name, shape ``[n, n_features]``, no parameters, and ``data`` flat or one list per
    row, of floats and integers below 2**53 in magnitude whose sum is finite. The request is
    what the general path gives for it (``tests/test_serve.py`` compares the two on fuzzed
    bodies); anything else, valid or not, is left to that path, which says what is wrong.
    In process, a 1-row request took 14 µs less (62 µs before; docs/performance.md).
    """
    inputs = request.get("inputs")
    if request.get("parameters") is not None or request.get("outputs") is not None:
        return None
    if type(inputs) is not list or len(inputs) != 1 or type(inputs[0]) is not dict:
        return None
    tensor = inputs[0]
    if tensor.get("datatype") != "FP64" or tensor.get("parameters") is not None:
        return None
    shape, data = tensor.get("shape"), tensor.get("data")
    if not _is_name(tensor.get("name")) or not _is_shape(shape, n_features):
        return None
    if type(data) is not list:
        return None
    n, width = shape
    if len(data) == n * width and _plain_numbers(data):
        pass  # flat
    elif len(data) != n or not all(
        type(row) is list and len(row) == width and _plain_numbers(row) for row in data
    ):
        return None
    X = np.array(data, dtype=np.float64).reshape(n, width)
    return InferRequest(request.get("id"), X, False)


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
    fast = fast_request(json_part) if not tail else None  # None too for a small body
    if fast is not None:
        loaded = _checked_request(fast)
    else:
        loaded = _request_object(json_part)
        if not tail and len(json_part) < FAST_JSON_BYTES:
            plain = _plain_request(loaded, n_features)
            if plain is not None:
                return plain
    request, params, tensor = _checked_envelope(loaded, INPUT_NAME)
    where = f"input {show(_name(tensor))}"
    datatype, n = _datatype_and_rows(tensor, where, n_features)
    X = _tensor_values(tensor, where, datatype, (n, n_features), json_part, tail)
    if not np.isfinite(X).all():
        row, col = (int(i) for i in np.argwhere(~np.isfinite(X))[0])
        raise RequestError(400, f"{where}: row {row}, column {col} is not a finite number")
    binary = params.get("binary_data_output", False)
    if type(binary) is not bool:
        raise RequestError(400, "'parameters.binary_data_output' must be true or false")
    binary = _binary_output(request.get("outputs"), binary)
    return InferRequest(request.get("id"), X, binary)


def envelope(
    body: bytes, header_length: str | None, input_name: str
) -> tuple[bytes, bytes, dict[str, Any], dict[str, Any], dict[str, Any]]:
    """An infer request's parts, for a model that takes one input, ``input_name``.

    Returns the JSON bytes, the binary tail, the request object, its ``parameters`` and its
    one input tensor.

    Raises
    ------
    RequestError
        400 if the JSON is malformed or there is not exactly one input tensor.
    """
    json_part, tail = _split_body(body, header_length)
    return json_part, tail, *_checked_envelope(_request_object(json_part), input_name)


def _checked_envelope(
    request: dict[str, Any], input_name: str
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The request, its ``parameters`` and its one input tensor, checked."""
    params = _object(request.get("parameters"), "'parameters'")
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise RequestError(400, f"'inputs' must be a list of one tensor, {input_name!r}")
    return request, params, inputs[0]


def _request_object(json_part: bytes) -> dict[str, Any]:
    """The request's JSON object, with a valid ``id`` if it has one."""
    try:
        request = orjson.loads(json_part)
    except orjson.JSONDecodeError as exc:
        raise RequestError(400, f"malformed JSON: {exc}") from None
    return _checked_request(request)


def _checked_request(request: Any) -> dict[str, Any]:
    """The request object, checked: a JSON object with a valid ``id`` if it has one."""
    if not isinstance(request, dict):
        raise RequestError(400, "the request must be a JSON object with 'inputs'")
    request_id = request.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise RequestError(400, "'id' must be a string")
    return request


def _datatype_and_rows(tensor: dict[str, Any], where: str, n_features: int) -> tuple[str, int]:
    """The input tensor's datatype and its number of rows, checked."""
    datatype = tensor.get("datatype")
    if not isinstance(datatype, str) or datatype not in DTYPES:
        raise RequestError(
            400, f"{where}: datatype {show(datatype)} is not supported; use FP64 or FP32"
        )
    shape = tensor.get("shape")
    if not _is_shape(shape, n_features):
        raise RequestError(
            400,
            f"{where}: shape {show(shape)} is not allowed; use [n, {n_features}] with n >= 1",
        )
    return datatype, shape[0]


def _tensor_values(
    tensor: dict[str, Any],
    where: str,
    datatype: str,
    shape: tuple[int, int],
    json_part: bytes,
    tail: bytes,
) -> np.ndarray:
    """The input's values as float64 of ``shape``: the binary tail, or the JSON ``data``."""
    dtype = DTYPES[datatype]
    n, n_features = shape
    size = _object(tensor.get("parameters"), f"{where}: 'parameters'").get("binary_data_size")
    if size is not None:
        expected = n * n_features * dtype.itemsize
        if type(size) is not int or size != expected or len(tail) != size:
            raise RequestError(
                400,
                f"{where}: binary_data_size {show(size)} with {len(tail)} bytes after the JSON "
                f"header; shape {list(shape)} of {datatype} needs exactly {expected}",
            )
        return np.frombuffer(tail, dtype=dtype).reshape(shape).astype(np.float64)
    if tail:
        raise RequestError(400, f"{where}: bytes after the JSON header but no binary_data_size")
    if "data" not in tensor:
        raise RequestError(400, f"{where}: no 'data' and no binary_data_size")
    data = tensor["data"]  # an array already, from simdjson (fast_request), or JSON
    array = data if isinstance(data, np.ndarray) else _tensor_from_json(data, json_part, where)
    if array.size != n * n_features or array.shape not in ((n * n_features,), shape):
        raise RequestError(
            400,
            f"{where}: 'data' has shape {list(array.shape)}, which does not match shape "
            f"{list(shape)}",
        )
    if dtype == np.float64:  # one copy (never a view of the parser's buffer), no errstate
        return array.reshape(shape).astype(np.float64)
    with np.errstate(over="ignore"):  # FP32 overflow becomes inf, refused by the caller
        return array.astype(dtype).reshape(shape).astype(np.float64)


def _binary_output(outputs: Any, binary: bool) -> bool:
    """Whether the predictions go back as raw bytes, after the requested ``outputs``."""
    if outputs is None:
        return binary
    if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
        raise RequestError(400, "'outputs' must be a list of objects with a 'name'")
    for output in outputs:
        if output.get("name") != OUTPUT_NAME:
            raise RequestError(
                400,
                f"unknown output {show(output.get('name'))}; this model has {OUTPUT_NAME!r}",
            )
        oparams = _object(output.get("parameters"), "an output's 'parameters'")
        if type(oparams.get("binary_data", binary)) is not bool:
            raise RequestError(400, "an output's 'parameters.binary_data' must be true or false")
        binary = oparams.get("binary_data", binary)
    return binary


def infer_response(
    model_name: str, request: InferRequest, predictions: np.ndarray
) -> tuple[bytes, dict[str, str]]:
    """The response body and headers for predictions of shape (n,)."""
    output: dict[str, Any] = {"name": OUTPUT_NAME, "shape": [len(predictions)], "datatype": "FP64"}
    payload = {
        "model_name": model_name,
        "model_version": MODEL_VERSION,
        "id": request.id if request.id is not None else response_id(),
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
