"""The digits network's training, the same bits on other CPUs: checked under emulated ones.

The same-bytes check (``.ci/steps same-bytes``) rebuilds the pipeline under settings that
stand for other CPUs, but on this CPU: it cannot see a library that looks at the CPU itself
(its vendor, its instruction sets, its caches). PyTorch's training did: NNPACK's convolutions
run only where AVX2 is, and ``torch.sqrt`` (MKL's vector math) rounds by CPU. This script
trains the network on the first ``--images`` training images, exactly as the ``mnist_train``
stage does (:func:`quantpipe.mnist.training.train_network`, ``params.yaml``'s settings), and
prints one sha256 of the weights; with ``--cpus``, it also runs itself under QEMU's user-mode
emulator (Debian's ``qemu-user``) as each named CPU model, whose CPUID (vendor, features,
caches) is the model's, and fails unless every digest is this machine's:

    python .ci/cross_cpu.py                                                # this CPU's digest
    python .ci/cross_cpu.py --cpus Haswell EPYC-Rome SandyBridge Nehalem  # and under QEMU

Emulation is slow (about 1 s a batch of 32), so a few hundred images: a difference in the
last bit of one step shows within three steps, and every later step compounds it.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import shutil
import site
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# the check runs the stage's code: from this checkout, whatever is installed
sys.path.insert(0, str(ROOT))

from quantpipe import paths  # noqa: E402
from quantpipe.mnist.data import load_digits  # noqa: E402
from quantpipe.mnist.training import pin_torch, train_network  # noqa: E402
from quantpipe.params import load_params  # noqa: E402

log = logging.getLogger("cross_cpu")


def digest(images: int) -> str:
    """sha256 of the weights trained on the first ``images`` training images."""
    params = load_params(ROOT / paths.PARAMS)
    data = load_digits(ROOT / paths.MNIST_DATA)
    pin_torch()
    net = train_network(data.x_train[:images], data.y_train[:images], params.mnist.train)
    return hashlib.sha256(b"".join(a.tobytes() for a in net.arrays().values())).hexdigest()


def emulate(cpu: str, images: int) -> subprocess.Popen[str]:
    """Start this script under ``qemu-x86_64 -cpu cpu``; its last stdout line is the digest."""
    qemu = shutil.which("qemu-x86_64")
    if qemu is None:
        raise SystemExit("error: qemu-x86_64 not found: apt-get install qemu-user")
    # the emulated process runs the real interpreter binary (not a venv's symlink), so it
    # is told where this environment's packages are
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([*site.getsitepackages(), str(ROOT)]))
    command = [qemu, "-cpu", cpu, os.path.realpath(sys.executable), __file__]
    return subprocess.Popen(
        [*command, "--images", str(images)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def verdict(cpu: str, process: subprocess.Popen[str], mine: str) -> bool:
    """Wait for one emulated run, log how it compares with ``mine``; True if identical."""
    out, err = process.communicate()
    if process.returncode != 0:
        last = (err.strip().splitlines() or ["(no message)"])[-1]
        log.error("  %-18s FAILED (exit %d): %s", cpu, process.returncode, last)
        return False
    lines = out.strip().splitlines()
    if not lines:
        log.error("  %-18s FAILED: printed no digest", cpu)
        return False
    theirs = lines[-1]
    log.info("  %-18s %s", cpu, "identical" if theirs == mine else f"DIFFERENT: {theirs[:16]}")
    return theirs == mine


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=320, help="training images (default 320)")
    p.add_argument("--cpus", nargs="*", default=[], help="QEMU CPU models to compare with")
    args = p.parse_args()
    if args.images < 1:
        p.error("--images must be at least 1")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    mine = digest(args.images)
    print(mine)
    if not args.cpus:
        return 0
    started = time.perf_counter()
    log.info("weights of %d training images, this CPU: %s; under QEMU:", args.images, mine[:16])
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
