"""The build of quantpipe's one compiled module; everything else is in pyproject.toml.

``quantpipe/_kernels.c`` holds the linear predictors' inner loops and the plain-CSV reader.
It builds as the top-level module ``_quantpipe_kernels``, outside the package, so that a copy
of the source tree that runs its own ``quantpipe`` (a ``dvc exp run --queue`` workspace, a
fresh clone in CI, a test's copy) still finds the environment's build;
:mod:`quantpipe.compiled` checks that the build is of that copy's C source. It is compiled without
floating-point contraction: GCC fuses a multiply and an add into one FMA by default on CPUs
that have it, and clang within an expression, either of which changes a prediction's last
bit from one machine to the next. -O3, and no -march, so that one build runs on every CPU of
its platform: the AVX2 and AVX-512 versions of the 8-feature loops are compiled by target
attributes in the same build and chosen when the module loads (``_kernels.c``). The module
records the sha256 of the source it was built from and these flags (``SOURCE_SHA256``,
``FLAGS``), which :mod:`quantpipe.compiled` checks.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from setuptools import Extension, setup

SOURCE = "quantpipe/_kernels.c"
#: MSVC's /fp:precise does not contract (since Visual Studio 2022); not tested here.
FLAGS = (
    ["/O2", "/fp:precise"]
    if sys.platform == "win32"
    else ["-O3", "-ffp-contract=off", "-fno-fast-math", "-Wall", "-Wextra"]
)

digest = hashlib.sha256((Path(__file__).parent / SOURCE).read_bytes()).hexdigest()
setup(
    ext_modules=[
        Extension(
            "_quantpipe_kernels",
            [SOURCE],
            extra_compile_args=FLAGS,
            define_macros=[
                ("KERNELS_SOURCE_SHA256", f'"{digest}"'),
                ("KERNELS_FLAGS", '"' + " ".join(FLAGS) + '"'),
            ],
        )
    ]
)
