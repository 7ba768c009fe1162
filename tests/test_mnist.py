"""The digits family: IDX parsing, exact kernels, quantization, model files, serving."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantpipe.errors import DataError, ModelFileError, RequestError
from quantpipe.mnist.data import IMAGE_MAGIC, LABEL_MAGIC, parse_idx
from quantpipe.mnist.evaluation import markdown_table, predict, predict_digits
from quantpipe.mnist.kernels import fixed_point, int_matmul, patch_order, patches, requantize
from quantpipe.mnist.modelfile import load_net, save_float_net, save_quant_net
from quantpipe.mnist.network import FloatNet, conv3x3, float_logits, layer_shapes, relu_pool
from quantpipe.mnist.qnet import integer_logits
from quantpipe.mnist.quantize import quantize_network
from quantpipe.mnist.registry import load_digits_models
from quantpipe.mnist.settings import QuantSettings
from quantpipe.mnist.source import FILES, fetch_digits, gz_content
from quantpipe.registry import ModelRegistry
from quantpipe.serve.app import create_app
from quantpipe.serve.digits import parse_digits_request
from tests.models import write_models
from tests.test_serve import REPO_ROOT, InProcess


def tiny_net(seed: int = 0, channels=(2, 3)) -> FloatNet:
    rng = np.random.default_rng(seed)
    shapes = layer_shapes(channels)
    arrays = {
        n: rng.normal(0, 0.3, s).astype(np.float32) for n, s in shapes.weight_shapes().items()
    }
    return FloatNet(shapes=shapes, **arrays)


def images(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 28, 28)).astype(np.uint8)


# -- data --------------------------------------------------------------------------------------


def test_parse_idx_reads_a_hand_made_file():
    content = IMAGE_MAGIC.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (2, 28, 28))
    content += bytes(range(256)) * 6 + bytes(range(32))
    x = parse_idx(content, IMAGE_MAGIC, "f")
    assert x.shape == (2, 28, 28)
    assert x[0, 0, :3].tolist() == [0, 1, 2]
    labels = LABEL_MAGIC.to_bytes(4, "big") + (3).to_bytes(4, "big") + bytes([7, 0, 9])
    assert parse_idx(labels, LABEL_MAGIC, "f").tolist() == [7, 0, 9]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b"\0\0\x08\x03" + (1).to_bytes(4, "big") + b"\1",
            r"^f: IDX magic number 2051, expected 2049$",
        ),
        (LABEL_MAGIC.to_bytes(4, "big") + (3).to_bytes(4, "big") + b"\1", r"header's sizes \[3\]"),
        (b"\0\0", r"too short for an IDX header"),
    ],
)
def test_parse_idx_refuses_a_bad_file(content, message):
    with pytest.raises(DataError, match=message):
        parse_idx(content, LABEL_MAGIC, "f")


def test_content_other_than_the_canonical_file_is_refused(tmp_path):
    path = tmp_path / FILES[3].name
    path.write_bytes(gzip.compress(b"not mnist"))
    with pytest.raises(DataError, match=r"content differs from the canonical file \(9 bytes"):
        gz_content(path, FILES[3].size, FILES[3].sha256)
    path.write_bytes(b"not gzip")
    with pytest.raises(DataError, match=r"unreadable \(Not a gzipped file"):
        gz_content(path, FILES[3].size, FILES[3].sha256)


def test_offline_without_a_copy_says_how_to_use_one(tmp_path, monkeypatch):
    monkeypatch.setattr("quantpipe.mnist.source.MIRRORS", ("http://127.0.0.1:9/",))
    with pytest.raises(DataError, match=r"offline\? point it at a local copy: QUANTPIPE_DATA="):
        fetch_digits(tmp_path)


def test_the_real_files_hold_the_documented_counts(data_home):
    data = fetch_digits(data_home)
    assert np.bincount(data.y_train).tolist()[:3] == [5923, 6742, 5958]
    assert np.bincount(data.y_test).tolist()[-3:] == [1028, 974, 1009]


# -- kernels -----------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 16))
def test_int_matmul_is_exact_on_both_paths(seed, bits):
    rng = np.random.default_rng(seed)
    a = rng.integers(-(2**bits), 2**bits, (5, 7))
    b = rng.integers(-(2**bits), 2**bits, (7, 3))
    exact = a.astype(object) @ b.astype(object)
    bound = 7 * 2 ** (2 * bits)
    if bound < 2**24:
        assert int_matmul(a, b, bound).dtype == np.float32
        assert (int_matmul(a, b, bound) == exact).all()
    assert int_matmul(a, b, 2**40).dtype == np.float64
    assert (int_matmul(a, b, 2**40) == exact).all()
    assert int_matmul(a, b, 2**60).dtype == np.int64
    assert (int_matmul(a, b, 2**60) == exact).all()


def test_a_convolution_as_a_product_of_patches_is_the_direct_sum():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (2, 6, 5, 3))  # channels last
    w = rng.integers(-127, 128, (4, 3, 3, 3))  # (c_out, c_in, 3, 3), as stored
    order = patch_order(3)
    weights = np.empty((27, 4), dtype=np.int64)
    weights[order] = w.reshape(4, -1).T
    got = (patches(x) @ weights).reshape(2, 4, 3, 4)
    direct = np.zeros((2, 4, 3, 4), dtype=np.int64)
    for i in range(3):
        for j in range(3):
            direct += np.einsum("nhwc,oc->nhwo", x[:, i : i + 4, j : j + 3], w[:, :, i, j])
    assert (got == direct).all()


def test_requantize_rounds_half_up_by_integers_only():
    m0, shift = fixed_point(np.array([0.25, 3.0]), 1000)
    acc = np.array([[10, 10], [-10, 7]], dtype=np.int64)
    assert requantize(acc, m0, shift, axis=1).tolist() == [[3, 30], [-2, 21]]
    with pytest.raises(ValueError, match="not positive and finite"):
        fixed_point(np.array([0.0]), 10)


def test_conv_and_pool_known_answer():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    w = np.zeros((1, 1, 3, 3), dtype=np.float32)
    w[0, 0, 1, 1], w[0, 0, 0, 0] = 1.0, -1.0  # centre minus top-left: always 5
    out = conv3x3(x, w, np.array([0.5], dtype=np.float32))
    assert out.tolist() == [[[[5.5, 5.5], [5.5, 5.5]]]]
    assert relu_pool(np.array([[[[-1.0, -2.0], [-3.0, -4.0]]]])).tolist() == [[[[0.0]]]]


# -- quantization ------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [2, 4, 8, 16])
def test_quantized_network_follows_the_float_one(bits):
    net, calibration, test = tiny_net(), images(64), images(200, seed=2)
    reference = float_logits(net, test)
    q = quantize_network(net, calibration, QuantSettings(bits, "data-aware", True, "minmax", 100.0))
    scores = integer_logits(q, test) * q.layers[2].output_scale
    error = np.abs(scores - reference).max() / np.abs(reference).max()
    assert error < {2: 1.0, 4: 0.3, 8: 0.03, 16: 0.001}[bits]


def test_data_aware_rounding_beats_nearest_at_4_bits():
    net, calibration, test = tiny_net(3, (4, 6)), images(64), images(300, seed=4)
    reference = float_logits(net, test)

    def error(rounding):
        q = quantize_network(net, calibration, QuantSettings(4, rounding, False, "minmax", 100.0))
        return np.abs(integer_logits(q, test) * q.layers[2].output_scale - reference).mean()

    assert error("data-aware") < error("nearest")


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_16_bit_files_at_the_int64_limit_load(tmp_path, seed):
    """The loader's overflow check is the quantizer's own bound, channel by channel."""
    q = quantize_network(
        tiny_net(seed), images(32), QuantSettings(16, "nearest", False, "minmax", 100.0)
    )
    save_quant_net(tmp_path / "q16.npz", q, {})
    test = images(20, seed=7)
    assert (
        integer_logits(load_net(tmp_path / "q16.npz", "q16"), test) == integer_logits(q, test)
    ).all()


def test_calibration_in_blocks_gives_the_same_model(monkeypatch):
    """The Gram matrices are exact sums: how the images are split into blocks changes no bit."""
    net, calibration = tiny_net(), images(40)
    settings = QuantSettings(4, "data-aware", True, "percentile", 99.0)
    whole = quantize_network(net, calibration, settings)
    monkeypatch.setattr("quantpipe.mnist.quantize.BLOCK", 7)
    blocked = quantize_network(net, calibration, settings)
    for a, b in zip(whole.layers, blocked.layers, strict=True):
        assert (a.weight_codes == b.weight_codes).all()
        assert (a.bias_codes == b.bias_codes).all()
        assert (a.m0 == b.m0).all()
        assert a.output_scale == b.output_scale


def test_model_files_round_trip_and_refuse_another_name(tmp_path):
    net = tiny_net()
    q = quantize_network(net, images(32), QuantSettings(4, "nearest", True, "percentile", 99.0))
    save_float_net(tmp_path / "fp32.npz", net, {})
    save_quant_net(tmp_path / "quantized" / "q4.npz", q, {"quantize": {"bits": 4}})
    test = images(50, seed=5)
    assert (
        predict_digits(load_net(tmp_path / "fp32.npz", "fp32"), test) == predict_digits(net, test)
    ).all()
    loaded = load_net(tmp_path / "quantized" / "q4.npz", "q4")
    assert (integer_logits(loaded, test) == integer_logits(q, test)).all()
    (tmp_path / "quantized" / "q8.npz").write_bytes(
        (tmp_path / "quantized" / "q4.npz").read_bytes()
    )
    with pytest.raises(ModelFileError, match=r"q8.npz: holds variant 'q4', not 'q8'"):
        load_net(tmp_path / "quantized" / "q8.npz", "q8")


# -- serving -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    models = write_models(tmp_path_factory.mktemp("mnist") / "models")
    net = tiny_net()
    q = quantize_network(net, images(32), QuantSettings(8, "nearest", True, "minmax", 100.0))
    save_float_net(models / "mnist" / "fp32.npz", net, {})
    save_quant_net(models / "mnist" / "quantized" / "q8.npz", q, {})
    digits = load_digits_models(models / "mnist")
    return InProcess(create_app(ModelRegistry.from_directory(models), digits=digits)), digits


def _infer(client, name, body):
    status, _, content = client.call("POST", f"/v2/models/{name}/infer", body)
    return status, json.loads(content)


def test_both_families_are_served_under_their_own_names(served):
    client, digits = served
    status, _, content = client.call("GET", "/v2/models/mnist-q8")
    meta = json.loads(content)
    assert status == 200
    assert meta["inputs"] == [{"name": "images", "datatype": "UINT8", "shape": [-1, 28, 28]}]
    assert [o["name"] for o in meta["outputs"]] == ["digit", "probabilities"]
    assert client.call("GET", "/v2/models/fp64")[0] == 200
    x = images(3, seed=9)
    body = {
        "inputs": [
            {"name": "images", "datatype": "UINT8", "shape": [3, 28, 28], "data": x.tolist()}
        ]
    }
    assert len(json.dumps(body)) > 8 * 1024  # answered off the event loop
    for name in ("mnist-fp32", "mnist-q8"):
        status, answer = _infer(client, name, body)
        assert status == 200
        expected_digits, expected_probabilities = predict(digits[name], x)
        assert answer["outputs"][0]["data"] == expected_digits.tolist()  # what evaluate computes
        assert np.allclose(answer["outputs"][1]["data"], expected_probabilities.reshape(-1))


def test_the_outputs_asked_for_are_sent_each_as_asked(served):
    client, digits = served
    x = images(2, seed=3)
    image = {"name": "images", "datatype": "UINT8", "shape": [2, 28, 28], "data": x.tolist()}
    expected, probabilities = predict(digits["mnist-q8"], x)
    status, answer = _infer(client, "mnist-q8", {"inputs": [image], "outputs": [{"name": "digit"}]})
    assert status == 200
    assert [o["name"] for o in answer["outputs"]] == ["digit"]
    assert answer["outputs"][0]["data"] == expected.tolist()
    outputs = [{"name": "probabilities", "parameters": {"binary_data": True}}, {"name": "digit"}]
    body = json.dumps({"inputs": [image], "outputs": outputs}).encode()
    status, headers, content = client.call("POST", "/v2/models/mnist-q8/infer", body)
    assert status == 200
    length = int(headers["inference-header-content-length"])
    header = json.loads(content[:length])
    assert [o["name"] for o in header["outputs"]] == ["probabilities", "digit"]
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 80}
    assert header["outputs"][1]["data"] == expected.tolist()
    assert content[length:] == probabilities.astype("<f4").tobytes()
    twice = {"inputs": [image], "outputs": [{"name": "digit"}, {"name": "digit"}]}
    assert _infer(client, "mnist-q8", twice) == (
        400,
        {"error": "output 'digit' is asked for twice"},
    )


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        ({"datatype": "FP32"}, "datatype 'FP32' is not supported; use UINT8"),
        ({"shape": [1, 28, 27]}, r"shape \[1, 28, 27\] is not allowed; use \[n, 28, 28\]"),
        ({"data": [256] * 784}, "a pixel is outside 0-255"),
        ({"data": [True] + [0] * 783}, "must hold integers 0-255 only"),
        ({"data": [[[0] * 27 + [False]] + [[0] * 28] * 27]}, "must hold integers 0-255 only"),
        ({"data": [0.5] * 784}, "must hold integers 0-255 only"),
        ({"data": [0] * 783}, r"'data' has shape \[783\]"),
        ({"name": "input-0"}, "input 'input-0' is unknown; this model takes 'images'"),
    ],
)
def test_bad_digits_requests_get_one_400_line(served, tensor, message):
    good = {"name": "images", "datatype": "UINT8", "shape": [1, 28, 28], "data": [0] * 784}
    body = json.dumps({"inputs": [{**good, **tensor}]}).encode()
    with pytest.raises(RequestError, match=message):
        parse_digits_request(body, None)
    status, answer = _infer(served[0], "mnist-q8", body)
    assert status == 400
    assert list(answer) == ["error"]


# -- PyTorch (in subprocesses: torch must be imported after pin_torch) --------------------------


def _python(code: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


TRAIN = """
import hashlib, numpy as np
from quantpipe.mnist.settings import TrainSettings
from quantpipe.mnist.training import train_network
rng = np.random.default_rng(0)
x = rng.integers(0, 256, (256, 28, 28)).astype(np.uint8)
y = rng.integers(0, 10, 256).astype(np.uint8)
net = train_network(x, y, TrainSettings(0, (4, 8), 1, 32, 0.01))
print(hashlib.sha256(b"".join(a.tobytes() for a in net.arrays().values())).hexdigest())
"""


PIN_AFTER_IMPORT = """
import torch
from quantpipe.mnist.training import TorchPinError, pin_torch
try:
    pin_torch()
except TorchPinError as exc:
    print(exc)
"""
PIN_TWICE = """
from quantpipe.mnist.training import pin_torch
torch = pin_torch()
print(torch is pin_torch(), torch.backends.cpu.get_cpu_capability(), torch._C._get_nnpack_enabled())
"""


@pytest.mark.slow
def test_pinning_refuses_a_torch_imported_before_it_and_is_idempotent():
    assert _python(PIN_AFTER_IMPORT) == (
        "torch was imported before pin_torch(): its kernels are already chosen"
    )
    # NNPACK off: its convolutions exist only where AVX2 does (.ci/cross_cpu.py)
    assert _python(PIN_TWICE, {"ATEN_CPU_CAPABILITY": "avx2"}) == "True DEFAULT False"


@pytest.mark.slow
def test_training_gives_the_same_bits_under_other_kernels():
    """The pinned environment overrides ATen's, oneDNN's, MKL's and OpenMP's settings."""
    plain = _python(TRAIN)
    other = _python(
        TRAIN,
        {
            "ATEN_CPU_CAPABILITY": "avx2",
            "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
            "OMP_NUM_THREADS": "2",
        },
    )
    assert plain == other


LINEAR = """
import json, sys, numpy as np, torch
from quantpipe.modelfile import load_model
from tests.models import rows
X = rows(500)
out = {}
for path in sys.argv[1:]:
    m = load_model(path, path.rsplit("/", 1)[1].removesuffix(".npz"))
    layer = torch.nn.Linear(8, 1, dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(m.weights[None]))
        layer.bias.fill_(m.intercept)
        torch_pred = layer(torch.from_numpy(X))[:, 0].numpy()
    out[m.variant] = float(np.abs(torch_pred - m.predict(X)).max())
print(json.dumps(out))
"""


@pytest.mark.slow
def test_torch_linear_with_dequantized_housing_parameters_predicts_the_same(tmp_path):
    models = write_models(tmp_path / "models", bits=(4, 8, 16))
    paths = [str(models / "fp64.npz")] + [
        str(p) for p in sorted((models / "quantized").glob("*.npz"))
    ]
    result = subprocess.run(
        [sys.executable, "-c", LINEAR, *paths],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    worst = json.loads(result.stdout)
    assert sorted(worst) == ["fp64", "q16", "q4", "q8"]
    assert max(worst.values()) < 1e-12


def test_the_comparison_table_known_answer():
    fp32 = {"bits": 32, "accuracy": 0.983, "agreement": 1.0, "param_bytes": 51240, "file_bytes": 9}
    q8 = {"bits": 8, "accuracy": 0.9826, "agreement": 0.9984, "param_bytes": 12810, "file_bytes": 7}
    table = markdown_table({"fp32": fp32, "q8": q8}).splitlines()
    assert table[2] == "| fp32 | 32 | 98.30 % | — | 100.00 % | 51240 | 100.0 % | 9 |"
    assert table[3] == "| q8 | 8 | 98.26 % | -0.04 pts | 99.84 % | 12810 | 25.0 % | 7 |"
