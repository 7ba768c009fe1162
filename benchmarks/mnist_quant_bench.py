"""8-bit static quantization of the digits CNN: quantpipe, PyTorch and ONNX Runtime side by side.

Quantizes the same trained network (``models/mnist/fp32.npz``) with the same calibration
images (the pipeline's: :func:`stages.mnist_quantize.calibration_rows` of the training images)
three ways, and measures each on the 10,000 test images:

* quantpipe: ``models/mnist/quantized/q8.npz`` as the pipeline built it, and q4 quantized here
  with the pipeline's settings (a width the other two cannot run);
* PyTorch eager-mode static PTQ (``torch.ao.quantization``): the network rebuilt as
  ``nn.Module`` with QuantStub/DeQuantStub, conv+ReLU fused, the ``x86`` qconfig (histogram
  quint8 activations with ``reduce_range``, i.e. codes 0 to 127; per-channel symmetric int8
  weights), prepare, calibrate, convert;
* ONNX Runtime static quantization: the float module exported with ``torch.onnx.export``,
  pre-processed with ``quant_pre_process``, then ``quantize_static`` (QDQ, int8 activations
  and weights, per-channel, MinMax calibration).

Per model: test accuracy, agreement with the fp32 network's digits (quantpipe's numpy
inference), parameter bytes at their stored widths (quantpipe's ``param_bytes``; for PyTorch
the int8 weights, float64 per-channel scales, int64 zero points, float32 biases and activation
scales and zero points of the state_dict; for ONNX Runtime all initializers), the serialized
size (the ``.npz``, ``torch.save`` of the state_dict, the ``.onnx`` file) and latency per image
at batch 1 and 256: the median of ``--repeats`` calls after warm-up, from uint8 images to
digits, on one thread. The float network in each runtime is a row too, as the reference
(its agreement checks the rebuilt network). Prints one markdown table and a line of versions.

Run from the repository root after ``dvc repro``, in an environment with torch, onnx,
onnxruntime, onnxscript and quantpipe (about two minutes; torch's deprecation warnings and the
exporter's notes go to stderr)::

    pip install torch==2.13.0+cpu onnx onnxruntime onnxscript PyYAML && pip install -e .

    python benchmarks/mnist_quant_bench.py [--repeats 50] [--calibration-images 1000]
"""

from __future__ import annotations

import os
import sys

# one thread for every library, numpy's BLAS (quantpipe's int_matmul) included
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # stages

import argparse
import contextlib
import io
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper
from onnxruntime import quantization as oq
from torch import nn
from torch.ao import quantization as tq

from quantpipe.mnist.data import load_digits
from quantpipe.mnist.evaluation import predict_digits
from quantpipe.mnist.modelfile import load_net, param_bytes, save_quant_net
from quantpipe.mnist.network import FloatNet, pixels_to_float
from quantpipe.mnist.qnet import QuantNet
from quantpipe.mnist.quantize import quantize_network
from quantpipe.params import load_params
from stages.mnist_quantize import calibration_rows

#: uint8 images (n, 28, 28) -> digits (n,).
Predictor = Callable[[np.ndarray], np.ndarray]
INPUT = "images"
BATCHES = (1, 256)


class DigitsCNN(nn.Module):
    """The digits network as a torch module, with the stubs eager-mode quantization needs."""

    def __init__(self, net: FloatNet) -> None:
        super().__init__()
        c1, c2 = net.shapes.channels
        self.quant, self.dequant = tq.QuantStub(), tq.DeQuantStub()
        self.conv1, self.relu1 = nn.Conv2d(1, c1, 3), nn.ReLU()
        self.conv2, self.relu2 = nn.Conv2d(c1, c2, 3), nn.ReLU()
        self.pool, self.flatten = nn.MaxPool2d(2), nn.Flatten()
        self.fc = nn.Linear(net.shapes.fc_in, 10)
        with torch.no_grad():
            for name, array in net.arrays().items():
                layer, kind = name.split("_")
                getattr(self, layer).get_parameter(kind).copy_(torch.from_numpy(array))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of float images ``x / 255`` of shape (n, 1, 28, 28)."""
        x = self.pool(self.relu1(self.conv1(self.quant(x))))
        x = self.pool(self.relu2(self.conv2(x)))
        return self.dequant(self.fc(self.flatten(x)))


def torch_quantize(net: FloatNet, calibration: np.ndarray) -> nn.Module:
    """PyTorch eager static PTQ: fuse conv+ReLU, ``x86`` qconfig, prepare, calibrate, convert."""
    torch.backends.quantized.engine = "x86"
    model = tq.fuse_modules(DigitsCNN(net).eval(), [["conv1", "relu1"], ["conv2", "relu2"]])
    model.qconfig = tq.get_default_qconfig("x86")
    prepared = tq.prepare(model)
    with torch.inference_mode():
        for start in range(0, len(calibration), 100):
            prepared(torch.from_numpy(pixels_to_float(calibration[start : start + 100])))
    return tq.convert(prepared)


def torch_model(model: nn.Module) -> tuple[Predictor, tuple[int, int]]:
    """A module's digits, its state_dict's bytes, and the size of that state_dict saved.

    Digits under ``inference_mode``; values count as :func:`stored_bytes`; saved with
    ``torch.save`` into memory.
    """

    def predict(images: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(pixels_to_float(images))).argmax(1).numpy()

    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    state_bytes = sum(stored_bytes(v) for v in model.state_dict().values())
    return predict, (state_bytes, len(buffer.getvalue()))


def stored_bytes(value: object) -> int:
    """Bytes of a state_dict value: a quantized tensor's int codes, scales and zero points."""
    if isinstance(value, tuple | list):
        return sum(stored_bytes(v) for v in value)
    if not isinstance(value, torch.Tensor):
        return 0
    if not value.is_quantized:
        return value.numel() * value.element_size()
    codes = value.int_repr().numel() * value.element_size()
    if value.qscheme() in (torch.per_channel_symmetric, torch.per_channel_affine):
        scales, zeros = value.q_per_channel_scales(), value.q_per_channel_zero_points()
        return codes + sum(t.numel() * t.element_size() for t in (scales, zeros))
    return codes + 8 + 8  # one float64 scale, one int64 zero point


class ImagesReader(oq.CalibrationDataReader):
    """Feeds the calibration images to ONNX Runtime's calibrator, 100 at a time."""

    def __init__(self, images: np.ndarray) -> None:
        x = pixels_to_float(images)
        self._batches = iter([{INPUT: x[i : i + 100]} for i in range(0, len(x), 100)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next batch, or None when all have been fed."""
        return next(self._batches, None)


def ort_quantize(net: FloatNet, calibration: np.ndarray, workdir: Path) -> Path:
    """Export to ONNX (dynamic batch), pre-process, and ``quantize_static`` (QDQ, int8)."""
    fp32, prep, q8 = (workdir / f"{n}.onnx" for n in ("fp32", "prep", "q8"))
    batch = torch.export.Dim("batch", min=1, max=4096)
    torch.onnx.export(
        DigitsCNN(net).eval(),
        (torch.zeros(2, 1, 28, 28),),
        fp32,
        input_names=[INPUT],
        dynamic_shapes=({0: batch},),
        external_data=False,
    )
    oq.quant_pre_process(str(fp32), str(prep))
    int8 = {"activation_type": oq.QuantType.QInt8, "weight_type": oq.QuantType.QInt8}
    reader = ImagesReader(calibration)
    oq.quantize_static(prep, q8, reader, quant_format=oq.QuantFormat.QDQ, per_channel=True, **int8)
    return q8


def ort_model(path: Path) -> tuple[Predictor, tuple[int, int]]:
    """An ONNX model's digits, its initializers' bytes and its file's size.

    The session is single-threaded, on the CPU; initializers count at their stored widths.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def predict(images: np.ndarray) -> np.ndarray:
        return session.run(None, {INPUT: pixels_to_float(images)})[0].argmax(1)

    initializers = onnx.load(path).graph.initializer
    param_total = sum(numpy_helper.to_array(t).nbytes for t in initializers)
    return predict, (param_total, path.stat().st_size)


def quantpipe_model(net: FloatNet | QuantNet, path: Path) -> tuple[Predictor, tuple[int, int]]:
    """quantpipe's digits of ``net``, its ``param_bytes`` and the size of its file ``path``."""
    return partial(predict_digits, net), (param_bytes(net), path.stat().st_size)


def latency_us(predict: Predictor, images: np.ndarray, repeats: int) -> float:
    """Microseconds per image of one call on ``images``: the median of ``repeats`` after 3."""
    for _ in range(3):
        predict(images)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predict(images)
        times.append(time.perf_counter() - start)
    return statistics.median(times) / len(images) * 1e6


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo``, or what :mod:`platform` says."""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def table_row(name: str, bits: str, predict: Predictor, sizes: tuple[int, int], bench: dict) -> str:
    """One markdown row: accuracy, agreement, ``sizes`` (param and file bytes), latencies."""
    digits = predict(bench["x"])
    lat = [latency_us(predict, bench["x"][:b], bench["repeats"]) for b in BATCHES]
    return (
        f"| {name} | {bits} | {np.mean(digits == bench['y']):.4f} | "
        f"{np.mean(digits == bench['reference']):.4f} | {sizes[0]:,} | {sizes[1]:,} | "
        f"{lat[0]:.1f} | {lat[1]:.1f} |"
    )


def main() -> None:
    """Quantize three ways, measure, and print the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=50, help="timed calls per latency figure")
    p.add_argument(
        "--calibration-images",
        type=int,
        help="images to calibrate on (default: mnist.quantize.calibration_images)",
    )
    args = p.parse_args()
    torch.set_num_threads(1)
    params = load_params()
    mq, seed = params.mnist.quantize, params.mnist.train.seed
    count = args.calibration_images or mq.calibration_images
    data = load_digits("data/mnist/digits.npz")
    calibration = data.x_train[calibration_rows(len(data.x_train), count, seed)]
    paths = {v: Path(f"models/mnist/{v}.npz") for v in ("fp32", "quantized/q8")}
    float_net = load_net(paths["fp32"], "fp32")
    q8 = load_net(paths["quantized/q8"], "q8")
    q4 = quantize_network(float_net, calibration, mq.settings(4))  # the pipeline's settings
    bench = {"x": data.x_test, "y": data.y_test.astype(np.int64), "repeats": args.repeats}
    bench["reference"] = predict_digits(float_net, data.x_test)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        record = {"seed": seed, "quantize": {"bits": 4, **mq.to_dict()}}  # as the stage writes
        save_quant_net(workdir / "q4.npz", q4, record)
        with contextlib.redirect_stdout(io.StringIO()):  # the exporter's progress
            ort_q8 = ort_quantize(float_net, calibration, workdir)
        torch_q8 = torch_quantize(float_net, calibration)
        models = [
            ("fp32, quantpipe numpy", "32/32", *quantpipe_model(float_net, paths["fp32"])),
            ("quantpipe q8", "8/8", *quantpipe_model(q8, paths["quantized/q8"])),
            ("quantpipe q4 (made here)", "4/8", *quantpipe_model(q4, workdir / "q4.npz")),
            ("fp32, torch (rebuilt)", "32/32", *torch_model(DigitsCNN(float_net).eval())),
            ("torch eager PTQ, x86", "8/8 (7-bit range)", *torch_model(torch_q8)),
            ("fp32, onnxruntime (exported)", "32/32", *ort_model(workdir / "fp32.onnx")),
            ("onnxruntime static QDQ", "8/8", *ort_model(ort_q8)),
        ]
        rows = [table_row(*model, bench) for model in models]
    print(
        "| model | bits W/A | test accuracy | agreement with fp32 | param bytes | file bytes "
        "| µs/image batch 1 | µs/image batch 256 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(
        f"torch {torch.__version__}, onnxruntime {ort.__version__}, numpy {np.__version__}; "
        f"CPU {cpu_model()}; {count} calibration images; 1 thread"
    )


if __name__ == "__main__":
    main()
