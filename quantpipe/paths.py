"""Where each stage reads and writes, relative to the repository root.

``dvc.yaml`` names the same paths as each stage's deps and outs; keep the two in step.
"""

from pathlib import Path

PARAMS = Path("params.yaml")
PARAMS_STAMP = Path("data/params.valid.json")
PLOTS_PAGE = Path("data/plots_page.html")

DVCFILE = Path("dvc.yaml")
RAW_DATA = Path("data/raw/california_housing.npz")
TRAIN_DATA = Path("data/split/train.npz")
TEST_DATA = Path("data/split/test.npz")
FLOAT_MODEL = Path("models/fp64.npz")
ESTIMATOR = Path("models/fp64.joblib")
QUANTIZED_DIR = Path("models/quantized")
EVAL_DIR = Path("metrics/eval")
COMPARE_JSON = Path("metrics/compare.json")
COMPARE_MD = Path("metrics/compare.md")
PLOTS_DIR = Path("metrics/plots")
REFERENCE = Path("models/reference.npz")
MONITOR_REPORT = Path("metrics/monitor/report.json")
MONITOR_PLOT = Path("metrics/monitor/drift.csv")


def variant_path(variant: str, directory: Path = QUANTIZED_DIR) -> Path:
    """File of a derived model: ``models/quantized/q8.npz``, ``…/float16.npz``."""
    return directory / f"{variant}.npz"


# the digits family (quantpipe.mnist)
MNIST_DATA = Path("data/mnist/digits.npz")
MNIST_FLOAT = Path("models/mnist/fp32.npz")
MNIST_QUANTIZED_DIR = Path("models/mnist/quantized")
MNIST_EVAL_DIR = Path("metrics/mnist/eval")
MNIST_COMPARE = Path("metrics/mnist/compare.json")
MNIST_COMPARE_MD = Path("metrics/mnist/compare.md")
MNIST_CONFUSION = Path("metrics/mnist/plots/confusion.csv")
MNIST_WIDTHS = Path("metrics/mnist/plots/accuracy_by_width.json")
MNIST_LATENCY = Path("metrics/mnist/latency.json")
