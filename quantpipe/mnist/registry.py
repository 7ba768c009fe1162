"""The digits networks a server can use, by name: ``mnist-fp32``, ``mnist-q8``, ...

Loaded from ``models/mnist/`` (``fp32.npz`` and ``quantized/q{bits}.npz``) through
:func:`quantpipe.mnist.modelfile.load_net`, which checks every file; numpy alone.
"""

from __future__ import annotations

from pathlib import Path

from quantpipe.errors import ModelFileError
from quantpipe.mnist.evaluation import DigitsNet
from quantpipe.mnist.modelfile import FAMILY, FLOAT_VARIANT, load_net

PREFIX = f"{FAMILY}-"


def load_digits_models(directory: str | Path) -> dict[str, DigitsNet]:
    """Every digits network under ``directory``, fp32 first, then by width.

    Returns
    -------
    dict of str to FloatNet or QuantNet
        Empty if ``directory`` does not exist (a models folder without the digits family).

    Raises
    ------
    ModelFileError
        If a file is corrupt or holds another variant than its name says.
    """
    directory = Path(directory)
    if not directory.exists():
        return {}
    files = []
    if (directory / f"{FLOAT_VARIANT}.npz").exists():
        files.append((FLOAT_VARIANT, directory / f"{FLOAT_VARIANT}.npz"))
    quantized = directory / "quantized"
    if quantized.is_dir():
        found = [p for p in quantized.glob("q*.npz") if p.stem[1:].isdigit()]
        files += [(p.stem, p) for p in sorted(found, key=lambda p: int(p.stem[1:]))]
    for _, path in files:
        if not path.is_file():
            raise ModelFileError(f"{path}: not a file; delete it and run `dvc repro`")
    return {PREFIX + variant: load_net(path, variant) for variant, path in files}
