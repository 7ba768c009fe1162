"""The Open Inference Protocol messages of the digits models: images in, digits out.

Input ``images``: ``UINT8``, shape ``[n, 28, 28]`` (grey pixels, 0 = background, as in MNIST),
as JSON ``data`` (flat or nested integers 0-255) or binary (``binary_data_size`` = n x 784).
Outputs: ``digit`` (``INT64``, ``[n]``) and ``probabilities`` (``FP32``, ``[n, 10]``). Pure:
bytes in, arrays and bytes out.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from quantpipe.errors import RequestError, show
from quantpipe.mnist.evaluation import DigitsNet, predict
from quantpipe.mnist.modelfile import INPUT, OUTPUTS, param_bytes
from quantpipe.mnist.qnet import QuantNet
from quantpipe.serve.protocol import (
    MODEL_VERSION,
    _binary_output_names,
    _object,
    _request_object,
    _split_body,
)

PLATFORM = "quantpipe-mnist-cnn"
INPUT_NAME = INPUT["name"]
SIDE = 28
PIXELS = SIDE * SIDE


@dataclass(frozen=True)
class DigitsRequest:
    """A parsed, validated digits infer request: ``images`` of shape (n, 28, 28), uint8."""

    id: str | None
    images: np.ndarray
    binary_output: bool


def _shape(tensor: dict[str, Any], where: str) -> int:
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or len(shape) != 3
        or not all(type(d) is int for d in shape)
        or shape[0] < 1
        or shape[1:] != [SIDE, SIDE]
    ):
        raise RequestError(
            400, f"{where}: shape {show(shape)} is not allowed; use [n, 28, 28] with n >= 1"
        )
    return int(shape[0])


def _pixels(
    tensor: dict[str, Any], where: str, n: int, json_part: bytes, tail: bytes
) -> np.ndarray:
    size = _object(tensor.get("parameters"), f"{where}: 'parameters'").get("binary_data_size")
    if size is not None:
        if type(size) is not int or size != n * PIXELS or len(tail) != size:
            raise RequestError(
                400,
                f"{where}: binary_data_size {show(size)} with {len(tail)} bytes after the JSON "
                f"header; shape [{n}, 28, 28] of UINT8 needs exactly {n * PIXELS}",
            )
        return np.frombuffer(tail, dtype=np.uint8).reshape(n, SIDE, SIDE)
    if tail:
        raise RequestError(400, f"{where}: bytes after the JSON header but no binary_data_size")
    data = tensor.get("data")
    if not isinstance(data, list):
        raise RequestError(400, f"{where}: 'data' must be a list of integers 0-255")
    try:
        array = np.array(data)
    except ValueError:
        raise RequestError(400, f"{where}: 'data' is ragged: rows of different lengths") from None
    has_bool = (b"true" in json_part or b"false" in json_part) and _any_bool(data)
    if array.dtype.kind not in "iu" or has_bool:
        raise RequestError(400, f"{where}: 'data' must hold integers 0-255 only")
    if array.size != n * PIXELS or array.shape not in ((n * PIXELS,), (n, SIDE, SIDE)):
        raise RequestError(
            400,
            f"{where}: 'data' has shape {list(array.shape)}, which does not match shape "
            f"[{n}, 28, 28]",
        )
    if array.size and (int(array.min()) < 0 or int(array.max()) > 255):
        raise RequestError(400, f"{where}: a pixel is outside 0-255")
    return array.astype(np.uint8).reshape(n, SIDE, SIDE)


def _any_bool(data: list) -> bool:
    """Whether a ``true`` or ``false`` is anywhere in nested lists (numpy reads them as 1, 0)."""
    stack = [data]
    while stack:
        for item in stack.pop():
            if isinstance(item, bool):
                return True
            if isinstance(item, list):
                stack.append(item)
    return False


def parse_digits_request(body: bytes, header_length: str | None) -> DigitsRequest:
    """Parse and validate a digits infer request body.

    Raises
    ------
    RequestError
        400, naming the problem: malformed JSON, a missing field, a datatype other than
        UINT8, a shape other than ``[n, 28, 28]``, values that are not integers 0-255, binary
        data of the wrong size, an unknown output.
    """
    json_part, tail = _split_body(body, header_length)
    request = _request_object(json_part)
    params = _object(request.get("parameters"), "'parameters'")
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise RequestError(400, f"'inputs' must be a list of one tensor, {INPUT_NAME!r}")
    tensor = inputs[0]
    name = tensor.get("name")
    if name != INPUT_NAME:
        raise RequestError(400, f"input {show(name)} is unknown; this model takes {INPUT_NAME!r}")
    where = f"input {INPUT_NAME!r}"
    if tensor.get("datatype") != "UINT8":
        raise RequestError(
            400, f"{where}: datatype {show(tensor.get('datatype'))} is not supported; use UINT8"
        )
    n = _shape(tensor, where)
    images = _pixels(tensor, where, n, json_part, tail)
    binary = params.get("binary_data_output", False)
    if type(binary) is not bool:
        raise RequestError(400, "'parameters.binary_data_output' must be true or false")
    names = tuple(str(o["name"]) for o in OUTPUTS)
    return DigitsRequest(
        request.get("id"), images, _binary_output_names(request.get("outputs"), binary, names)
    )


def digits_response(
    model_name: str, request: DigitsRequest, digits: np.ndarray, probabilities: np.ndarray
) -> tuple[bytes, dict[str, str]]:
    """The response body and headers: ``digit`` (n,) INT64 and ``probabilities`` (n, 10) FP32."""
    n = len(digits)
    arrays = (digits.astype("<i8"), probabilities.astype("<f4"))
    outputs: list[dict[str, Any]] = [
        {"name": "digit", "shape": [n], "datatype": "INT64"},
        {"name": "probabilities", "shape": [n, 10], "datatype": "FP32"},
    ]
    payload = {
        "model_name": model_name,
        "model_version": MODEL_VERSION,
        "id": request.id if request.id is not None else str(uuid.uuid4()),
        "outputs": outputs,
    }
    if not request.binary_output:
        for output, array in zip(outputs, arrays, strict=True):
            output["data"] = array.reshape(-1)
        return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY), {
            "content-type": "application/json"
        }
    raws = [a.tobytes() for a in arrays]
    for output, raw in zip(outputs, raws, strict=True):
        output["parameters"] = {"binary_data_size": len(raw)}
    header = orjson.dumps(payload)
    return header + b"".join(raws), {
        "content-type": "application/octet-stream",
        "inference-header-content-length": str(len(header)),
    }


def answer_digits(
    name: str, net: DigitsNet, body: bytes, header_length: str | None
) -> tuple[bytes, dict[str, str], int]:
    """Parse, predict and format one digits infer request.

    Returns
    -------
    content, headers
        The response.
    images : int
        How many images were answered.

    Raises
    ------
    RequestError
        400, as :func:`parse_digits_request`.
    """
    request = parse_digits_request(body, header_length)
    digits, probabilities = predict(net, request.images)
    content, headers = digits_response(name, request, digits, probabilities)
    return content, headers, len(digits)


def digits_metadata(name: str, net: DigitsNet) -> dict[str, Any]:
    """``GET /v2/models/{name}`` of a digits network."""
    quantized = isinstance(net, QuantNet)
    return {
        "name": name,
        "versions": [MODEL_VERSION],
        "platform": PLATFORM,
        "inputs": [INPUT],
        "outputs": OUTPUTS,
        "parameters": {
            "kind": "quantized" if quantized else "float",
            "bits": net.bits if isinstance(net, QuantNet) else 32,
            "param_count": net.shapes.param_count,
            "param_bytes": param_bytes(net),
        },
    }
