"""The pipeline's numbers, the same bits on other CPUs: checked under emulated ones.

The same-bytes check (``.ci/steps same-bytes``) rebuilds the pipeline under settings that
stand for other CPUs, but on this CPU: it cannot see a library that looks at the CPU itself
(its vendor, its instruction sets, its caches). PyTorch's training did: NNPACK's convolutions
run only where AVX2 is, and ``torch.sqrt`` (MKL's vector math) rounds by CPU. This script
computes two digests, exactly as the stages do (their own code, ``params.yaml``'s settings,
the data ``dvc repro`` left in ``data/``):

- ``mnist``: the weights trained on the first ``--images`` training images
  (:func:`quantpipe.mnist.training.train_network`);
- ``housing``: every file the ``split``, ``train``, ``quantize`` and ``evaluate`` stages write
  (the fitted and quantized models, the metrics), run into a temporary directory.

It prints them as one JSON line; with ``--cpus``, it also runs itself under QEMU's user-mode
emulator (Debian's ``qemu-user``) as each named CPU model, whose CPUID (vendor, features,
caches) is the model's, and fails unless every digest is this machine's:

    python .ci/cross_cpu.py                                                # this CPU's
    python .ci/cross_cpu.py --cpus Haswell EPYC-Rome SandyBridge Nehalem  # and under QEMU

OpenBLAS is told which of its kernels the emulated CPU runs (``OPENBLAS_CORETYPE``, from
:data:`CPUS`): its own choice reads more than CPUID, and under QEMU on an AMD Zen 5
host (2026-12-02) it took its Haswell kernel for every model here, which crashed on
Nehalem's first AVX instruction (numpy's import-time check) and ran AVX2 that SandyBridge
lacks. The kernels of ``quantpipe/_kernels.c`` choose their path by CPUID alone: the check
logs which one each CPU ran.

Emulation is slow (about 1 s a batch of 32 images, 20 s for the housing stages), so a few
hundred images: a difference in the last bit of one step shows within three steps, and
every later step compounds it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import site
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
# the check runs the stage's code: from this checkout, whatever is installed
sys.path.insert(0, str(ROOT))

from quantpipe import compiled, paths  # noqa: E402
from quantpipe.mnist.data import load_digits  # noqa: E402
from quantpipe.mnist.training import pin_torch, train_network  # noqa: E402
from quantpipe.params import load_params  # noqa: E402
from stages import evaluate, quantize, split, train  # noqa: E402

log = logging.getLogger("cross_cpu")
PATH_KEY = "kernel path"  # which of quantpipe.compiled.PATHS the CPU ran


class Emulated(NamedTuple):
    """What an emulated CPU model runs: OpenBLAS's kernel for it, and the kernel path of
    ``quantpipe/_kernels.c`` it must choose (QEMU emulates no AVX-512; one without AVX2,
    older than 7.2, would run the baseline under Haswell and pass without checking AVX2)."""

    openblas_core: str
    kernel_path: str


#: The QEMU CPU models this check knows.
CPUS = {
    "Haswell": Emulated("Haswell", "avx2"),
    "EPYC-Rome": Emulated("Zen", "avx2"),
    "SandyBridge": Emulated("Sandybridge", "baseline"),
    "Nehalem": Emulated("Nehalem", "baseline"),
}


def mnist_digest(images: int) -> str:
    """sha256 of the weights trained on the first ``images`` training images."""
    params = load_params(ROOT / paths.PARAMS)
    data = load_digits(ROOT / paths.MNIST_DATA)
    pin_torch()
    net = train_network(data.x_train[:images], data.y_train[:images], params.mnist.train)
    return hashlib.sha256(b"".join(a.tobytes() for a in net.arrays().values())).hexdigest()


def housing_digest() -> str:
    """sha256 of every file the housing stages from ``split`` to ``evaluate`` write."""
    params = str(ROOT / paths.PARAMS)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        train_npz, test_npz, model = out / "train.npz", out / "test.npz", out / "fp64.npz"
        runs = [
            split.main(["-q", "--params", params, "--data", str(ROOT / paths.RAW_DATA),
                        "--train", str(train_npz), "--test", str(test_npz)]),
            train.main(["-q", "--params", params, "--train", str(train_npz),
                        "--estimator", str(out / "fp64.joblib"), "--out", str(model)]),
            quantize.main(["-q", "--params", params, "--model", str(model),
                           "--train", str(train_npz), "--out-dir", str(out / "quantized")]),
            evaluate.main(["-q", "--params", params, "--test", str(test_npz), "--model",
                           str(model), "--quantized-dir", str(out / "quantized"),
                           "--eval-dir", str(out / "eval"), "--compare-json",
                           str(out / "compare.json"), "--compare-md", str(out / "compare.md"),
                           "--plots-dir", str(out / "plots")]),
        ]  # fmt: skip
        if any(runs):
            raise SystemExit(f"error: a housing stage failed (exit statuses {runs})")
        h = hashlib.sha256()
        for path in sorted(p for p in out.rglob("*") if p.is_file()):
            h.update(str(path.relative_to(out)).encode() + b"\0" + path.read_bytes())
        return h.hexdigest()


def digests(images: int) -> dict[str, str]:
    """Both digests, by family."""
    return {"mnist": mnist_digest(images), "housing": housing_digest()}


def emulate(cpu: str, images: int) -> subprocess.Popen[str]:
    """Start this script under ``qemu-x86_64 -cpu cpu``; its last stdout line: the digests."""
    qemu = shutil.which("qemu-x86_64")
    if qemu is None:
        raise SystemExit("error: qemu-x86_64 not found: apt-get install qemu-user")
    # the emulated process runs the real interpreter binary (not a venv's symlink), so it
    # is told where this environment's packages are
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([*site.getsitepackages(), str(ROOT)]),
        OPENBLAS_CORETYPE=CPUS[cpu].openblas_core,
    )
    command = [qemu, "-cpu", cpu, os.path.realpath(sys.executable), __file__]
    return subprocess.Popen(
        [*command, "--images", str(images)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def verdict(cpu: str, process: subprocess.Popen[str], mine: dict[str, str]) -> bool:
    """Wait for one emulated run, log how it compares with ``mine``; True if identical."""
    out, err = process.communicate()
    if process.returncode != 0:
        last = (err.strip().splitlines() or ["(no message)"])[-1]
        log.error("  %-12s FAILED (exit %d): %s", cpu, process.returncode, last)
        return False
    lines = out.strip().splitlines()
    if not lines:
        log.error("  %-12s FAILED: printed no digests", cpu)
        return False
    theirs = json.loads(lines[-1])
    parts = [
        f"{name} {'identical' if theirs.get(name) == value else 'DIFFERENT'}"
        for name, value in mine.items()
    ]
    path = theirs.get(PATH_KEY)
    log.info("  %-12s %s (kernel path %s)", cpu, ", ".join(parts), path)
    if path != CPUS[cpu].kernel_path:
        log.error(
            "  %-12s FAILED: ran the %s kernel path, not %s", cpu, path, CPUS[cpu].kernel_path
        )
        return False
    return all(theirs.get(name) == value for name, value in mine.items())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=320, help="training images (default 320)")
    p.add_argument(
        "--cpus",
        nargs="*",
        default=[],
        choices=sorted(CPUS),
        metavar="CPU",
        help=f"QEMU CPU models to compare with: {', '.join(CPUS)}",
    )
    args = p.parse_args()
    if args.images < 1:
        p.error("--images must be at least 1")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("quantpipe").setLevel(logging.WARNING)  # the stages' own progress
    mine = digests(args.images)
    path = compiled.paths()[-1]  # the kernels' path here: printed, not compared
    print(json.dumps({**mine, PATH_KEY: path}), flush=True)
    if not args.cpus:
        return 0
    started = time.perf_counter()
    log.info(
        "this CPU: mnist %s (%d training images), housing %s (kernel path %s); under QEMU:",
        mine["mnist"][:12],
        args.images,
        mine["housing"][:12],
        path,
    )
    same = []
    # as many emulators at once as this process may use CPUs (each runs one thread)
    width = len(os.sched_getaffinity(0))
    for first in range(0, len(args.cpus), width):
        batch = args.cpus[first : first + width]
        running = [(cpu, emulate(cpu, args.images)) for cpu in batch]
        same += [verdict(cpu, process, mine) for cpu, process in running]
    log.info("%d of %d identical (%.0f s)", sum(same), len(same), time.perf_counter() - started)
    return 0 if all(same) else 1


if __name__ == "__main__":
    sys.exit(main())
