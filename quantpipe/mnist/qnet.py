"""The quantized digits network and its integer-only inference.

Weights: per output channel, symmetric, ``bits`` wide (2 to 16), one scale per channel, no
zero point. Activations: unsigned codes (every activation follows a ReLU, so the zero point
is 0), 8 bits wide for weights of up to 8 bits, else 16, one scale per tensor; the input is
the image's own uint8 pixels (scale 1/255, exactly the float network's input). Biases: int32
codes at the scale of their accumulator (int64 above 8 bits, where that scale is too fine for
32).

Inference (:func:`integer_logits`) is integer arithmetic only: exact integer products and
sums (:func:`~quantpipe.mnist.kernels.int_matmul`), max pooling on the accumulators, and a
fixed-point requantization per channel (:func:`~quantpipe.mnist.kernels.requantize`), the
ReLU being its clamp at 0. The logits come out as integers at one common scale, so the
predicted digit is their argmax; only the class probabilities use floats. How a network is
quantized is :mod:`quantpipe.mnist.quantize`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from quantpipe.mnist.kernels import int_matmul, patch_order, patches, requantize
from quantpipe.mnist.network import BLOCK, LayerShapes
from quantpipe.quant.codes import check_bits

INT32_MAX = 2**31 - 1
LAYERS = ("conv1", "conv2", "fc")


def bias_max(bits: int) -> int:
    """The largest bias code: int32's for weights of up to 8 bits.

    Above, the accumulators' scale is too fine for 32 bits: int64, with headroom.
    """
    return INT32_MAX if bits <= 8 else 2**52


def activation_bits(bits: int) -> int:
    """The activation width that goes with ``bits``-wide weights: 8 up to 8 bits, else 16."""
    check_bits(bits)
    return 8 if bits <= 8 else 16


def product_bounds(codes: np.ndarray, input_max: int) -> np.ndarray:
    """Per output channel, the largest ``|sum of products|`` of inputs up to ``input_max``.

    Parameters
    ----------
    codes : ndarray of shape (c_out, k), integers
    input_max : int

    Returns
    -------
    ndarray of shape (c_out,), int64
    """
    return np.abs(codes.astype(np.int64)).sum(axis=1) * input_max


@dataclass(frozen=True)
class QuantLayer:
    """One quantized layer.

    Attributes
    ----------
    weight_codes : ndarray of shape (c_out, k), int32
        Symmetric codes; ``k`` is ``c_in * 9`` for a convolution (the order of
        ``weight.reshape(c_out, -1)``).
    weight_scale : ndarray of shape (c_out,), float64
        A weight is ``weight_scale[c] * code``.
    bias_codes : ndarray of shape (c_out,), int64
        int32 values at the accumulator's scale, ``input_scale * weight_scale[c]``.
    m0, shift : ndarray of shape (c_out,), int64
        The fixed-point multiplier from the accumulator to the output's codes.
    input_scale, output_scale : float
    input_max : int
        The largest input code.
    """

    weight_codes: np.ndarray
    weight_scale: np.ndarray
    bias_codes: np.ndarray
    m0: np.ndarray
    shift: np.ndarray
    input_scale: float
    output_scale: float
    input_max: int

    @functools.cached_property
    def acc_bound(self) -> int:
        """The largest ``|sum of products|`` any input can give (the bias is added in int64)."""
        return int(product_bounds(self.weight_codes, self.input_max).max())

    @functools.cached_property
    def fc_weights(self) -> np.ndarray:
        """The codes as the right operand of a linear layer's product, (k, c_out), float32."""
        return np.ascontiguousarray(self.weight_codes.T, dtype=np.float32)

    @functools.cached_property
    def conv_weights(self) -> np.ndarray:
        """The codes as the right operand of a product with :func:`patches`, (k, c_out)."""
        order = patch_order(self.weight_codes.shape[1] // 9)
        weights = np.empty((len(order), len(self.weight_codes)), dtype=np.float32)
        weights[order] = self.weight_codes.T
        return weights


@dataclass(frozen=True)
class QuantNet:
    """The quantized network: three layers, and what they were made from.

    Attributes
    ----------
    shapes : LayerShapes
    bits : int
        Weight width.
    act_bits : int
        Activation width (:func:`activation_bits`).
    layers : tuple of QuantLayer
        conv1, conv2 and fc; fc's outputs are logits at ``layers[2].output_scale``.
    """

    shapes: LayerShapes
    bits: int
    act_bits: int
    layers: tuple[QuantLayer, QuantLayer, QuantLayer]


# -- inference -------------------------------------------------------------------------------


def conv_codes(x: np.ndarray, layer: QuantLayer, act_max: int) -> np.ndarray:
    """A quantized convolution, 2x2 max pooling and ReLU on codes, channels last.

    The products are summed exactly (:func:`int_matmul`), pooled, the bias added (a
    per-channel constant commutes with the max), then requantized and clamped to the codes
    (the ReLU is the clamp at 0).

    Parameters
    ----------
    x : ndarray of shape (n, h, w, c_in)
        Integer-valued input codes.

    Returns
    -------
    ndarray of shape (n, (h - 2) // 2, (w - 2) // 2, c_out), float32
        Integer-valued output codes.
    """
    n, h, w, _ = x.shape
    acc = int_matmul(patches(x), layer.conv_weights, layer.acc_bound).reshape(n, h - 2, w - 2, -1)
    hp, wp = (h - 2) // 2, (w - 2) // 2
    top = np.maximum(acc[:, 0 : 2 * hp : 2, 0 : 2 * wp : 2], acc[:, 0 : 2 * hp : 2, 1 : 2 * wp : 2])
    bottom = np.maximum(
        acc[:, 1 : 2 * hp : 2, 0 : 2 * wp : 2], acc[:, 1 : 2 * hp : 2, 1 : 2 * wp : 2]
    )
    pooled = np.maximum(top, bottom).astype(np.int64) + layer.bias_codes
    codes = np.clip(requantize(pooled, layer.m0, layer.shift, axis=-1), 0, act_max)
    return codes.astype(np.float32)


def _fc_logits(x: np.ndarray, layer: QuantLayer) -> np.ndarray:
    """The linear layer on channels-last codes (n, h, w, c): integer logits (n, 10)."""
    flat = x.transpose(0, 3, 1, 2).reshape(len(x), -1)  # PyTorch's flatten order: c, h, w
    acc = int_matmul(flat, layer.fc_weights, layer.acc_bound).astype(np.int64)
    return requantize(acc + layer.bias_codes, layer.m0, layer.shift, axis=1)


def integer_logits(net: QuantNet, images: np.ndarray) -> np.ndarray:
    """The quantized network's logits, by integer arithmetic only.

    Parameters
    ----------
    net : QuantNet
    images : ndarray of shape (n, 28, 28), uint8

    Returns
    -------
    ndarray of shape (n, 10), int64
        Logits in units of ``net.layers[2].output_scale``.
    """
    act_max = 2**net.act_bits - 1
    conv1, conv2, fc = net.layers
    out = np.empty((len(images), fc.weight_codes.shape[0]), dtype=np.int64)
    for start in range(0, len(images), BLOCK):
        x = images[start : start + BLOCK, :, :, None].astype(np.float32)
        x = conv_codes(conv_codes(x, conv1, act_max), conv2, act_max)
        out[start : start + BLOCK] = _fc_logits(x, fc)
    return out
