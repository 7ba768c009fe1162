"""``dvc.yaml`` and ``dvc.lock`` as the pipeline's own code reads them.

:func:`pipeline_outputs` lists what the stages write; the rest keeps ``dvc.lock`` as
``dvc.yaml`` and ``params.yaml`` describe it. DVC leaves two things behind when a matrix
item (a width of ``quantize.bits``, say) is removed and later restored: the removed item's
entry stays in ``dvc.lock``, and a restored item's entry is appended at the end of the
file, so that removing a width and putting it back rewrites hundreds of lines with no real
change. :func:`tidy_lock` removes the entries of matrix items that ``params.yaml`` no
longer asks for and puts the others in the order of ``dvc.yaml``, each matrix stage's items
in the order of its list: the order DVC itself writes on a build from scratch. DVC updates
an existing entry in place, so after the evaluate stage has tidied the file, the stages
that run after it keep the order.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any

from quantpipe.io import write_text


def stage_order(stages: Sequence[str], matrix_items: Mapping[str, Sequence[str]]) -> list[str]:
    """The ``dvc.lock`` names of the stages, in the order DVC lists them.

    Parameters
    ----------
    stages : sequence of str
        Stage names as ``dvc.yaml`` lists them.
    matrix_items : mapping of str to sequence of str
        For each matrix stage, its items in list order (``{"quantize": ["8", "16"]}``).

    Returns
    -------
    list of str
        ``["params", ..., "quantize@8", "quantize@16", ...]``.
    """
    order: list[str] = []
    for name in stages:
        if name in matrix_items:
            order.extend(f"{name}@{item}" for item in matrix_items[name])
        else:
            order.append(name)
    return order


def tidy_lock(
    entries: MutableMapping[str, Any], order: Sequence[str], matrix_stages: Sequence[str]
) -> list[str]:
    """Remove stale matrix entries and put the rest in ``order``, in place.

    Parameters
    ----------
    entries : mutable ordered mapping
        ``dvc.lock``'s ``stages`` mapping (a ruamel ``CommentedMap`` keeps its layout).
    order : sequence of str
        The wanted names, in order (:func:`stage_order`).
    matrix_stages : sequence of str
        Stages whose items come and go with ``params.yaml``: an entry ``stage@item`` of one
        of them that is not in ``order`` is removed. Other unknown entries are kept, last.

    Returns
    -------
    list of str
        The names removed.
    """
    wanted = set(order)
    stale = [
        name
        for name in entries
        if "@" in name and name.partition("@")[0] in matrix_stages and name not in wanted
    ]
    for name in stale:
        del entries[name]
    kept = dict(entries)
    known = [name for name in order if name in kept]
    others = [name for name in kept if name not in wanted]
    for name in list(entries):
        del entries[name]
    for name in known + others:
        entries[name] = kept[name]
    return stale


def tidy_lockfile(
    lockfile: Path, dvcfile: Path, matrix_items: Mapping[str, Sequence[str]]
) -> list[str]:
    """:func:`tidy_lock` on a ``dvc.lock`` file, rewritten only if something changes.

    Parameters
    ----------
    lockfile : Path
        ``dvc.lock``; nothing is done if it does not exist.
    dvcfile : Path
        ``dvc.yaml``, for the order of the stages.
    matrix_items : mapping of str to sequence of str
        As for :func:`stage_order`.

    Returns
    -------
    list of str
        The entries removed.
    """
    if not lockfile.is_file():
        return []
    from ruamel.yaml import YAML  # DVC's own YAML library; kept out of import time

    yaml = YAML()
    stages = list((yaml.load(dvcfile.read_text(encoding="utf-8")) or {}).get("stages", {}))
    before = lockfile.read_text(encoding="utf-8")
    lock = yaml.load(before)
    entries = lock.get("stages") if isinstance(lock, dict) else None
    if not isinstance(entries, dict):
        return []
    removed = tidy_lock(entries, stage_order(stages, matrix_items), tuple(matrix_items))
    text = io.StringIO()
    yaml.dump(lock, text)
    if text.getvalue() != before:
        write_text(lockfile, text.getvalue())
    return removed


def pipeline_outputs(dvcfile: Path) -> set[str]:
    """Every path that a stage of ``dvcfile`` lists under ``outs``, ``metrics`` or ``plots``.

    Paths with ``${...}`` (a matrix item's) are left as written.
    """
    import yaml  # read only: ruamel's round trip is for files this module rewrites

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
    import yaml  # read only, as for pipeline_outputs

    stages = (yaml.safe_load(dvcfile.read_text(encoding="utf-8")) or {}).get("stages", {})
    return [
        path
        for stage in stages.values()
        for path in (stage.get("meta") or {}).get("machine_dependent", [])
    ]
