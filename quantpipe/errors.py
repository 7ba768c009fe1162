"""Exceptions raised by quantpipe's library code.

The command-line layer (:mod:`quantpipe.cli`) turns each of them into one line on stderr and a
non-zero exit; library code never prints and never exits.
"""


class QuantpipeError(Exception):
    """Base class: a problem the user can fix, described in one line."""


class ParamsError(QuantpipeError):
    """``params.yaml`` is missing, malformed or holds a value outside what is allowed."""


class DataError(QuantpipeError):
    """A data file is missing, corrupt or does not hold what the pipeline expects."""


class ModelFileError(QuantpipeError):
    """A model file is missing, corrupt, truncated or of an unknown format."""
