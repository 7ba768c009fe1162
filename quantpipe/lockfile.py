"""``dvc.yaml`` and ``dvc.lock`` as the pipeline's own code and CI's checks read them.

:func:`pipeline_outputs` lists what the stages write. :func:`machine_dependent` lists the
outputs stages declare machine-dependent (timings), and :func:`comparable_lock` is
``dvc.lock`` with their hashes left out: what CI's same-bytes check compares.
"""

from __future__ import annotations

from pathlib import Path


def pipeline_outputs(dvcfile: Path) -> set[str]:
    """Every path that a stage of ``dvcfile`` lists under ``outs``, ``metrics`` or ``plots``."""
    import yaml

    stages = (yaml.safe_load(dvcfile.read_text(encoding="utf-8")) or {}).get("stages", {})
    found: set[str] = set()
    for stage in stages.values():
        for key in ("outs", "metrics", "plots"):
            for entry in stage.get(key) or []:
                found.update([entry] if isinstance(entry, str) else entry)
    return found


def machine_dependent(dvcfile: Path) -> list[str]:
    """The paths stages of ``dvcfile`` declare machine-dependent (``meta: machine_dependent``).

    Timings: no check can expect them to be the same bytes on two machines.
    """
    import yaml

    stages = (yaml.safe_load(dvcfile.read_text(encoding="utf-8")) or {}).get("stages", {})
    return [
        path
        for stage in stages.values()
        for path in (stage.get("meta") or {}).get("machine_dependent", [])
    ]


def comparable_lock(lock_text: str, dvcfile: Path) -> str:
    """``dvc.lock`` without the hashes of :func:`machine_dependent` outputs.

    Parameters
    ----------
    lock_text : str
        The text of a ``dvc.lock``.
    dvcfile : Path
        The ``dvc.yaml`` beside it.

    Returns
    -------
    str
        The lock as canonical YAML, each machine-dependent output's entry reduced to its
        path, so that two machines' locks compare equal when everything else is.
    """
    import yaml

    timings = set(machine_dependent(dvcfile))
    lock = yaml.safe_load(lock_text) or {}
    for entry in (lock.get("stages") or {}).values():
        entry["outs"] = [
            {"path": out["path"]} if out.get("path") in timings else out
            for out in entry.get("outs") or []
        ]
    return yaml.safe_dump(lock, sort_keys=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m quantpipe.lockfile [LOCK] [DVCFILE]``: print :func:`comparable_lock`."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    lock = Path(args[0] if args else "dvc.lock")
    dvcfile = Path(args[1] if len(args) > 1 else "dvc.yaml")
    sys.stdout.write(comparable_lock(lock.read_text(encoding="utf-8"), dvcfile))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
