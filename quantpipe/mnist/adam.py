"""Adam on float32 arrays, in operations that round the same on every CPU.

``torch.optim.Adam`` takes the square root of its second moment with ``torch.sqrt``, which
on PyTorch's x86-64 builds is MKL's vector math (``vsSqrt``), even with ATen's portable
kernels and ``MKL_CBWR=COMPATIBLE``: it is not correctly rounded (one element in six is one
unit in the last place off IEEE's square root), and which elements are off depends on the
CPU (an AMD EPYC and an emulated Intel Haswell disagree). Those last bits, compounded over
thousands of steps, gave the trained network other weights on another CPU.

This optimizer takes the same steps with numpy's ufuncs only: each multiply, add, divide and
square root of float32 arrays is one IEEE 754 operation, correctly rounded, whatever SIMD
instructions carry it (numpy fuses none of them into a multiply-add). The scalar bias
corrections are computed in float64 by multiplication and ``math.sqrt`` (both correctly
rounded; no ``pow``), then rounded to float32 once per step. The update is torch's, in the
same order (Kingma & Ba, *Adam: a method for stochastic optimization*, 2015, algorithm 1
with the bias corrections folded into the step):

    m <- m + (g - m) * (1 - beta1)
    v <- v * beta2 + (1 - beta2) * g * g
    p <- p + (-(lr / (1 - beta1**t)) * m) / (sqrt(v) / sqrt(1 - beta2**t) + eps)

Pure: it holds its moment arrays and updates the parameter arrays it is given in place.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

F32 = np.float32


@dataclass(frozen=True)
class AdamConfig:
    """Adam's constants (torch's defaults but the step size).

    Attributes
    ----------
    learning_rate : float
        Step size, in (0, 1].
    beta1, beta2 : float
        Decay of the first and second moment, each in [0, 1).
    eps : float
        Added to the denominator, > 0.
    """

    learning_rate: float
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    def __post_init__(self) -> None:
        """Check the constants; a ValueError names the first one out of range."""
        for name in ("learning_rate", "beta1", "beta2", "eps"):
            # Python floats: a numpy float32 here would make the float64 bookkeeping float32
            object.__setattr__(self, name, float(getattr(self, name)))
        if not 0.0 < self.learning_rate <= 1.0:
            raise ValueError(f"learning_rate must be in (0, 1], not {self.learning_rate!r}")
        for name in ("beta1", "beta2"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), not {value!r}")
        if not self.eps > 0.0:
            raise ValueError(f"eps must be > 0, not {self.eps!r}")


class Adam:
    """Adam over a fixed list of float32 parameter arrays, updated in place.

    Parameters
    ----------
    params : sequence of ndarray, float32, C-contiguous and writeable
        The parameters, each of any shape; :meth:`step` writes into them.
    config : AdamConfig

    Raises
    ------
    ValueError
        If a parameter is not a writeable C-contiguous float32 array.
    """

    def __init__(self, params: Sequence[np.ndarray], config: AdamConfig) -> None:
        for i, p in enumerate(params):
            if p.dtype != F32 or not p.flags.c_contiguous or not p.flags.writeable:
                raise ValueError(
                    f"parameter {i} must be a writeable C-contiguous float32 array, "
                    f"not {p.dtype} (contiguous={p.flags.c_contiguous}, "
                    f"writeable={p.flags.writeable})"
                )
        self.params = list(params)
        self.config = config
        self.steps = 0
        self._m = [np.zeros_like(p) for p in self.params]
        self._v = [np.zeros_like(p) for p in self.params]
        # β₁ᵗ and β₂ᵗ as running float64 products: exact order, no libm pow
        self._beta1_t = 1.0
        self._beta2_t = 1.0

    def step(self, grads: Sequence[np.ndarray]) -> None:
        """Take one step with ``grads`` (one float32 array per parameter, the same shapes).

        Raises
        ------
        ValueError
            If the gradients do not match the parameters in number, shape or dtype.
        """
        if len(grads) != len(self.params):
            raise ValueError(f"{len(grads)} gradients for {len(self.params)} parameters")
        for i, (g, p) in enumerate(zip(grads, self.params, strict=True)):
            if g.shape != p.shape or g.dtype != F32:
                raise ValueError(
                    f"gradient {i} is {g.dtype} {g.shape}, its parameter float32 {p.shape}"
                )
        c = self.config
        self.steps += 1
        self._beta1_t *= c.beta1
        self._beta2_t *= c.beta2
        step_size = F32(c.learning_rate / (1.0 - self._beta1_t))
        correction2_sqrt = F32(math.sqrt(1.0 - self._beta2_t))
        one_minus_beta1, one_minus_beta2 = F32(1.0 - c.beta1), F32(1.0 - c.beta2)
        beta2, eps = F32(c.beta2), F32(c.eps)
        for g, p, m, v in zip(grads, self.params, self._m, self._v, strict=True):
            m += (g - m) * one_minus_beta1
            v *= beta2
            v += one_minus_beta2 * g * g
            denom = np.sqrt(v) / correction2_sqrt + eps
            p += (-step_size * m) / denom
