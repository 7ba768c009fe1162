"""Model files: float, quantized, cast and integer-only linear models, as ``.npz``.

Each holds a JSON header beside its arrays (:mod:`quantpipe.npzformat`).

A file holds plain arrays only, so it loads with ``allow_pickle=False`` and numpy alone.
The members and header of each kind are described once, in ``docs/model-format.md``;
loading checks all of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from quantpipe.errors import ModelFileError
from quantpipe.io import load_npz, save_npz
from quantpipe.models import IntegerModel, LinearModel, Model
from quantpipe.npzformat import expect, header_array, int_field, member, read_header, section
from quantpipe.quant.casts import from_bfloat16_bits
from quantpipe.quant.codes import (
    MAX_BITS,
    MIN_BITS,
    code_dtype,
    dequantize_codes,
    pack_codes,
    unpack_codes,
)
from quantpipe.quant.integer import IntegerLinear
from quantpipe.quant.linear import SCALE_DTYPE, QuantizedLinear
from quantpipe.variants import variant_kind

FORMAT = "quantpipe-linear"
FORMAT_VERSION = 1
_FLOAT_MEMBERS = {"header", "coef", "intercept"}
_QUANT_MEMBERS = {"header", "codes", "scale", "zero_point", "intercept"}
_INT_MEMBERS = {"header", "weight_codes", "output_scale", "bias_code", "input_lo", "input_scale"}
#: How each cast stores its values, and its width in bits.
CAST_STORAGE = {"float32": ("<f4", 32), "float16": ("<f2", 16), "bfloat16": ("<u2", 16)}


def _base_header(variant: str, kind: str, feature_names: tuple[str, ...]) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "variant": variant,
        "kind": kind,
        "n_features": len(feature_names),
        "feature_names": list(feature_names),
    }


def float_model_arrays(
    coef: np.ndarray,
    intercept: float,
    feature_names: tuple[str, ...],
    params: dict[str, Any],
) -> dict[str, np.ndarray]:
    """The members of a float model file.

    Parameters
    ----------
    coef : ndarray of shape (n_features,)
    intercept : float
    feature_names : tuple of str, length n_features
    params : dict
        The ``params.yaml`` values used, recorded in the header.
    """
    header = _base_header("fp64", "float", feature_names)
    header["params"] = params
    return {
        "header": header_array(header),
        "coef": np.asarray(coef, dtype="<f8"),
        "intercept": np.array([intercept], dtype="<f8"),
    }


def quantized_model_arrays(
    model: QuantizedLinear,
    variant: str,
    feature_names: tuple[str, ...],
    scheme: dict[str, Any],
    stats: tuple[np.ndarray, np.ndarray],
    params: dict[str, Any],
) -> dict[str, np.ndarray]:
    """The members of a quantized model file.

    Parameters
    ----------
    model : QuantizedLinear
    variant : str
        ``q{bits}``.
    feature_names : tuple of str
    scheme : dict
        ``scheme``, ``granularity``, ``standardize``, ``bias_correction`` as used.
    stats : (mean, std)
        The training statistics folded into ``scale`` and ``intercept``, for the record.
    params : dict
        The ``params.yaml`` values used.
    """
    mean, std = stats
    header = _base_header(variant, "quantized", feature_names)
    header["quantization"] = {
        "bits": model.bits,
        **scheme,
        "code_dtype": code_dtype(model.bits).name,
        "packed": True,
        "scale_dtype": SCALE_DTYPE.name,
        "zero_points": int(model.zero_point.shape[0]),
        "step": [float(s) for s in model.step],
        "train_mean": [float(m) for m in mean],
        "train_std": [float(s) for s in std],
    }
    header["params"] = params
    return {
        "header": header_array(header),
        "codes": pack_codes(model.codes, model.bits),
        "scale": np.asarray(model.scale, dtype=SCALE_DTYPE),
        "zero_point": np.asarray(model.zero_point, dtype=code_dtype(model.bits)),
        "intercept": np.array([model.intercept], dtype="<f8"),
    }


def cast_model_arrays(
    stored_coef: np.ndarray,
    stored_intercept: np.ndarray,
    dtype: str,
    feature_names: tuple[str, ...],
    params: dict[str, Any],
) -> dict[str, np.ndarray]:
    """The members of a float-cast baseline.

    Coefficients and intercept stored as ``dtype`` (bfloat16 as its uint16 bit patterns),
    from :func:`quantpipe.quant.casts.cast_values`.
    """
    storage = CAST_STORAGE[dtype][0]
    header = _base_header(dtype, "cast", feature_names)
    header["cast"] = {"dtype": dtype, "storage": np.dtype(storage).name}
    header["params"] = params
    return {
        "header": header_array(header),
        "coef": np.asarray(stored_coef, dtype=storage),
        "intercept": np.asarray(stored_intercept, dtype=storage).reshape(1),
    }


def integer_model_arrays(
    model: IntegerLinear,
    variant: str,
    feature_names: tuple[str, ...],
    params: dict[str, Any],
) -> dict[str, np.ndarray]:
    """The members of an integer-only model file."""
    header = _base_header(variant, "integer", feature_names)
    header["integer"] = {"bits": model.bits, "weight_dtype": model.weight_codes.dtype.name}
    header["params"] = params
    return {
        "header": header_array(header),
        "weight_codes": model.weight_codes,
        "output_scale": np.array([model.output_scale], dtype="<f8"),
        "bias_code": np.array([model.bias_code], dtype="<i8"),
        "input_lo": np.asarray(model.input_lo, dtype="<f8"),
        "input_scale": np.asarray(model.input_scale, dtype="<f8"),
    }


def save_model(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Write model members (from one of the ``*_model_arrays`` functions) atomically."""
    save_npz(path, arrays)


def param_bytes(arrays: dict[str, np.ndarray]) -> int:
    """Bytes of the stored parameters: every member but the header, at its stored width."""
    return sum(int(a.nbytes) for name, a in arrays.items() if name != "header")


def _bits(value: Any, path: Path) -> int:
    return int_field(
        value, path, f"bits {value!r} not in {MIN_BITS}-{MAX_BITS}", MIN_BITS, MAX_BITS
    )


def model_from_arrays(arrays: dict[str, np.ndarray], path: str | Path) -> Model:
    """Check and interpret the members of a model file.

    Raises
    ------
    ModelFileError
        If a member is missing, has the wrong dtype or shape, the header is not this
        format or version, or a value is not finite.
    """
    path = Path(path)
    header = read_header(arrays, path)
    expect(header.get("format") == FORMAT, path, f"format is not '{FORMAT}'")
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: format version {version!r} is unknown; this quantpipe reads version "
            f"{FORMAT_VERSION}: rebuild the model with `dvc repro` or upgrade quantpipe"
        )
    n = int_field(header.get("n_features"), path, "header has no valid n_features", 1)
    kind = header.get("kind")
    variant = str(header.get("variant"))
    if kind == "integer":
        return _integer_model(arrays, header, n, variant, path)
    reader = _LINEAR_READERS.get(str(kind))
    if reader is None:
        raise ModelFileError(f"{path}: unknown model kind {kind!r}; rebuild it with `dvc repro`")
    weights, intercept, bits = reader(arrays, header, n, path)
    expect(
        bool(np.all(np.isfinite(weights))) and bool(np.isfinite(intercept)),
        path,
        "parameters are not finite",
    )
    return LinearModel(
        variant=variant,
        weights=weights,
        intercept=intercept,
        header=header,
        param_bytes=param_bytes(arrays),
        bits=bits,
    )


_Parameters = tuple[np.ndarray, float, int]


def _float_params(arrays: dict[str, np.ndarray], header: dict, n: int, path: Path) -> _Parameters:
    """Weights, intercept and width of a float model file."""
    expect(set(arrays) == _FLOAT_MEMBERS, path, f"members are {sorted(arrays)}")
    weights = member(arrays, "coef", "<f8", (n,), path).astype(np.float64)
    return weights, float(member(arrays, "intercept", "<f8", (1,), path)[0]), 64


def _cast_params(arrays: dict[str, np.ndarray], header: dict, n: int, path: Path) -> _Parameters:
    """Weights, intercept and width of a cast model file, decoded to float64."""
    expect(set(arrays) == _FLOAT_MEMBERS, path, f"members are {sorted(arrays)}")
    dtype = str(section(header, "cast", path).get("dtype"))
    expect(dtype in CAST_STORAGE, path, f"cast dtype {dtype!r} is unknown")
    expect(header.get("variant") == dtype, path, f"a {dtype} cast named {header.get('variant')!r}")
    storage, bits = CAST_STORAGE[dtype]

    def decode(stored: np.ndarray) -> np.ndarray:
        return from_bfloat16_bits(stored) if dtype == "bfloat16" else stored.astype(np.float64)

    weights = decode(member(arrays, "coef", storage, (n,), path))
    intercept = float(decode(member(arrays, "intercept", storage, (1,), path))[0])
    return weights, intercept, bits


def _quantized_params(
    arrays: dict[str, np.ndarray], header: dict, n: int, path: Path
) -> _Parameters:
    """Dequantized weights, intercept and code width of a quantized model file."""
    expect(set(arrays) == _QUANT_MEMBERS, path, f"members are {sorted(arrays)}")
    bits = _bits(section(header, "quantization", path).get("bits"), path)
    cdt = code_dtype(bits).str
    codes = unpack_codes(member(arrays, "codes", "u1", (-(-n * bits // 8),), path), bits, n)
    scale = member(arrays, "scale", SCALE_DTYPE.str, (n,), path)
    k = arrays["zero_point"].shape[:1]
    expect(k in ((1,), (n,)), path, "zero_point must have 1 or n_features entries")
    zero_point = member(arrays, "zero_point", cdt, k, path)
    expect(int(zero_point.max()) < 2**bits, path, f"a zero point exceeds {bits} bits")
    weights = dequantize_codes(codes, scale, zero_point)
    return weights, float(member(arrays, "intercept", "<f8", (1,), path)[0]), bits


#: The reader of each kind of linear model file (the integer kind has its own model class).
_LINEAR_READERS = {"float": _float_params, "cast": _cast_params, "quantized": _quantized_params}


def _integer_model(
    arrays: dict[str, np.ndarray], header: dict[str, Any], n: int, variant: str, path: Path
) -> IntegerModel:
    expect(set(arrays) == _INT_MEMBERS, path, f"members are {sorted(arrays)}")
    bits = _bits(section(header, "integer", path).get("bits"), path)
    weight_dtype = "i1" if bits <= 8 else "<i2"
    model = IntegerLinear(
        weight_codes=member(arrays, "weight_codes", weight_dtype, (n,), path),
        output_scale=float(member(arrays, "output_scale", "<f8", (1,), path)[0]),
        bias_code=int(member(arrays, "bias_code", "<i8", (1,), path)[0]),
        input_lo=member(arrays, "input_lo", "<f8", (n,), path),
        input_scale=member(arrays, "input_scale", "<f8", (n,), path),
        bits=bits,
    )
    finite = [model.output_scale, *model.input_lo, *model.input_scale]
    expect(bool(np.all(np.isfinite(finite))), path, "parameters are not finite")
    expect(bool(np.all(model.input_scale > 0)), path, "input scales must be > 0")
    return IntegerModel(
        variant=variant, model=model, header=header, param_bytes=param_bytes(arrays), bits=bits
    )


def load_float_model(path: str | Path) -> LinearModel:
    """Load the float model (``models/fp64.npz``), the input of every derived model.

    Raises
    ------
    ModelFileError
        As :func:`load_model`, or if the file holds a model of another kind.
    """
    model = load_model(path)
    if not isinstance(model, LinearModel) or model.header["kind"] != "float":
        raise ModelFileError(
            f"{path} is a {model.header['kind']} model, not the float model (models/fp64.npz)"
        )
    return model


def load_model(path: str | Path, variant: str | None = None) -> Model:
    """Load a model file with numpy alone, never unpickling.

    Parameters
    ----------
    path : str or Path
    variant : str, optional
        The variant the file must hold (``q8`` for ``quantized/q8.npz``): its header's
        variant, kind and code width are checked against the name, so that a file copied
        over another is refused rather than scored or served under the wrong name.

    Returns
    -------
    LinearModel or IntegerModel

    Raises
    ------
    ModelFileError
        If the file is missing, corrupt, truncated, not a model file of a known version, or
        not the model ``variant`` names.
    """
    model = model_from_arrays(load_npz(path, ModelFileError), path)
    if variant is not None:
        _check_variant(model, variant, Path(path))
    return model


def _check_variant(model: Model, variant: str, path: Path) -> None:
    if model.variant != variant:
        raise ModelFileError(
            f"{path}: header says variant {model.variant!r}, file name says "
            f"{variant!r}; rebuild it with `dvc repro`"
        )
    kind, bits = variant_kind(variant)
    if model.header["kind"] != kind or (bits is not None and model.bits != bits):
        raise ModelFileError(
            f"{path}: holds a {model.bits}-bit {model.header['kind']} model, which is not "
            f"{variant!r}; rebuild it with `dvc repro`"
        )
