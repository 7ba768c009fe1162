"""The digits network and its float inference in numpy, the same bits on every machine.

Two 3x3 convolutions (each followed by ReLU and 2x2 max pooling) and one linear layer:
``[n, 1, 28, 28] → conv(c1) → [n, c1, 13, 13] → conv(c2) → [n, c2, 5, 5] → linear → [n, 10]``,
the layout of PyTorch's ``Conv2d``, ``MaxPool2d(2)`` and ``Linear`` (channels first;
pooling drops an odd last row and column).

Every sum is taken in one fixed order of float32 IEEE operations, one elementwise numpy
pass per term (see :mod:`quantpipe.numerics` for why: a BLAS kernel's order, and a fused
multiply-add, depend on the CPU), so the logits are the same bits on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantpipe.mnist.data import N_CLASSES, SIDE

#: Images per block: a block's activations (c1 x 26 x 26 float32 each) stay a few MB.
BLOCK = 512


@dataclass(frozen=True)
class LayerShapes:
    """The shapes of the network's parameters, from its two channel counts."""

    channels: tuple[int, int]

    @property
    def fc_in(self) -> int:
        """Inputs of the linear layer: ``c2 x 5 x 5``."""
        side = ((SIDE - 2) // 2 - 2) // 2
        return self.channels[1] * side * side

    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        """Each parameter's shape, by the names :class:`FloatNet` uses."""
        c1, c2 = self.channels
        return {
            "conv1_weight": (c1, 1, 3, 3),
            "conv1_bias": (c1,),
            "conv2_weight": (c2, c1, 3, 3),
            "conv2_bias": (c2,),
            "fc_weight": (N_CLASSES, self.fc_in),
            "fc_bias": (N_CLASSES,),
        }

    @property
    def param_count(self) -> int:
        """Number of parameters (weights and biases)."""
        return sum(int(np.prod(s)) for s in self.weight_shapes().values())


def layer_shapes(channels: tuple[int, int]) -> LayerShapes:
    """The :class:`LayerShapes` of a network with these channel counts (each ≥ 1)."""
    if len(channels) != 2 or min(channels) < 1:
        raise ValueError(f"need two channel counts of at least 1, got {channels}")
    return LayerShapes((int(channels[0]), int(channels[1])))


@dataclass(frozen=True)
class FloatNet:
    """The trained float32 network.

    Attributes
    ----------
    shapes : LayerShapes
    conv1_weight : ndarray of shape (c1, 1, 3, 3), float32
    conv1_bias : ndarray of shape (c1,), float32
    conv2_weight : ndarray of shape (c2, c1, 3, 3), float32
    conv2_bias : ndarray of shape (c2,), float32
    fc_weight : ndarray of shape (10, c2 * 25), float32
    fc_bias : ndarray of shape (10,), float32
    """

    shapes: LayerShapes
    conv1_weight: np.ndarray
    conv1_bias: np.ndarray
    conv2_weight: np.ndarray
    conv2_bias: np.ndarray
    fc_weight: np.ndarray
    fc_bias: np.ndarray

    def arrays(self) -> dict[str, np.ndarray]:
        """The parameters by name."""
        return {name: getattr(self, name) for name in self.shapes.weight_shapes()}


def pixels_to_float(images: np.ndarray) -> np.ndarray:
    """uint8 images (n, 28, 28) as the network's float32 input (n, 1, 28, 28), ``x / 255``."""
    return (images.astype(np.float32) / np.float32(255.0))[:, None]


def conv3x3(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """A valid 3x3 convolution (cross-correlation, as PyTorch's), in a fixed order.

    ``out = bias``, then for each input channel, row and column of the kernel in turn,
    ``out = out + weight[:, c, i, j] * x[:, c, i:, j:]``, each a rounded float32 operation.

    Parameters
    ----------
    x : ndarray of shape (n, c_in, h, w), float32
    weight : ndarray of shape (c_out, c_in, 3, 3), float32
    bias : ndarray of shape (c_out,), float32

    Returns
    -------
    ndarray of shape (n, c_out, h - 2, w - 2), float32
    """
    n, c_in, h, w = x.shape
    out = np.empty((n, weight.shape[0], h - 2, w - 2), dtype=np.float32)
    out[...] = bias[None, :, None, None]
    term = np.empty_like(out)
    for c in range(c_in):
        for i in range(3):
            for j in range(3):
                np.multiply(
                    weight[None, :, c, i, j, None, None],
                    x[:, c : c + 1, i : i + h - 2, j : j + w - 2],
                    out=term,
                )
                np.add(out, term, out=out)
    return out


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``x @ weight.T + bias``, summed over the inputs in order, in float32.

    Parameters
    ----------
    x : ndarray of shape (n, k), float32
    weight : ndarray of shape (m, k), float32
    bias : ndarray of shape (m,), float32

    Returns
    -------
    ndarray of shape (n, m), float32
    """
    out = np.empty((x.shape[0], weight.shape[0]), dtype=np.float32)
    out[...] = bias
    term = np.empty_like(out)
    for k in range(x.shape[1]):
        np.multiply(x[:, k : k + 1], weight[:, k], out=term)
        np.add(out, term, out=out)
    return out


def relu_pool(x: np.ndarray) -> np.ndarray:
    """ReLU, then 2x2 max pooling with stride 2 (an odd last row and column are dropped).

    Parameters
    ----------
    x : ndarray of shape (n, c, h, w)

    Returns
    -------
    ndarray of shape (n, c, h // 2, w // 2), the same dtype
    """
    n, c, h, w = x.shape
    x = x[:, :, : h // 2 * 2, : w // 2 * 2].reshape(n, c, h // 2, 2, w // 2, 2)
    return np.maximum(x.max(axis=(3, 5)), 0)


def float_logits(net: FloatNet, images: np.ndarray) -> np.ndarray:
    """The network's logits for uint8 images.

    Parameters
    ----------
    net : FloatNet
    images : ndarray of shape (n, 28, 28), uint8

    Returns
    -------
    ndarray of shape (n, 10), float32
    """
    out = np.empty((len(images), N_CLASSES), dtype=np.float32)
    for start in range(0, len(images), BLOCK):
        x = pixels_to_float(images[start : start + BLOCK])
        x = relu_pool(conv3x3(x, net.conv1_weight, net.conv1_bias))
        x = relu_pool(conv3x3(x, net.conv2_weight, net.conv2_bias))
        out[start : start + BLOCK] = linear(x.reshape(len(x), -1), net.fc_weight, net.fc_bias)
    return out
