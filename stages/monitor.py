"""Stage ``monitor``: whether the batch in ``monitor.batch`` is still like the training data.

The same as the ``quantpipe monitor`` command (:mod:`quantpipe.monitoring`): writes
``metrics/monitor/report.json`` and ``metrics/monitor/drift.csv``, then fails (and with it
``dvc repro``) with one line naming every alert.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from quantpipe import monitoring


def main(argv: Sequence[str] | None = None, prog: str = "python -m stages.monitor") -> int:
    """Run the stage; returns the exit status (1 when an alert fires)."""
    return monitoring.main(argv, prog=prog)


if __name__ == "__main__":
    sys.exit(main())
