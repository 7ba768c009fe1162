"""Shared fixtures: the repository root and the real data in ``../shared/data``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# DVC's analytics process outlives its commands and cannot reach out from CI.
os.environ["DVC_NO_ANALYTICS"] = "1"


def _shared_data_home() -> Path:
    """scikit-learn's data folder holding the real data set's cache file."""
    override = os.environ.get("QUANTPIPE_SHARED_DATA")
    base = Path(override) if override else REPO_ROOT.parent / "shared" / "data"
    return base / "scikit_learn_data"


@pytest.fixture(scope="session")
def sklearn_data_home() -> Path:
    """The real California Housing cache, or a skip (a failure when ``CI=true``)."""
    home = _shared_data_home()
    if not (home / "cal_housing_py3.pkz").is_file():
        message = (
            f"the real data is not at {home}: put ../shared/data beside the repository "
            "or set QUANTPIPE_SHARED_DATA to the folder holding scikit_learn_data/"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return home
