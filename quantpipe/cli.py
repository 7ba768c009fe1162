"""The command-line boundary: logging, argument parsing and one-line errors.

Every command's and every pipeline stage's ``main()`` goes through :func:`run`, which turns
a :class:`~quantpipe.errors.QuantpipeError` into ``error: <message>`` on stderr and exit
status 1, with no traceback. Anything else is a bug and keeps its traceback.

``quantpipe <command> [options]`` runs one of :data:`COMMANDS`: ``predict`` (batch),
``serve`` (HTTP), ``gate`` (the accuracy budget), ``monitor`` (drift) or ``share`` (the
run-cache's outputs, to the DVC remote). The pipeline's
stages are not commands: ``dvc repro`` runs them, or ``python -m stages.<name>`` by hand
from the repository root.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence

from quantpipe import __version__
from quantpipe.errors import QuantpipeError

log = logging.getLogger("quantpipe")

#: The ``quantpipe`` commands and the module whose ``main()`` each runs.
COMMANDS = {
    "predict": "quantpipe.batch",
    "serve": "quantpipe.serve.command",
    "gate": "quantpipe.gate",
    "monitor": "quantpipe.monitoring",
    "share": "quantpipe.share",
}


class _DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default, unless it is required or has none (no "default: None")."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.required or action.default is None:
            return action.help
        return super()._get_help_string(action)


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every command shares."""
    p = argparse.ArgumentParser(prog=prog, description=description, formatter_class=_DefaultsHelp)
    p.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    p.add_argument("--version", action="version", version=f"quantpipe {__version__}")
    return p


def run(body: Callable[[argparse.Namespace], None], args: argparse.Namespace) -> int:
    """Run a command body with logging set up; map library errors to one line.

    Returns
    -------
    int
        0 on success, 1 on a :class:`QuantpipeError`, 141 (a shell's status for SIGPIPE),
        quietly, when standard output's reader has gone.
    """
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.captureWarnings(True)
    try:
        body(args)
    except QuantpipeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader went away (`quantpipe predict ... | head -1`)
        _silence_stdout()
        return SIGPIPE_STATUS
    return 0


#: The exit status of a command whose output's reader went away: a shell's for SIGPIPE.
SIGPIPE_STATUS = 128 + 13


def _silence_stdout() -> None:
    """Point standard output at /dev/null, so that the exit's flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``quantpipe`` console command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(
            "usage: quantpipe {" + ",".join(COMMANDS) + "} [options]\n\n"
            "Predict a batch of rows, serve the models over HTTP, check the accuracy\n"
            "budget (gate) or a batch's drift (monitor), or push the run-cache's outputs\n"
            "to the DVC remote (share). `dvc repro` builds the models.\n"
            "`quantpipe COMMAND --help` describes a command.",
            file=sys.stdout if argv else sys.stderr,
        )
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"quantpipe {__version__}")
        return 0
    if argv[0] not in COMMANDS:
        print(
            f"error: unknown command {argv[0]!r}; choose one of: {', '.join(COMMANDS)}",
            file=sys.stderr,
        )
        return 2
    try:
        module = importlib.import_module(COMMANDS[argv[0]])
    except ModuleNotFoundError as exc:
        extra = "serve" if argv[0] == "serve" else "pipeline"
        print(
            f"error: 'quantpipe {argv[0]}' needs {exc.name}, which is not installed; "
            f"install it with: pip install 'quantpipe[{extra}]'",
            file=sys.stderr,
        )
        return 1
    return module.main(argv[1:], prog=f"quantpipe {argv[0]}")


if __name__ == "__main__":
    sys.exit(main())
