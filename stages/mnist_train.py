"""Stage ``mnist_train``: train the digits network in PyTorch, write ``models/mnist/fp32.npz``.

One pass (``mnist.train.epochs``) over the 60,000 training images, Adam, seeded by
``mnist.seed``, in the portable numeric environment of
:func:`quantpipe.mnist.training.pin_torch` (the same weights, bit for bit, on every x86-64
CPU). The weights are written as float32 arrays with a JSON header: no pickle.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from quantpipe import cli, paths
from quantpipe.mnist.data import load_digits
from quantpipe.mnist.modelfile import save_float_net
from quantpipe.mnist.training import pin_torch, train_network
from quantpipe.params import load_params

log = logging.getLogger("quantpipe.mnist")


def _progress(seen: int, total: int, loss: float, previous: list[int]) -> None:
    """Log at each tenth of the images (``previous`` holds the count of the last call)."""
    if seen * 10 // total != previous[0] * 10 // total:
        log.info("trained on %d of %d images, loss %.3f", seen, total, loss)
    previous[0] = seen


def _body(args: argparse.Namespace) -> None:
    params = load_params(args.params)
    settings = params.mnist.train
    data = load_digits(args.data)
    pin_torch()  # before anything imports torch: it chooses its kernels at import
    started = time.perf_counter()
    previous = [0]
    net = train_network(
        data.x_train, data.y_train, settings, lambda s, t, loss: _progress(s, t, loss, previous)
    )
    record = {
        "seed": settings.seed,
        "train": {
            "channels": list(settings.channels),
            "epochs": settings.epochs,
            "batch_size": settings.batch_size,
            "learning_rate": settings.learning_rate,
        },
    }
    save_float_net(args.out, net, record)
    log.info(
        "wrote %s: %d parameters, trained in %.1f s",
        args.out,
        net.shapes.param_count,
        time.perf_counter() - started,
    )


def main(argv: Sequence[str] | None = None, prog: str = "python -m stages.mnist_train") -> int:
    """Run the stage; returns the exit status."""
    p = cli.parser(prog, __doc__.split("\n\n")[0])
    p.add_argument("--params", type=Path, default=paths.PARAMS, help="params file")
    p.add_argument("--data", type=Path, default=paths.MNIST_DATA, help="digits .npz")
    p.add_argument("--out", type=Path, default=paths.MNIST_FLOAT, help="output model .npz")
    return cli.run(_body, p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
