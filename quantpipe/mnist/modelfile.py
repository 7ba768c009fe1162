"""Digits model files, as ``.npz`` with a JSON header: the float network and quantized ones.

``models/mnist/fp32.npz`` holds the six float32 parameter arrays by their
:class:`~quantpipe.mnist.network.FloatNet` names. ``models/mnist/quantized/q{bits}.npz``
holds, per layer (``conv1``, ``conv2``, ``fc``): the weight codes packed at their width
(``{layer}_codes``, offset by ``2**(bits-1)`` so that they are unsigned), the per-channel
weight scales (float32), the bias codes (int32; int64 above 8 bits), and the fixed-point
requantization multipliers (``{layer}_m0`` uint32, ``{layer}_shift`` uint8). The header has
the activation scales, everything else needed to run it, and the params used. Everything
loads with ``allow_pickle=False``; described in ``docs/mnist.md``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from quantpipe.errors import ModelFileError
from quantpipe.io import load_npz, save_npz
from quantpipe.mnist.network import FloatNet, LayerShapes, layer_shapes
from quantpipe.mnist.qnet import LAYERS, QuantLayer, QuantNet, activation_bits, product_bounds
from quantpipe.npzformat import expect, header_array, int_field, member, read_header
from quantpipe.quant.codes import MAX_BITS, MIN_BITS, pack_codes, unpack_codes

FORMAT = "quantpipe-mnist-cnn"
FORMAT_VERSION = 1
FAMILY = "mnist"
FLOAT_VARIANT = "fp32"
#: What every digits model takes and gives (the Open Inference Protocol metadata too).
INPUT = {"name": "images", "datatype": "UINT8", "shape": [-1, 28, 28]}
OUTPUTS = [
    {"name": "digit", "datatype": "INT64", "shape": [-1]},
    {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]},
]
_PER_CHANNEL = ("scale", "bias", "m0", "shift")


def _header(variant: str, kind: str, shapes: LayerShapes, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "family": FAMILY,
        "variant": variant,
        "kind": kind,
        "channels": list(shapes.channels),
        "param_count": shapes.param_count,
        "input": INPUT,
        "outputs": OUTPUTS,
        "params": params,
    }


def _bias_dtype(bits: int) -> str:
    return "<i4" if bits <= 8 else "<i8"


def float_net_arrays(net: FloatNet, params: dict[str, Any]) -> dict[str, np.ndarray]:
    """The members of ``fp32.npz``; ``params`` (as in ``params.yaml``) go in the header."""
    arrays = {"header": header_array(_header(FLOAT_VARIANT, "float", net.shapes, params))}
    arrays.update({name: np.asarray(a, dtype="<f4") for name, a in net.arrays().items()})
    return arrays


def quant_net_arrays(net: QuantNet, params: dict[str, Any]) -> dict[str, np.ndarray]:
    """The members of ``q{bits}.npz``; ``params`` go in the header."""
    header = _header(f"q{net.bits}", "quantized", net.shapes, params)
    header.update(
        bits=net.bits,
        activation_bits=net.act_bits,
        layers={
            name: {"input_scale": layer.input_scale, "output_scale": layer.output_scale}
            for name, layer in zip(LAYERS, net.layers, strict=True)
        },
    )
    arrays = {"header": header_array(header)}
    offset = 2 ** (net.bits - 1)
    for name, layer in zip(LAYERS, net.layers, strict=True):
        arrays[f"{name}_codes"] = pack_codes(layer.weight_codes.reshape(-1) + offset, net.bits)
        arrays[f"{name}_scale"] = layer.weight_scale.astype("<f4")
        arrays[f"{name}_bias"] = layer.bias_codes.astype(_bias_dtype(net.bits))
        arrays[f"{name}_m0"] = layer.m0.astype("<u4")
        arrays[f"{name}_shift"] = layer.shift.astype("u1")
    return arrays


def save_float_net(path: str | Path, net: FloatNet, params: dict[str, Any]) -> None:
    """Write ``fp32.npz`` atomically."""
    save_npz(path, float_net_arrays(net, params))


def save_quant_net(path: str | Path, net: QuantNet, params: dict[str, Any]) -> None:
    """Write ``q{bits}.npz`` atomically."""
    save_npz(path, quant_net_arrays(net, params))


def _checked_header(
    arrays: dict[str, np.ndarray], path: Path, variant: str | None
) -> dict[str, Any]:
    header = read_header(arrays, path)
    expect(header.get("format") == FORMAT, path, f"not a {FORMAT} file")
    expect(header.get("format_version") == FORMAT_VERSION, path, f"not version {FORMAT_VERSION}")
    if variant is not None:
        expect(
            header.get("variant") == variant,
            path,
            f"holds variant {header.get('variant')!r}, not {variant!r}",
        )
    channels = header.get("channels")
    if not (isinstance(channels, list) and len(channels) == 2):
        raise ModelFileError(
            f"{path}: header has no two channel counts; rebuild it with `dvc repro`"
        )
    for c in channels:
        int_field(c, path, "a channel count is not an integer from 1 to 64", 1, 64)
    return header


def _float_net(arrays: dict[str, np.ndarray], path: Path, shapes: LayerShapes) -> FloatNet:
    wanted = shapes.weight_shapes()
    expect(set(arrays) == {"header", *wanted}, path, f"members are {sorted(arrays)}")
    loaded = {name: member(arrays, name, "<f4", shape, path) for name, shape in wanted.items()}
    for name, a in loaded.items():
        expect(bool(np.all(np.isfinite(a))), path, f"member '{name}' is not finite")
    return FloatNet(shapes=shapes, **loaded)


def _quant_layer(
    arrays: dict[str, np.ndarray],
    path: Path,
    name: str,
    shape: tuple[int, ...],
    bits: int,
    scales: Any,
    in_max: int,
) -> QuantLayer:
    c_out, k = shape[0], int(np.prod(shape[1:]))
    packed = member(arrays, f"{name}_codes", "uint8", (-(-c_out * k * bits // 8),), path)
    codes = unpack_codes(packed, bits, c_out * k).astype(np.int64) - 2 ** (bits - 1)
    qmax = 2 ** (bits - 1) - 1
    expect(
        bool(np.all(np.abs(codes) <= qmax)),
        path,
        f"member '{name}_codes' holds a code out of range",
    )
    per = {
        f: member(arrays, f"{name}_{f}", d, (c_out,), path)
        for f, d in zip(_PER_CHANNEL, ("<f4", _bias_dtype(bits), "<u4", "u1"), strict=True)
    }
    expect(
        bool(np.all((per["shift"] >= 1) & (per["shift"] <= 62))),
        path,
        f"member '{name}_shift' is out of range",
    )
    ok = isinstance(scales, dict) and all(
        isinstance(scales.get(f), float) and np.isfinite(scales[f]) and scales[f] > 0
        for f in ("input_scale", "output_scale")
    )
    expect(ok, path, f"header has no positive scales for layer {name}")
    layer = QuantLayer(
        weight_codes=codes.reshape(c_out, k).astype(np.int32),
        weight_scale=per["scale"].astype(np.float64),
        bias_codes=per["bias"].astype(np.int64),
        m0=per["m0"].astype(np.int64),
        shift=per["shift"].astype(np.int64),
        input_scale=scales["input_scale"],
        output_scale=scales["output_scale"],
        input_max=in_max,
    )
    expect(_fits_int64(layer), path, f"layer {name} could overflow int64")
    return layer


def _fits_int64(layer: QuantLayer) -> bool:
    """Whether every channel's requantization, ``|acc| * m0 + 2**(shift - 1)``, fits in int64."""
    weights = product_bounds(layer.weight_codes, layer.input_max)
    for w, b, m0, shift in zip(
        weights.tolist(),
        layer.bias_codes.tolist(),
        layer.m0.tolist(),
        layer.shift.tolist(),
        strict=True,
    ):
        if (w + abs(b)) * m0 + 2 ** (shift - 1) >= 2**63:
            return False
    return True


def _quant_net(
    arrays: dict[str, np.ndarray], path: Path, header: dict[str, Any], shapes: LayerShapes
) -> QuantNet:
    bits = int_field(
        header.get("bits"), path, "header has no bits from 2 to 16", MIN_BITS, MAX_BITS
    )
    act_bits = activation_bits(bits)
    expect(header.get("activation_bits") == act_bits, path, f"activation_bits is not {act_bits}")
    members = {"header"} | {f"{n}_{f}" for n in LAYERS for f in ("codes", *_PER_CHANNEL)}
    expect(set(arrays) == members, path, f"members are {sorted(arrays)}")
    layers_header = header.get("layers")
    if not isinstance(layers_header, dict):
        raise ModelFileError(f"{path}: header has no layers section; rebuild it with `dvc repro`")
    weight_shapes = shapes.weight_shapes()
    in_max = (255, 2**act_bits - 1, 2**act_bits - 1)
    layers = tuple(
        _quant_layer(
            arrays, path, name, weight_shapes[f"{name}_weight"], bits, layers_header.get(name), top
        )
        for name, top in zip(LAYERS, in_max, strict=True)
    )
    return QuantNet(shapes, bits, act_bits, layers)  # type: ignore[arg-type]


def load_net(path: str | Path, variant: str | None = None) -> FloatNet | QuantNet:
    """Read and check a digits model file.

    Parameters
    ----------
    path : str or Path
    variant : str, optional
        The variant the file must hold (``fp32``, ``q8``, ...): a file copied under another
        variant's name is refused.

    Raises
    ------
    ModelFileError
        If the file is missing, unreadable, or anything in it is not as written.
    """
    path = Path(path)
    arrays = load_npz(path, ModelFileError)
    header = _checked_header(arrays, path, variant)
    shapes = layer_shapes(tuple(header["channels"]))
    if header.get("kind") == "float":
        expect(header.get("variant") == FLOAT_VARIANT, path, "a float network must be fp32")
        return _float_net(arrays, path, shapes)
    expect(header.get("kind") == "quantized", path, f"unknown kind {header.get('kind')!r}")
    net = _quant_net(arrays, path, header, shapes)
    expect(header.get("variant") == f"q{net.bits}", path, f"variant is not q{net.bits}")
    return net


def param_bytes(net: FloatNet | QuantNet) -> int:
    """The bytes of the parameters as stored.

    float32 values; or the packed codes, per-channel scales, bias codes and multipliers, and
    two float64 activation scales per layer.
    """
    if isinstance(net, FloatNet):
        return 4 * net.shapes.param_count
    total = 0
    for layer in net.layers:
        c_out, k = layer.weight_codes.shape
        bias = np.dtype(_bias_dtype(net.bits)).itemsize
        total += -(-c_out * k * net.bits // 8) + c_out * (4 + bias + 4 + 1) + 2 * 8
    return total


def variant_files(model: Path, quantized_dir: Path, bits: Iterable[int]) -> dict[str, Path]:
    """Each variant's file: ``fp32`` at ``model``, then each ``q{bits}`` in ``quantized_dir``."""
    return {FLOAT_VARIANT: model} | {f"q{b}": quantized_dir / f"q{b}.npz" for b in sorted(bits)}
