# Types of the compiled module built from quantpipe/_kernels.c (see its comments).
import numpy as np

def row_dot(X: np.ndarray, w: np.ndarray, out: np.ndarray, offset: float, /) -> int: ...
def integer_predict(
    X: np.ndarray,
    input_lo: np.ndarray,
    input_scale: np.ndarray,
    weight_codes: np.ndarray,
    bits: int,
    bias_code: int,
    output_scale: float,
    out: np.ndarray,
    /,
) -> None: ...
def input_codes(
    X: np.ndarray,
    input_lo: np.ndarray,
    input_scale: np.ndarray,
    weight_codes: np.ndarray,
    bits: int,
    codes: np.ndarray,
    saturated: np.ndarray,
    /,
) -> None: ...

#: sha256 of the quantpipe/_kernels.c this module was built from (setup.py)
SOURCE_SHA256: str
