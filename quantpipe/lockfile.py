"""``dvc.yaml`` and ``dvc.lock`` as the pipeline's own code and CI's checks read them.

:func:`pipeline_outputs` lists what the stages write. :func:`machine_dependent` lists the
outputs stages declare machine-dependent (timings), and :func:`comparable_lock` is
``dvc.lock`` with their hashes left out: what CI's same-bytes check compares.
:func:`verify_outputs` checks files against the hashes ``dvc.lock`` records (the container
ships exactly the models that were evaluated and gated), and :func:`outputs_digest` names
such a set of outputs in one line (the image's label).
``.ci/lock.py`` is their command line, for CI's steps.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path


def pipeline_stages(dvcfile: Path) -> dict[str, dict]:
    """The ``stages`` mapping of ``dvcfile`` (empty if it has none), as written."""
    import yaml

    return (yaml.safe_load(dvcfile.read_text(encoding="utf-8")) or {}).get("stages") or {}


def _lock_outs(lock: dict) -> Iterator[tuple[dict, list[dict]]]:
    """Each stage entry of a parsed ``dvc.lock``, with its ``outs`` list."""
    for entry in (lock.get("stages") or {}).values():
        yield entry, entry.get("outs") or []


def pipeline_outputs(dvcfile: Path) -> set[str]:
    """Every path that a stage of ``dvcfile`` lists under ``outs``, ``metrics`` or ``plots``."""
    found: set[str] = set()
    for stage in pipeline_stages(dvcfile).values():
        for key in ("outs", "metrics", "plots"):
            for entry in stage.get(key) or []:
                found.update([entry] if isinstance(entry, str) else entry)
    return found


def machine_dependent(dvcfile: Path) -> list[str]:
    """The paths stages of ``dvcfile`` declare machine-dependent (``meta: machine_dependent``).

    Timings: no check can expect them to be the same bytes on two machines.
    """
    return [
        path
        for stage in pipeline_stages(dvcfile).values()
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
    for entry, outs in _lock_outs(lock):
        entry["outs"] = [{"path": o["path"]} if o.get("path") in timings else o for o in outs]
    return yaml.safe_dump(lock, sort_keys=True)


def recorded_outputs(lock_text: str, prefix: str) -> dict[str, str]:
    """The outputs under ``prefix`` that ``dvc.lock`` records, path to md5.

    A directory's md5 ends in ``.dir``: it names the JSON listing of its files in DVC's
    cache.
    """
    import yaml

    base = prefix.rstrip("/")
    found = {
        out["path"]: out["md5"]
        for _, outs in _lock_outs(yaml.safe_load(lock_text) or {})
        for out in outs
        if out.get("path", "") == base or out.get("path", "").startswith(base + "/")
    }
    return dict(sorted(found.items()))


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_outputs(lock_text: str, root: Path, cache_dir: Path, prefix: str) -> list[str]:
    """What under ``prefix`` differs from the hashes ``dvc.lock`` records.

    Parameters
    ----------
    lock_text : str
        The text of ``dvc.lock``.
    root : Path
        The repository's folder.
    cache_dir : Path
        DVC's cache (``.dvc/cache``), which holds each directory's listing.
    prefix : str
        A path under ``root`` (``models``).

    Returns
    -------
    list of str
        One line per problem (a file missing, changed, or under ``prefix`` but in no recorded
        output; a listing missing or not matching its hash); empty when every file under
        ``prefix`` is one that ``dvc.lock`` records.
    """
    outputs = recorded_outputs(lock_text, prefix)
    if not outputs:
        return [f"dvc.lock records no output under {prefix}"]
    problems = []
    for path, md5 in outputs.items():
        target = root / path
        if not md5.endswith(".dir"):
            if not target.is_file():
                problems.append(f"{path}: missing")
            elif _md5(target) != md5:
                problems.append(f"{path}: not the file dvc.lock records")
            continue
        listing_path = cache_dir / "files" / "md5" / md5[:2] / md5[2:]
        if not listing_path.is_file():
            problems.append(f"{path}: its listing {md5} is not in {cache_dir} (dvc pull it)")
            continue
        raw = listing_path.read_bytes()
        if hashlib.md5(raw).hexdigest() != md5.removesuffix(".dir"):
            problems.append(f"{path}: its listing in the cache is corrupt")
            continue
        listed = {e["relpath"]: e["md5"] for e in json.loads(raw)}
        present = (
            {p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()}
            if target.is_dir()
            else set()
        )
        problems += [f"{path}/{name}: missing" for name in sorted(set(listed) - present)]
        problems += [f"{path}/{name}: not in dvc.lock" for name in sorted(present - set(listed))]
        problems += [
            f"{path}/{name}: not the file dvc.lock records"
            for name in sorted(set(listed) & present)
            if _md5(target / name) != listed[name]
        ]
    problems += [f"{path}: not in dvc.lock" for path in _unrecorded(root, prefix, outputs)]
    return problems


def _unrecorded(root: Path, prefix: str, outputs: dict[str, str]) -> list[str]:
    """Files under ``prefix`` in no recorded output (DVC's own .gitignore files aside)."""
    base = root / prefix
    files = sorted(p.relative_to(root).as_posix() for p in base.rglob("*") if p.is_file())
    return [
        f
        for f in files
        if Path(f).name != ".gitignore"
        and f not in outputs
        and not any(f.startswith(f"{o}/") for o, m in outputs.items() if m.endswith(".dir"))
    ]


def outputs_digest(lock_text: str, prefix: str) -> str:
    """One name for the outputs under ``prefix``: sha256 of their sorted ``path md5`` lines.

    It names what ``dvc.lock`` records (what :func:`verify_outputs` checks files against),
    not the files present.

    Raises
    ------
    ValueError
        If ``dvc.lock`` records no output under ``prefix``.
    """
    outputs = recorded_outputs(lock_text, prefix)
    if not outputs:
        raise ValueError(f"dvc.lock records no output under {prefix}")
    lines = "".join(f"{p} {m}\n" for p, m in outputs.items())
    return "sha256:" + hashlib.sha256(lines.encode()).hexdigest()
