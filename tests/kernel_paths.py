"""Each compiled kernel path as a test parameter (quantpipe.compiled.PATHS).

A path this CPU does not run is skipped, with the reason shown; the cross-cpu check in CI
runs the baseline and AVX2 under emulated CPUs.
"""

from __future__ import annotations

import pytest

from quantpipe import compiled

EACH_PATH = pytest.mark.parametrize(
    "path",
    [
        pytest.param(
            name,
            marks=pytest.mark.skipif(
                name not in compiled.paths(), reason=f"this CPU does not run the {name} path"
            ),
        )
        for name in compiled.PATHS
    ],
)
