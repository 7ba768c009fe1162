"""Training the digits network in PyTorch, in a pinned numeric environment.

The only module of quantpipe that imports torch (and only inside its functions, so that
importing it costs nothing). PyTorch's CPU kernels differ by instruction set: by default,
``ATEN_CPU_CAPABILITY`` (default, avx2, avx512), oneDNN's ISA and MKL's code path each give
different weights. :func:`pin_torch` chooses kernels that compute the same bits on every
x86-64 CPU: ATen's portable (non-vectorised) kernels, no oneDNN, no NNPACK (its
convolutions need AVX2: without it, torch falls back to another algorithm, with other
roundings), MKL in its conditional numerical reproducibility mode (``MKL_CBWR=COMPATIBLE``)
and one thread. It must run before torch is first imported, and overrides those settings if
the environment sets them. The optimizer is not torch's: ``torch.sqrt`` rounds differently
on different CPUs, so Adam's steps are taken in numpy (:mod:`quantpipe.mnist.adam`).
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from quantpipe.mnist.adam import Adam, AdamConfig
from quantpipe.mnist.network import FloatNet, LayerShapes, layer_shapes
from quantpipe.mnist.settings import TrainSettings

#: What :func:`pin_torch` sets before torch is imported (the numeric environment).
PINNED_ENV = {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE", "OMP_NUM_THREADS": "1"}

log = logging.getLogger("quantpipe.mnist")


class TorchPinError(RuntimeError):
    """torch was imported before :func:`pin_torch` could choose its kernels."""


def pin_torch() -> Any:
    """Import torch with the portable numeric environment, and return the module.

    Idempotent: a second call returns the same module. On a CPU other than x86-64 it warns
    (the portable kernels differ there).

    Raises
    ------
    TorchPinError
        If torch was imported before, without it (its kernels are chosen at import), or if it
        reports another CPU capability than the portable one.
    """
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        if _is_pinned(torch):
            return torch
        raise TorchPinError("torch was imported before pin_torch(): its kernels are already chosen")
    if platform.machine().lower() not in ("x86_64", "amd64"):
        log.warning(
            "%s: the pinned kernels are x86-64's; the weights may differ from those built on "
            "x86-64 (dvc.lock's)",
            platform.machine(),
        )
    for name, value in PINNED_ENV.items():
        if os.environ.get(name, value) != value:
            log.info("%s=%s ignored: training pins %s=%s", name, os.environ[name], name, value)
        os.environ[name] = value
    import torch

    torch.backends.mkldnn.enabled = False
    torch.backends.nnpack.set_flags(False)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    capability = torch.backends.cpu.get_cpu_capability()
    if capability != "DEFAULT":
        raise TorchPinError(f"torch runs its {capability} kernels, not the portable DEFAULT ones")
    return torch


def _is_pinned(torch: Any) -> bool:
    """Whether an imported torch runs in the environment :func:`pin_torch` sets."""
    return (
        all(os.environ.get(name) == value for name, value in PINNED_ENV.items())
        and torch.backends.cpu.get_cpu_capability() == "DEFAULT"
        and not torch.backends.mkldnn.enabled
        and not torch._C._get_nnpack_enabled()  # what torch.backends.nnpack.set_flags sets
        and torch.get_num_threads() == 1
        and torch.are_deterministic_algorithms_enabled()
    )


def _module(torch: Any, shapes: LayerShapes) -> Any:
    nn = torch.nn
    c1, c2 = shapes.channels
    return nn.Sequential(
        nn.Conv2d(1, c1, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(shapes.fc_in, 10),
    )


def net_from_module(module: Any, shapes: LayerShapes) -> FloatNet:
    """The trained weights as numpy arrays (float32), in :class:`FloatNet`'s layout."""
    conv1, conv2, fc = module[0], module[3], module[7]

    def grab(t: Any) -> np.ndarray:
        return np.ascontiguousarray(t.detach().numpy().astype("<f4"))

    return FloatNet(
        shapes=shapes,
        conv1_weight=grab(conv1.weight),
        conv1_bias=grab(conv1.bias),
        conv2_weight=grab(conv2.weight),
        conv2_bias=grab(conv2.bias),
        fc_weight=grab(fc.weight),
        fc_bias=grab(fc.bias),
    )


def train_network(
    images: np.ndarray,
    labels: np.ndarray,
    settings: TrainSettings,
    progress: Callable[[int, int, float], None] | None = None,
) -> FloatNet:
    """Train the network from scratch on ``images``; same inputs, same bits, on any x86-64.

    Parameters
    ----------
    images : ndarray of shape (n, 28, 28), uint8
    labels : ndarray of shape (n,), uint8, digits 0-9
    settings : TrainSettings
    progress : callable, optional
        Called as ``progress(images_seen, images_total, mean_loss)`` every 100 batches.

    Returns
    -------
    FloatNet
        The trained weights.
    """
    torch = pin_torch()  # raises if torch was imported without it
    torch.manual_seed(settings.seed)
    shapes = layer_shapes(settings.channels)
    module = _module(torch, shapes)
    parameters = list(module.parameters())
    # numpy views of the parameters' storage: the optimizer updates them in place
    optimizer = Adam([p.detach().numpy() for p in parameters], AdamConfig(settings.learning_rate))
    x_all = torch.from_numpy(images.astype(np.float32) / np.float32(255.0)).unsqueeze(1)
    y_all = torch.from_numpy(labels.astype(np.int64))
    order_rng = np.random.RandomState(settings.seed)
    total = settings.epochs * len(images)
    seen, losses, started = 0, [], time.perf_counter()
    module.train()
    for _ in range(settings.epochs):
        order = torch.from_numpy(order_rng.permutation(len(images)))
        for batch, start in enumerate(range(0, len(images), settings.batch_size)):
            rows = order[start : start + settings.batch_size]
            module.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(module(x_all[rows]), y_all[rows])
            loss.backward()
            optimizer.step([p.grad.numpy() for p in parameters])
            seen += len(rows)
            losses.append(float(loss.detach()))
            if progress is not None and (batch + 1) % 100 == 0:
                progress(seen, total, float(np.mean(losses[-100:])))
    log.info("trained on %d images in %.1f s", seen, time.perf_counter() - started)
    return net_from_module(module.eval(), shapes)
