"""``quantpipe share``: push what ``dvc push --run-cache`` leaves out, the runs' git-kept outputs.

DVC's run-cache records each stage run: the hashes of its inputs and of its outputs.
``dvc push --run-cache`` (and ``dvc exp push --run-cache``) sends those records and the
outputs DVC caches, but not the outputs git keeps (``cache: false``: the metrics and plot
files). DVC stores a copy of those in the local cache for the run-cache alone, and pushes it
nowhere, so another clone finds the record of ``evaluate``'s run but not its outputs, and runs
the stage again. This command pushes every output of every run recorded in the local
run-cache to the remote, so that ``dvc repro --pull`` and ``dvc exp run --pull`` elsewhere
restore every stage (docs/team.md). It sends only what the remote lacks.

It reads DVC's run-cache through DVC's own Python API (``dvc`` is pinned in
requirements.txt): the pipeline's environment, not the server's.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from quantpipe import cli
from quantpipe.errors import QuantpipeError

log = logging.getLogger("quantpipe.share")


class ShareError(QuantpipeError):
    """The run-cache's outputs could not be pushed."""


def run_entries(runs_dir: Path) -> list[tuple[str, str]]:
    """Every record of a run-cache directory, as ``(key, value)``, sorted.

    Parameters
    ----------
    runs_dir : Path
        DVC's ``runs`` folder: ``<key[:2]>/<key>/<value>``, one file per recorded run.

    Returns
    -------
    list of (str, str)
        Empty if there is no such folder.
    """
    if not runs_dir.is_dir():
        return []
    return sorted(
        (key.name, value.name)
        for prefix in runs_dir.iterdir()
        if prefix.is_dir()
        for key in prefix.iterdir()
        if key.is_dir() and key.name.startswith(prefix.name)
        for value in key.iterdir()
        if value.is_file()
    )


def push_run_outputs(root: Path, remote: str | None, jobs: int | None) -> tuple[int, int, int]:
    """Push the outputs of every run the run-cache of the repository ``root`` records.

    Returns
    -------
    runs, pushed, failed : int
        The runs recorded, the objects sent (files and directory listings), the objects the
        local cache did not have (runs recorded elsewhere, or collected by ``dvc gc``).

    Raises
    ------
    ShareError
        If the repository or its remote cannot be opened.
    """
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        repo = Repo(str(root))
    except DvcException as exc:
        raise ShareError(f"{root}: not a DVC repository ({exc})") from None
    with repo:
        entries = run_entries(Path(repo.stage_cache.cache_dir))
        if not entries:
            return 0, 0, 0
        used = repo.stage_cache.get_used_objs(entries)
        objects = {obj for objs in used.values() for obj in objs}
        try:
            result = repo.cloud.push(objects, jobs=jobs, remote=remote)
        except DvcException as exc:
            raise ShareError(f"cannot push to the remote: {exc}") from None
    return len(entries), len(result.transferred), len(result.failed)


def _body(args: argparse.Namespace) -> None:
    runs, pushed, failed = push_run_outputs(args.repo, args.remote, args.jobs)
    where = f"remote {args.remote!r}" if args.remote else "the default remote"
    log.info(
        "%d recorded runs: %d objects pushed to %s, %d missing from the local cache",
        runs,
        pushed,
        where,
        failed,
    )


def main(argv: Sequence[str] | None = None, prog: str = "quantpipe share") -> int:
    """Run the command; returns the exit status."""
    p = cli.parser(prog, __doc__.split("\n\n")[0].replace("``", "'"))
    p.add_argument("-r", "--remote", help="DVC remote (default: the repository's default)")
    p.add_argument("-j", "--jobs", type=int, help="parallel transfers (default: DVC's)")
    p.add_argument("--repo", type=Path, default=Path("."), help="the DVC repository")
    return cli.run(_body, p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
