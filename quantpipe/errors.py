"""Exceptions raised by quantpipe's library code, and how their messages quote values.

The command-line layer (:mod:`quantpipe.cli`) turns each of them into one line on stderr and a
non-zero exit; library code never prints and never exits.
"""

import reprlib
from typing import Any

#: reprlib's ``maxstring`` in :func:`show`: a string whose repr is this short is shown whole.
_SHORT = 40


def show(value: Any) -> str:
    """``repr`` of a value a user or client sent, cut short, for an error message.

    Safe for any value: strings are cut before they are copied, containers are shown three
    levels deep at most (``repr`` of JSON nested 1,000 deep would raise ``RecursionError``),
    and the result is at most 60 characters, so an error stays one short line.
    """
    if type(value) is str and len(value) <= _SHORT:  # the usual case, as reprlib would show it
        text = repr(value)
        if len(text) <= _SHORT:
            return text
    short = reprlib.Repr()
    short.maxlevel, short.maxlist, short.maxdict = 3, 6, 4
    short.maxstring = short.maxother = _SHORT
    try:
        text = short.repr(value)
    except ValueError:  # an int of more than 4,300 digits has no repr
        return "an integer too long to show"
    return cut(text, 60)


def one_line(text: str) -> str:
    """``text`` with every run of white space, line breaks included, made one space."""
    return " ".join(text.split())


def cut(text: str, limit: int = 80) -> str:
    """``text``, or its first characters and " ...", in ``limit`` characters at most."""
    return text if len(text) <= limit else text[: limit - 4] + " ..."


class QuantpipeError(Exception):
    """Base class: a problem the user can fix, described in one line."""


class ParamsError(QuantpipeError):
    """``params.yaml`` is missing, malformed or holds a value outside what is allowed."""


class DataError(QuantpipeError):
    """A data file is missing, corrupt or does not hold what the pipeline expects."""


class ModelFileError(QuantpipeError):
    """A model file is missing, corrupt, truncated or of an unknown format."""


class OutputError(QuantpipeError):
    """An output cannot be written: a full disk, a read-only folder, no permission."""


class SetupError(QuantpipeError):
    """A package the command needs is missing or not the one it was built for."""


class GateError(QuantpipeError):
    """A quantized model exceeded the accuracy budget."""


class DriftAlert(QuantpipeError):
    """The batch drifted past a threshold."""


class UnknownModelError(QuantpipeError):
    """A model name that the registry does not hold."""


class InputError(QuantpipeError):
    """Rows to predict that are not what the model takes."""


class PredictionError(InputError):
    """Finite inputs whose prediction is not a finite number (too large for the model).

    Attributes
    ----------
    row : int
        The first such row of the batch, 0-based.
    value : float
        Its prediction (``inf``, ``-inf`` or ``nan``).
    """

    def __init__(self, row: int, value: float, where: str = "row"):
        super().__init__(
            f"{where} {row}: the prediction is {value}, not a finite number "
            "(an input is too large for the model)"
        )
        self.row = row
        self.value = value


class RequestError(Exception):
    """A request the server refuses, with the HTTP status to answer (a 4xx, as JSON)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message
