"""ONNX Runtime quantization against quantpipe's variants: fidelity, size and throughput.

Exports the fp64 ``LinearRegression`` (``models/fp64.npz``) as an ONNX graph, ``MatMul`` then
``Add`` on a float32 input ``X`` of shape (N, 8), and quantizes it with
``onnxruntime.quantization``: dynamic (weights QInt8 or QUInt8, per-tensor and per-channel)
and static (QDQ and QOperator formats, activations QUInt8 and weights QInt8, per-tensor and
per-channel, MinMax and Percentile calibration on training rows). Static quantization
quantizes the activations too, the input rows included, with one scale for all 8 features:
this is ONNX Runtime's QLinear path applied to the raw model. Dynamic quantization quantizes
the input at run time, with one scale per call computed from the whole batch. ``W`` has one
output column, so per-channel means one channel: the same codes as per-tensor.

ONNX Runtime advises running ``quant_pre_process`` before quantizing. On this graph it fuses
MatMul and Add into one Gemm, which static quantization turns into QGemm (or a QDQ Gemm)
with an int32 bias; the static configurations are therefore run on both graphs, the
pre-processed rows marked ``static+prep``. Dynamic quantization gives the same operators
(MatMulInteger) on either graph and is run on the exported one only. The advice itself is
not repeated on every call.

Every ONNX model (the float ones included) and every quantpipe variant is then measured on the
test split (4,128 rows) against the fp64 numpy model's predictions: R² against the targets,
RMS, p99 and max of |Δpred|, the bytes of the parameters (ONNX initializers, quantpipe's
``param_bytes``) and of the file, and rows/s predicting the test rows repeated to 1,000,000
rows in one call (median of 5 runs after a warm-up; ONNX Runtime with one
``InferenceSession``, ``intra_op_num_threads=1`` and a float32 input cast beforehand;
quantpipe with ``model.predict`` on float64). A configuration that ONNX Runtime cannot
quantize or load is reported on one line and left out of the table. Prints one markdown
table.

Run from the repository root after ``dvc repro``, in an environment with the serving
dependencies and ONNX Runtime (about 10 s on 2 cores)::

    pip install -r requirements-serve.txt onnx==1.23.2 onnxruntime==1.32.0
    PYTHONPATH=. python benchmarks/onnx_bench.py [--workdir /tmp/quantpipe-onnx]

Throughput figures share the machine with whatever else runs on it: quote one run only.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_dynamic,
    quantize_static,
)

from quantpipe.data import load_dataset
from quantpipe.registry import ModelRegistry

#: ONNX opset of the exported graph (MatMul and Add; ONNX Runtime's quantizer supports it).
OPSET = 17
#: The IR version that goes with opset 17.
IR_VERSION = 8
INPUT_NAME = "X"
#: Rows fed per calibration batch.
CALIBRATION_BATCH = 100
#: What ONNX Runtime raises when it cannot quantize a graph or load the result.
ORT_ERRORS = (
    ValueError,
    RuntimeError,
    NotImplementedError,
    KeyError,
    ImportError,
    onnx.checker.ValidationError,
    ort_errors.Fail,
    ort_errors.InvalidArgument,
    ort_errors.InvalidGraph,
    ort_errors.NotImplemented,
    ort_errors.RuntimeException,
)


@dataclass(frozen=True)
class OrtConfig:
    """One ONNX Runtime quantization configuration.

    Attributes
    ----------
    mode : str
        ``dynamic`` or ``static``.
    weight_type : QuantType
    per_channel : bool
    quant_format : QuantFormat, optional
        Static only: QDQ or QOperator.
    calibrate_method : CalibrationMethod, optional
        Static only.
    activation_type : QuantType, optional
        Static only.
    preprocessed : bool
        Quantize the graph after ``quant_pre_process`` (MatMul and Add fused into Gemm).
    """

    mode: str
    weight_type: QuantType
    per_channel: bool
    quant_format: QuantFormat | None = None
    calibrate_method: CalibrationMethod | None = None
    activation_type: QuantType | None = None
    preprocessed: bool = False

    @property
    def name(self) -> str:
        """A short label, e.g. ``ort static+prep QDQ MinMax A:QUInt8 W:QInt8 per-channel``."""
        parts = ["ort", self.mode + ("+prep" if self.preprocessed else "")]
        if self.mode == "static":
            parts += [self.quant_format.name, self.calibrate_method.name]
            parts.append(f"A:{self.activation_type.name}")
        parts.append(f"W:{self.weight_type.name}")
        parts.append("per-channel" if self.per_channel else "per-tensor")
        return " ".join(parts)

    @property
    def filename(self) -> str:
        """The quantized model's file name in the work directory."""
        return self.name.replace(" ", "_").replace(":", "").replace("+", "_") + ".onnx"


@dataclass(frozen=True)
class Row:
    """One line of the results table."""

    name: str
    r2: float
    rms: float
    p99: float
    max_abs: float
    param_bytes: int
    file_bytes: int
    rows_per_s: float


class RowsReader(CalibrationDataReader):
    """Feeds training rows, as float32, to ONNX Runtime's calibrator in fixed-size batches.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    batch : int
        Rows per batch.
    """

    def __init__(self, X: np.ndarray, batch: int = CALIBRATION_BATCH) -> None:
        X32 = np.ascontiguousarray(X, dtype=np.float32)
        self._batches = iter([{INPUT_NAME: X32[i : i + batch]} for i in range(0, len(X32), batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next batch, or None when all rows have been fed."""
        return next(self._batches, None)


class DropPreprocessAdvice(logging.Filter):
    """Drops ONNX Runtime's advice to pre-process, logged on every quantization call."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False for the advice, True for anything else."""
        return "pre-processing before quantization" not in record.getMessage()


def ort_configs() -> Iterator[OrtConfig]:
    """Every configuration to try: dynamic, then static, then static on the pre-processed
    graph."""
    for weight_type in (QuantType.QInt8, QuantType.QUInt8):
        for per_channel in (False, True):
            yield OrtConfig("dynamic", weight_type, per_channel)
    for preprocessed in (False, True):
        for method in (CalibrationMethod.MinMax, CalibrationMethod.Percentile):
            for quant_format in (QuantFormat.QDQ, QuantFormat.QOperator):
                for per_channel in (False, True):
                    yield OrtConfig(
                        "static",
                        QuantType.QInt8,
                        per_channel,
                        quant_format=quant_format,
                        calibrate_method=method,
                        activation_type=QuantType.QUInt8,
                        preprocessed=preprocessed,
                    )


def export_linear(weights: np.ndarray, intercept: float, path: Path) -> Path:
    """Write ``y = X @ W + B`` as an ONNX graph of MatMul and Add, in float32.

    Parameters
    ----------
    weights : ndarray of shape (n_features,)
    intercept : float
    path : Path

    Returns
    -------
    Path
        ``path``, checked by ``onnx.checker``.
    """
    n = weights.shape[0]
    W = numpy_helper.from_array(weights.astype(np.float32).reshape(n, 1), name="W")
    B = numpy_helper.from_array(np.array([intercept], dtype=np.float32), name="B")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", [INPUT_NAME, "W"], ["XW"], name="matmul"),
            helper.make_node("Add", ["XW", "B"], ["y"], name="add"),
        ],
        "quantpipe_linear",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])],
        initializer=[W, B],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="quantpipe-onnx-bench",
    )
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def quantize_onnx(config: OrtConfig, source: Path, target: Path, calibration: np.ndarray) -> Path:
    """Quantize ``source`` into ``target`` with one configuration.

    Parameters
    ----------
    config : OrtConfig
    source, target : Path
    calibration : ndarray of shape (n_samples, n_features)
        Training rows for static calibration.

    Returns
    -------
    Path
        ``target``.

    Raises
    ------
    One of ``ORT_ERRORS``
        If ONNX Runtime cannot quantize the graph with this configuration.
    """
    if config.mode == "dynamic":
        quantize_dynamic(
            source, target, per_channel=config.per_channel, weight_type=config.weight_type
        )
    else:
        # the Percentile calibrator prints its progress on stdout, between the results
        with contextlib.redirect_stdout(io.StringIO()):
            quantize_static(
                source,
                target,
                RowsReader(calibration),
                quant_format=config.quant_format,
                per_channel=config.per_channel,
                activation_type=config.activation_type,
                weight_type=config.weight_type,
                calibrate_method=config.calibrate_method,
            )
    return target


def preprocess(source: Path, target: Path) -> Path:
    """ONNX Runtime's ``quant_pre_process``: shape inference and graph optimization.

    Symbolic shape inference (which needs sympy) is skipped: ONNX's own shape inference
    covers a MatMul and an Add.

    Raises
    ------
    One of ``ORT_ERRORS``
        If ONNX Runtime cannot pre-process the graph.
    """
    quant_pre_process(source, target, skip_symbolic_shape=True)
    return target


def onnx_predictor(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """A single-threaded CPU session on ``path``, as a function of float32 rows.

    Returns
    -------
    callable
        ``f(X32)`` with ``X32`` float32 of shape (n, 8); returns shape (n,), float64.

    Raises
    ------
    One of ``ORT_ERRORS``
        If ONNX Runtime cannot load the model.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        str(path), sess_options=options, providers=["CPUExecutionProvider"]
    )

    def predict(X32: np.ndarray) -> np.ndarray:
        (y,) = session.run(None, {INPUT_NAME: X32})
        return y.reshape(-1).astype(np.float64)

    return predict


def initializer_bytes(path: Path) -> int:
    """Bytes of a model's initializers (its stored parameters) at their stored widths."""
    graph = onnx.load(path).graph
    return sum(int(numpy_helper.to_array(t).nbytes) for t in graph.initializer)


def r2(y: np.ndarray, y_pred: np.ndarray) -> float:
    """Coefficient of determination of ``y_pred`` against ``y``."""
    residual = np.sum((y - y_pred) ** 2)
    total = np.sum((y - y.mean()) ** 2)
    return float(1.0 - residual / total)


def rows_per_s(predict: Callable[[np.ndarray], np.ndarray], X: np.ndarray, runs: int) -> float:
    """Rows per second of one call on all of ``X``: median of ``runs`` after a warm-up."""
    predict(X)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        predict(X)
        times.append(time.perf_counter() - start)
    return X.shape[0] / statistics.median(times)


@dataclass(frozen=True)
class Bench:
    """What every model is measured on.

    Attributes
    ----------
    X : ndarray of shape (n_samples, n_features), float64
        Test rows.
    y : ndarray of shape (n_samples,)
        Their targets.
    reference : ndarray of shape (n_samples,)
        The fp64 model's predictions on ``X``.
    big : ndarray of shape (n_rows, n_features), float64
        ``X`` repeated to the throughput batch size.
    runs : int
        Timed calls per throughput figure.
    """

    X: np.ndarray
    y: np.ndarray
    reference: np.ndarray
    big: np.ndarray
    runs: int

    def row(
        self,
        name: str,
        predict: Callable[[np.ndarray], np.ndarray],
        dtype: type,
        param_bytes: int,
        file_bytes: int,
    ) -> Row:
        """Measure one model; ``predict`` takes rows of ``dtype`` (cast outside the timing)."""
        y_pred = predict(self.X.astype(dtype))
        delta = np.abs(y_pred - self.reference)
        return Row(
            name=name,
            r2=r2(self.y, y_pred),
            rms=float(np.sqrt(np.mean(delta**2))),
            p99=float(np.percentile(delta, 99)),
            max_abs=float(delta.max()),
            param_bytes=param_bytes,
            file_bytes=file_bytes,
            rows_per_s=rows_per_s(predict, self.big.astype(dtype), self.runs),
        )


def quantpipe_rows(bench: Bench, registry: ModelRegistry, models_dir: Path) -> list[Row]:
    """One row per quantpipe variant, fp64 first."""
    rows = []
    for name in registry:
        model = registry.get(name)
        path = models_dir / f"{name}.npz"
        if not path.is_file():
            path = models_dir / "quantized" / f"{name}.npz"
        rows.append(
            bench.row(
                f"quantpipe {name}",
                model.predict,
                np.float64,
                model.param_bytes,
                path.stat().st_size,
            )
        )
    return rows


def onnx_row(bench: Bench, name: str, path: Path) -> Row:
    """Measure one ONNX model file."""
    return bench.row(
        name,
        onnx_predictor(path),
        np.float32,
        initializer_bytes(path),
        path.stat().st_size,
    )


def report_failure(what: str, exc: Exception) -> None:
    """One line naming what failed and the exception."""
    lines = str(exc).strip().splitlines()
    print(f"FAILED {what}: {type(exc).__name__}: {lines[0] if lines else ''}", flush=True)


def onnx_rows(bench: Bench, float_path: Path, calibration: np.ndarray) -> list[Row]:
    """The float ONNX models, then every quantization configuration that ONNX Runtime accepts.

    A configuration that fails is reported on one line, with the exception, and skipped.
    """
    rows = [onnx_row(bench, "onnx float32 (MatMul+Add)", float_path)]
    sources = {False: float_path}
    try:
        sources[True] = preprocess(float_path, float_path.with_name("prep_float32.onnx"))
        rows.append(onnx_row(bench, "onnx float32 (quant_pre_process: Gemm)", sources[True]))
    except ORT_ERRORS as exc:
        report_failure("quant_pre_process (the static+prep rows are skipped)", exc)
    for config in ort_configs():
        if config.preprocessed not in sources:
            continue
        target = float_path.parent / config.filename
        try:
            quantize_onnx(config, sources[config.preprocessed], target, calibration)
            rows.append(onnx_row(bench, config.name, target))
        except ORT_ERRORS as exc:
            report_failure(config.name, exc)
    return rows


def table(rows: list[Row]) -> str:
    """The results as a markdown table."""
    lines = [
        "| model | R² | RMS Δpred | p99 \\|Δpred\\| | max \\|Δpred\\| | param bytes | file bytes "
        "| rows/s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r.name} | {r.r2:.4f} | {r.rms:.2e} | {r.p99:.2e} | {r.max_abs:.2e} | "
            f"{r.param_bytes:,} | {r.file_bytes:,} | {r.rows_per_s:,.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", type=Path, default=Path("/tmp/quantpipe-onnx"))
    p.add_argument("--models", type=Path, default=Path("models"))
    p.add_argument("--data", type=Path, default=Path("data/split"))
    p.add_argument(
        "--calibration-rows", type=int, default=2000, help="training rows for static calibration"
    )
    p.add_argument("--rows", type=int, default=1_000_000, help="rows per throughput call")
    p.add_argument("--runs", type=int, default=5, help="timed calls per throughput figure")
    args = p.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    logging.getLogger().addFilter(DropPreprocessAdvice())
    start = time.monotonic()

    train = load_dataset(args.data / "train.npz")
    test = load_dataset(args.data / "test.npz")
    registry = ModelRegistry.from_directory(args.models)
    fp64 = registry.get("fp64")
    bench = Bench(
        X=test.X,
        y=test.y,
        reference=fp64.predict(test.X),
        big=np.resize(test.X, (args.rows, test.X.shape[1])),
        runs=args.runs,
    )

    float_path = export_linear(fp64.weights, fp64.intercept, args.workdir / "fp64_float32.onnx")
    calibration = train.X[: args.calibration_rows]
    rows = onnx_rows(bench, float_path, calibration) + quantpipe_rows(bench, registry, args.models)

    print(
        f"\n## ONNX Runtime quantization and quantpipe, on the {len(test.X):,} test rows "
        f"(Δpred against quantpipe fp64; rows/s on {args.rows:,} rows, median of {args.runs})\n"
    )
    print(table(rows))
    print(
        f"\nonnx {onnx.__version__}, onnxruntime {ort.__version__}, numpy {np.__version__}, "
        f"Python {platform.python_version()}, {os.cpu_count()} cores; "
        f"static calibration on {len(calibration):,} training rows; "
        f"models in {args.workdir}; {time.monotonic() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
