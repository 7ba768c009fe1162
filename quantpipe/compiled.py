"""The compiled kernels (``quantpipe._kernels``), checked once against their C source.

``setup.py`` builds ``quantpipe/_kernels.c`` when quantpipe is installed, and records the
source's sha256 in the module. In a checkout, the C source can change after that build (an
edit, a ``git pull``), and ``dvc repro`` would then rerun the stages, which list the source,
with the old compiled code: outputs recorded under a source they were not computed by.
:func:`check` refuses that. An installed package without the C source beside it (the
container) has nothing to compare and passes.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from quantpipe import _kernels
from quantpipe.errors import SetupError

SOURCE = Path(__file__).with_name("_kernels.c")


@functools.cache
def check() -> None:
    """Pass if the compiled kernels were built from the C source beside them (once).

    Raises
    ------
    SetupError
        If ``quantpipe/_kernels.c`` differs from the source the module was built from.
    """
    if not SOURCE.is_file():
        return
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()
    if digest != _kernels.SOURCE_SHA256:
        raise SetupError(
            f"{SOURCE} changed since quantpipe._kernels was built from it; rebuild it with "
            "`pip install --no-deps -e .`"
        )
