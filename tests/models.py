"""Small synthetic model files for inference tests (no data set needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from quantpipe.data import FEATURE_NAMES
from quantpipe.modelfile import float_model_arrays, quantized_model_arrays, save_model
from quantpipe.quant.linear import quantize_linear

COEF = np.array([0.44, 0.0097, -0.12, 0.78, -1.6e-6, -0.0035, -0.42, -0.43])
INTERCEPT = -37.0
MEAN = np.array([3.87, 28.6, 5.43, 1.1, 1425.0, 3.07, 35.6, -119.6])
STD = np.array([1.9, 12.6, 2.47, 0.47, 1132.0, 10.4, 2.14, 2.0])
SCHEME = {
    "scheme": "symmetric",
    "granularity": "per-tensor",
    "standardize": True,
    "bias_correction": True,
}


def write_models(directory: Path, bits=(8, 16)) -> Path:
    """Write fp64.npz and quantized/q{bits}.npz as the pipeline lays them out."""
    save_model(directory / "fp64.npz", float_model_arrays(COEF, INTERCEPT, FEATURE_NAMES, {}))
    for b in bits:
        q = quantize_linear(COEF, INTERCEPT, MEAN, STD, bits=b)
        arrays = quantized_model_arrays(q, f"q{b}", FEATURE_NAMES, SCHEME, (MEAN, STD), {})
        save_model(directory / "quantized" / f"q{b}.npz", arrays)
    return directory


def rows(n: int, seed: int = 0) -> np.ndarray:
    """Plausible feature rows, shape (n, 8)."""
    rng = np.random.default_rng(seed)
    return rng.normal(MEAN, STD, size=(n, 8))
