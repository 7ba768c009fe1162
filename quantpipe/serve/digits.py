"""The Open Inference Protocol messages of the digits models: images in, digits out.

Input ``images``: ``UINT8``, shape ``[n, 28, 28]`` (grey pixels, 0 = background, as in MNIST),
as JSON ``data`` (flat or nested integers 0-255) or binary (``binary_data_size`` = n x 784).
Outputs: ``digit`` (``INT64``, ``[n]``) and ``probabilities`` (``FP32``, ``[n, 10]``). Pure:
bytes in, arrays and bytes out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from quantpipe.errors import RequestError, show
from quantpipe.mnist.evaluation import DigitsNet, predict
from quantpipe.mnist.modelfile import INPUT, OUTPUTS, param_bytes
from quantpipe.mnist.qnet import QuantNet
from quantpipe.serve.ids import response_id
from quantpipe.serve.protocol import (
    MODEL_VERSION,
    _object,
    envelope,
)

PLATFORM = "quantpipe-mnist-cnn"
INPUT_NAME = str(INPUT["name"])
SIDE = 28
PIXELS = SIDE * SIDE


@dataclass(frozen=True)
class DigitsRequest:
    """A parsed, validated digits infer request: ``images`` of shape (n, 28, 28), uint8."""

    id: str | None
    images: np.ndarray
    outputs: tuple[tuple[str, bool], ...]
    """The outputs to send, in order, and whether each goes back as raw bytes."""


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
    json_part, tail, request, params, tensor = envelope(body, header_length, INPUT_NAME)
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
    return DigitsRequest(request.get("id"), images, _outputs(request.get("outputs"), binary))


def _outputs(outputs: Any, binary: bool) -> tuple[tuple[str, bool], ...]:
    """The outputs asked for, in order, each with whether it goes back as raw bytes.

    No ``outputs``: both, ``binary`` (``parameters.binary_data_output``) for each.
    """
    names = tuple(str(o["name"]) for o in OUTPUTS)
    if outputs is None:
        return tuple((name, binary) for name in names)
    if (
        not isinstance(outputs, list)
        or not outputs
        or not all(isinstance(o, dict) for o in outputs)
    ):
        raise RequestError(400, "'outputs' must be a list of objects with a 'name'")
    asked: list[tuple[str, bool]] = []
    for output in outputs:
        name = output.get("name")
        if name not in names:
            has = ", ".join(repr(n) for n in names)
            raise RequestError(400, f"unknown output {show(name)}; this model has {has}")
        if name in dict(asked):
            raise RequestError(400, f"output {name!r} is asked for twice")
        oparams = _object(output.get("parameters"), "an output's 'parameters'")
        raw = oparams.get("binary_data", binary)
        if type(raw) is not bool:
            raise RequestError(400, "an output's 'parameters.binary_data' must be true or false")
        asked.append((name, raw))
    return tuple(asked)


def digits_response(
    model_name: str, request: DigitsRequest, digits: np.ndarray, probabilities: np.ndarray
) -> tuple[bytes, dict[str, str]]:
    """The response body and headers: the outputs asked for, in their order.

    ``digit`` (n,) INT64 and ``probabilities`` (n, 10) FP32, each as JSON ``data`` or as raw
    bytes after the JSON header.
    """
    n = len(digits)
    tensors = {
        "digit": ("INT64", [n], digits.astype("<i8")),
        "probabilities": ("FP32", [n, 10], probabilities.astype("<f4")),
    }
    outputs: list[dict[str, Any]] = []
    raws: list[bytes] = []
    for name, binary in request.outputs:
        datatype, shape, array = tensors[name]
        output: dict[str, Any] = {"name": name, "shape": shape, "datatype": datatype}
        if binary:
            raws.append(array.tobytes())
            output["parameters"] = {"binary_data_size": len(raws[-1])}
        else:
            output["data"] = array.reshape(-1)
        outputs.append(output)
    payload = {
        "model_name": model_name,
        "model_version": MODEL_VERSION,
        "id": request.id if request.id is not None else response_id(),
        "outputs": outputs,
    }
    header = orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)
    if not raws:
        return header, {"content-type": "application/json"}
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
