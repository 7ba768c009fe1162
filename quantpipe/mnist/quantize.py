"""Post-training quantization of the digits network (:mod:`quantpipe.mnist.qnet` runs it).

Weights per output channel, symmetric, at any width from 2 to 16 bits; activations static,
calibrated on training images; see :mod:`quantpipe.mnist.qnet` for the format and its
integer-only inference.

With ``rounding="data-aware"`` each output channel's clipping range is chosen, from a grid,
to minimise the layer's output error on the calibration images, then each weight is
rounded down or up (coordinate descent on the same error), and with ``bias_correction`` the
bias absorbs the mean output error. Every number is computed in a fixed order or exactly,
so the same calibration images give the same model on every machine.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from quantpipe.exact import dot
from quantpipe.mnist.kernels import EXACT_FLOAT, fixed_point, patch_order, patches
from quantpipe.mnist.network import BLOCK, FloatNet, conv3x3, pixels_to_float, relu_pool
from quantpipe.mnist.qnet import (
    QuantLayer,
    QuantNet,
    activation_bits,
    bias_max,
    conv_codes,
    product_bounds,
)
from quantpipe.mnist.settings import QuantSettings
from quantpipe.numerics import row_dot

#: The clipping ranges tried per channel, as fractions of the channel's largest |weight|.
CLIP_GRID = tuple(round(1.0 - 0.025 * i, 3) for i in range(17))  # 1.0 down to 0.6
#: Coordinate-descent sweeps over a channel's weights (data-aware rounding).
SWEEPS = 2
INPUT_SCALE = 1.0 / 255.0

log = logging.getLogger("quantpipe.mnist")


def activation_range(values: np.ndarray, calibration: str, percentile: float) -> float:
    """The range an activation's codes cover: its max, or an order statistic of its values.

    The percentile is the value at rank ``ceil(n * percentile / 100) - 1`` of the sorted
    values (no interpolation, so no float arithmetic that could differ between machines).
    """
    flat = np.sort(values.reshape(-1))
    if calibration == "minmax" or flat.size == 0:
        top = float(flat[-1]) if flat.size else 0.0
    else:
        rank = max(int(np.ceil(flat.size * percentile / 100.0)) - 1, 0)
        top = float(flat[rank])
    return top if top > 0 else 1.0


def float_activations(net: FloatNet, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The float network's two pooled activations, the inputs of conv2 and fc."""
    a1 = relu_pool(conv3x3(pixels_to_float(images), net.conv1_weight, net.conv1_bias))
    a2 = relu_pool(conv3x3(a1, net.conv2_weight, net.conv2_bias))
    return a1, a2


def _error(d: np.ndarray, gram: np.ndarray) -> float:
    """``d @ gram @ d`` in a fixed order."""
    g = row_dot(gram, d, np.empty(len(d)))
    return float(row_dot(d[None], g, np.empty(1))[0])


def _nearest(w: np.ndarray, scale: float, qmax: int) -> np.ndarray:
    return np.clip(np.rint(w / scale), -qmax, qmax)


def _descend(
    w: np.ndarray, codes: np.ndarray, scale: float, gram: np.ndarray, qmax: int
) -> np.ndarray:
    """Round each weight down or up, whichever lowers ``d @ gram @ d``.

    ``d = w - scale * codes``; coordinate descent, :data:`SWEEPS` passes at most.
    """
    codes = codes.copy()
    d = w - scale * codes
    g = row_dot(gram, d, np.empty(len(d)))
    for _ in range(SWEEPS):
        changed = False
        for i in range(len(w)):
            step = -1.0 if d[i] < 0 else 1.0  # move the code towards the weight's other side
            if abs(codes[i] + step) > qmax:
                continue
            delta = -step * scale  # the change in d[i]
            gain = 2.0 * delta * float(g[i]) + delta * delta * float(gram[i, i])
            if gain < 0.0:
                codes[i] += step
                d[i] = w[i] - scale * codes[i]
                g = g + delta * gram[:, i]
                changed = True
        if not changed:
            break
    return codes


def quantize_weights(
    w: np.ndarray, gram: np.ndarray, bits: int, rounding: str
) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel symmetric codes and scales for one layer's weights.

    Parameters
    ----------
    w : ndarray of shape (c_out, k), float64
    gram : ndarray of shape (k, k), float64
        ``X.T @ X`` of the layer's (quantized) inputs on the calibration images: the output
        error of a weight change ``d`` is ``d @ gram @ d``.
    bits : int
    rounding : {"nearest", "data-aware"}

    Returns
    -------
    codes : ndarray of shape (c_out, k), int32
    scales : ndarray of shape (c_out,), float64
    """
    qmax = 2 ** (bits - 1) - 1
    codes = np.empty(w.shape, dtype=np.int32)
    scales = np.empty(len(w))
    for c, row in enumerate(w):
        top = float(np.abs(row).max())
        if top == 0.0:
            codes[c], scales[c] = 0, 1.0
            continue
        ratios = CLIP_GRID if rounding == "data-aware" else (1.0,)
        best = min(
            ratios,
            key=lambda r: _error(
                row - (r * top / qmax) * _nearest(row, r * top / qmax, qmax), gram
            ),
        )
        scale = best * top / qmax
        q = _nearest(row, scale, qmax)
        if rounding == "data-aware":
            q = _descend(row, q, scale, gram, qmax)
        codes[c], scales[c] = q, scale
    return codes, scales


def _gram(blocks: Iterable[np.ndarray], x_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``x.T @ x`` and column means of integer-valued rows, given block by block.

    Every partial sum is at most the total, which is checked to stay below 2**53: the
    float64 sums are exact, in any order and whatever the blocks.
    """
    gram: np.ndarray | None = None
    sums: np.ndarray | None = None
    rows = 0
    for x in blocks:
        rows += len(x)
        if rows * x_max * x_max >= EXACT_FLOAT:
            raise ValueError(f"{rows} calibration rows are too many for an exact Gram matrix")
        xf = x.astype(np.float64)
        gram = xf.T @ xf if gram is None else gram + xf.T @ xf
        sums = xf.sum(axis=0) if sums is None else sums + xf.sum(axis=0)
    if gram is None or sums is None:
        raise ValueError("no calibration images")
    return gram, sums / rows


def _in_blocks(x: np.ndarray, step: Callable[[np.ndarray], np.ndarray]) -> Iterator[np.ndarray]:
    """``step`` of each block of ``BLOCK`` images of ``x``."""
    for start in range(0, len(x), BLOCK):
        yield step(x[start : start + BLOCK])


def _layer(
    w: np.ndarray,
    b: np.ndarray,
    x: Iterable[np.ndarray],
    x_scale: float,
    x_max: int,
    out_scale: float | None,
    settings: QuantSettings,
    conv: bool = True,
) -> QuantLayer:
    """Quantize one layer for integer inputs ``x`` (blocks of rows of codes) at ``x_scale``.

    ``out_scale`` None: the output is at the finest of the accumulators' scales (logits).
    """
    w = w.reshape(len(w), -1).astype(np.float64)
    gram, means = _gram(x, x_max)
    if conv:  # the patches' columns, put in the weight's order
        order = patch_order(w.shape[1] // 9)
        gram, means = gram[np.ix_(order, order)], means[order]
    codes, scales = quantize_weights(w, gram, settings.bits, settings.rounding)
    bias = b.astype(np.float64)
    if settings.bias_correction:
        # the mean output error, mean(x_scale * x) @ (w - w_q), moved into the bias
        error = [dot(means, row - s * q) for row, s, q in zip(w, scales, codes, strict=True)]
        bias = bias + x_scale * np.array(error)
    acc_scale = x_scale * scales
    if out_scale is None:
        out_scale = float(acc_scale.min())
    top = bias_max(settings.bits)
    bias_codes = np.clip(np.rint(bias / acc_scale), -top, top).astype(np.int64)
    bound = int((product_bounds(codes, x_max) + np.abs(bias_codes)).max())
    m0, shift = fixed_point(acc_scale / out_scale, bound)
    return QuantLayer(codes, scales, bias_codes, m0, shift, x_scale, out_scale, x_max)


def quantize_network(net: FloatNet, calibration: np.ndarray, settings: QuantSettings) -> QuantNet:
    """Quantize ``net``, layer by layer, calibrated on ``calibration`` images.

    Each layer's weights are fitted to the codes its quantized predecessors give on the
    calibration images, and each activation's scale to the float network's range there.

    Parameters
    ----------
    net : FloatNet
    calibration : ndarray of shape (n, 28, 28), uint8
    settings : QuantSettings

    Returns
    -------
    QuantNet
    """
    act_bits = activation_bits(settings.bits)
    act_max = 2**act_bits - 1
    blocks = [
        float_activations(net, calibration[i : i + BLOCK])
        for i in range(0, len(calibration), BLOCK)
    ]
    s1, s2 = (
        activation_range(
            np.concatenate([b[i] for b in blocks]), settings.calibration, settings.percentile
        )
        / act_max
        for i in (0, 1)
    )
    del blocks
    x0 = calibration[:, :, :, None].astype(np.float32)
    w, b = net.conv1_weight, net.conv1_bias
    conv1 = _layer(w, b, _in_blocks(x0, patches), INPUT_SCALE, 255, s1, settings)
    x1 = np.concatenate(list(_in_blocks(x0, lambda x: conv_codes(x, conv1, act_max))))
    w, b = net.conv2_weight, net.conv2_bias
    conv2 = _layer(w, b, _in_blocks(x1, patches), s1, act_max, s2, settings)
    x2 = np.concatenate(list(_in_blocks(x1, lambda x: conv_codes(x, conv2, act_max))))
    x2 = x2.transpose(0, 3, 1, 2).reshape(len(x2), -1)
    w, b = net.fc_weight, net.fc_bias
    fc = _layer(w, b, _in_blocks(x2, lambda x: x), s2, act_max, None, settings, conv=False)
    log.info("quantized to %d-bit weights, %d-bit activations", settings.bits, act_bits)
    return QuantNet(net.shapes, settings.bits, act_bits, (conv1, conv2, fc))
