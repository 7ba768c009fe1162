"""``quantpipe share``: push every recorded run's outputs, git-kept ones included, to the remote.

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
from quantpipe.errors import QuantpipeError, SetupError, one_line

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
    runs, pushed, missing : int
        The runs recorded; the objects sent (files and directory listings; what the remote
        has already is not sent again); the objects the local cache does not have (runs
        recorded elsewhere and pulled with ``--run-cache``, or collected by ``dvc gc``),
        which cannot be pushed from here.

    Raises
    ------
    SetupError
        If DVC is not installed.
    ShareError
        If the repository or its remote cannot be opened, or an object present here could
        not be pushed.
    """
    try:
        from dvc.cachemgr import LEGACY_HASH_NAMES
        from dvc.exceptions import DvcException
        from dvc.repo import Repo
    except ModuleNotFoundError:
        raise SetupError(
            "'quantpipe share' needs dvc, which is not installed; "
            "install it with: pip install 'quantpipe[pipeline]'"
        ) from None
    try:
        repo = Repo(str(root))
    except DvcException as exc:
        raise ShareError(
            f"cannot open the DVC repository at {root}: {one_line(str(exc))}"
        ) from None
    with repo:
        entries = run_entries(Path(repo.stage_cache.cache_dir))
        if not entries:
            return 0, 0, 0
        try:
            # force: a run whose directory listing is nowhere is skipped, not asked about
            used = repo.stage_cache.get_used_objs(entries, remote=remote, force=True)
        except DvcException as exc:
            raise ShareError(f"cannot read the run-cache: {one_line(str(exc))}") from None
        objects = {obj for objs in used.values() for obj in objs}

        def local(obj) -> bool:
            cache = repo.cache.legacy if obj.name in LEGACY_HASH_NAMES else repo.cache.local
            return bool(cache.exists(obj.value))

        present = {obj for obj in objects if local(obj)}
        try:
            result = repo.cloud.push(present, jobs=jobs, remote=remote)
        except DvcException as exc:
            raise ShareError(f"cannot push to the remote: {one_line(str(exc))}") from None
    if result.failed:
        raise ShareError(
            f"{len(result.failed)} of {len(present)} objects could not be pushed (a directory's "
            "files missing here, or the remote refused them: DVC's warning above names them)"
        )
    return len(entries), len(result.transferred), len(objects) - len(present)


def _body(args: argparse.Namespace) -> None:
    logging.getLogger("dvc").propagate = False  # DVC prints its own warnings, once
    runs, pushed, missing = push_run_outputs(args.repo, args.remote, args.jobs)
    where = f"remote {args.remote!r}" if args.remote else "the default remote"
    if runs == 0:
        log.info("the run-cache records no run: nothing to push")
        return
    log.info(
        "%d recorded runs: %d objects pushed to %s (the rest it had); "
        "%d not in the local cache, so not pushed from here",
        runs,
        pushed,
        where,
        missing,
    )


def main(argv: Sequence[str] | None = None, prog: str = "quantpipe share") -> int:
    """Run the command; returns the exit status."""
    p = cli.parser(
        prog,
        "Push the outputs of every run DVC's run-cache records here, the git-kept ones "
        "(metrics, plots) included, which dvc push --run-cache leaves out.",
    )
    p.add_argument("-r", "--remote", help="DVC remote (default: the repository's default)")
    p.add_argument("-j", "--jobs", type=int, help="parallel transfers (default: DVC's)")
    p.add_argument("--repo", type=Path, default=Path("."), help="the DVC repository")
    return cli.run(_body, p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
