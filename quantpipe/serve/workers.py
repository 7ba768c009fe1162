"""The worker processes of ``quantpipe serve --workers N``.

Each builds its app from the environment the server process sets, and dies with it.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from starlette.applications import Starlette

from quantpipe.mnist.registry import load_digits_models
from quantpipe.registry import ModelRegistry
from quantpipe.serve.app import (
    DEFAULT_DRIFT_WINDOW,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_HELD_BYTES,
    DEFAULT_MAX_JSON_BYTES,
    create_app,
    load_drift_reference,
)
from quantpipe.serve.telemetry import ENV_PROMETHEUS_DIR

# With --workers > 1, each worker process builds its app from these.
ENV_MODELS_DIR = "QUANTPIPE_MODELS_DIR"
ENV_MAX_BODY = "QUANTPIPE_MAX_BODY_BYTES"
ENV_MAX_JSON = "QUANTPIPE_MAX_JSON_BYTES"
ENV_MAX_HELD = "QUANTPIPE_MAX_HELD_BYTES"
ENV_DRIFT_WINDOW = "QUANTPIPE_DRIFT_WINDOW"


def die_with_parent() -> None:
    """Have Linux stop this process (SIGTERM) when its parent dies, even by ``kill -9``.

    Without it, the workers of a killed ``quantpipe serve --workers N`` live on as orphans
    holding the port. Elsewhere than on Linux this does nothing.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() == 1:  # the parent died before the call
        os.kill(os.getpid(), signal.SIGTERM)


def app_from_environment() -> Starlette:
    """App factory for worker processes (``uvicorn --factory``), configured by environment."""
    die_with_parent()
    models_dir = Path(os.environ.get(ENV_MODELS_DIR, "models"))
    return create_app(
        ModelRegistry.from_directory(models_dir),
        int(os.environ.get(ENV_MAX_BODY, DEFAULT_MAX_BODY_BYTES)),
        load_drift_reference(models_dir),
        int(os.environ.get(ENV_DRIFT_WINDOW, DEFAULT_DRIFT_WINDOW)),
        int(os.environ.get(ENV_MAX_JSON, DEFAULT_MAX_JSON_BYTES)),
        Path(os.environ[ENV_PROMETHEUS_DIR]) if os.environ.get(ENV_PROMETHEUS_DIR) else None,
        int(os.environ.get(ENV_MAX_HELD, DEFAULT_MAX_HELD_BYTES)),
        load_digits_models(models_dir / "mnist"),
    )
