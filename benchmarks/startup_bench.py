"""A cold ``dvc repro`` against seed-style scripts that do the same fit and quantization.

Both start from the data already local (the archive in ``QUANTPIPE_DATA`` for the pipeline,
scikit-learn's cache in ``SCIKIT_LEARN_DATA`` for the scripts) and
nothing else: the housing pipeline in a fresh clone of this repository (``dvc repro --force
params evaluate monitor``: params, fetch, split, train, quantize (every width, the integer
variant and the casts), evaluate, reference, monitor; the digits family's stages, which the
peer does not do, are left out), the peer as two scripts in the style of a project's first
commit, ``train.py`` (fetch, split, ``LinearRegression().fit``, ``joblib.dump``) and
``quantize.py`` (8- and 16-bit symmetric codes of the coefficients, their R² on the test
split). Medians of ``--runs`` runs of each, one process after the other, printed as markdown.

Run from the repository root after the quick start (here:
``SCIKIT_LEARN_DATA=../shared/data/scikit_learn_data QUANTPIPE_DATA=../shared/data``)::

    python benchmarks/startup_bench.py [--runs 3] [--rev REV]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TRAIN = """
import joblib
from sklearn.datasets import fetch_california_housing
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import train_test_split

X, y = fetch_california_housing(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=42)
model = LinearRegression().fit(X_train, y_train)
joblib.dump((model, X_test, y_test), "model.joblib")
print(f"R2 {model.score(X_test, y_test):.4f}")
"""

QUANTIZE = """
import joblib
import numpy as np

model, X_test, y_test = joblib.load("model.joblib")
for bits in (8, 16):
    qmax = 2 ** (bits - 1) - 1
    scale = np.abs(model.coef_).max() / qmax
    w = np.round(model.coef_ / scale) * scale
    pred = X_test @ w + model.intercept_
    r2 = 1 - ((y_test - pred) ** 2).sum() / ((y_test - y_test.mean()) ** 2).sum()
    print(f"q{bits} R2 {r2:.4f}")
"""


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--rev", default="HEAD", help="the revision of this repository to rebuild")
    args = p.parse_args()
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        clone, seed = Path(tmp) / "clone", Path(tmp) / "seed"
        subprocess.run(["git", "clone", "-q", str(root), str(clone)], check=True)
        subprocess.run(["git", "-C", str(clone), "checkout", "-q", args.rev], check=True)
        seed.mkdir()
        (seed / "train.py").write_text(TRAIN)
        (seed / "quantize.py").write_text(QUANTIZE)
        python = sys.executable
        repro, scripts = [], []
        for _ in range(args.runs):
            housing = ["params", "evaluate", "monitor"]  # and every stage upstream of them
            repro.append(timed([python, "-m", "dvc", "repro", "--force", *housing], clone, env))
            scripts.append(
                timed([python, "train.py"], seed, env) + timed([python, "quantize.py"], seed, env)
            )
    a, b = statistics.median(repro), statistics.median(scripts)
    print(f"{args.rev}: median of {args.runs} runs each, {os.cpu_count()} cores\n")
    print("| what | seconds |")
    print("| --- | ---: |")
    print(f"| `dvc repro --force`, the housing stages, a fresh clone, data local | {a:.1f} |")
    print(f"| seed-style `train.py` + `quantize.py`, data local | {b:.1f} |")
    print(f"| ratio | {a / b:.1f}x |")


if __name__ == "__main__":
    main()
