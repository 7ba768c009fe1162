"""Every repository module a DVC stage imports is a dependency of that stage, from the code.

DVC reruns a stage only when one of its listed deps changes, so a module missing from a
stage's ``deps:`` leaves its outputs stale with CI green. This script computes, for each
stage of ``dvc.yaml`` (its command ``python -m <module> ...``), the closure of the repository
modules that module imports, directly or not: every ``import`` statement in every reached
module, at any depth (imports inside functions included), plus the ``__init__.py`` of every
package on the way. It then compares the closure with the ``.py`` files the stage lists.

    python .ci/stage_deps.py            # check: list what is missing or extra, exit 1 if any
    python .ci/stage_deps.py --write    # rewrite the stages' code deps in dvc.yaml

The code deps of a stage are written first, the entry module then the rest sorted; the other
deps (data, models) follow in their order. Imports by computed name (``importlib``) cannot
be followed: :func:`dynamic_imports` lists them, and the test suite checks that a stage
never reaches one, and that what each stage process really loads is listed.
"""

from __future__ import annotations

import argparse
import ast
import io
import re
import sys
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The repository's own top-level packages: imports of anything else are not followed.
PACKAGES = ("stages", "quantpipe")
_MODULE_CMD = re.compile(r"^\s*python3?\s+-m\s+([\w.]+)")


def module_path(name: str, root: Path) -> Path | None:
    """The file of module ``name`` under ``root`` (``a/b.py`` or ``a/b/__init__.py``)."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Module names an AST imports: ``import a.b``, ``from a import b`` (``a`` and ``a.b``),
    relative imports resolved against ``module``."""
    names: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            names.add(source)
            names.update(f"{source}.{alias.name}" for alias in node.names)
    return names


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def closure(entry: str, root: Path = ROOT) -> set[Path]:
    """Files of every repository module that importing ``entry`` can reach.

    Parameters
    ----------
    entry : str
        A module name, such as ``stages.train``.
    root : Path
        The repository root.

    Returns
    -------
    set of Path
        Absolute paths, ``entry``'s own file and its packages' ``__init__.py`` included.

    Raises
    ------
    LookupError
        If ``entry`` is not a module of the repository.
    """
    if module_path(entry, root) is None:
        raise LookupError(f"{entry}: not a module of the repository under {root}")
    seen: dict[str, Path] = {}
    todo = [entry]
    while todo:
        name = todo.pop()
        for part in _with_parents(name):
            path = module_path(part, root)
            if path is None or part in seen:
                continue
            seen[part] = path
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            todo.extend(_imported_names(tree, part, path.name == "__init__.py"))
    return set(seen.values())


def dynamic_imports(paths: Iterable[Path]) -> list[str]:
    """``file:line`` of every call of ``importlib.import_module`` or ``__import__``."""
    found = []
    for path in sorted(paths):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name in ("import_module", "__import__"):
                    found.append(f"{path}:{node.lineno}")
    return found


def entry_module(cmd: str) -> str | None:
    """The module a stage command runs (``python -m stages.train`` gives ``stages.train``)."""
    match = _MODULE_CMD.match(cmd)
    return match.group(1) if match else None


def _is_code(dep: str) -> bool:
    return dep.endswith(".py") and dep.split("/")[0] in PACKAGES


def expected_code_deps(cmd: str, root: Path = ROOT) -> list[str] | None:
    """The code deps a stage with command ``cmd`` must list, or None if it runs no module."""
    entry = entry_module(cmd)
    if entry is None:
        return None
    files = closure(entry, root)
    first = module_path(entry, root)
    rel = sorted(p.relative_to(root).as_posix() for p in files if p != first)
    assert first is not None
    return [first.relative_to(root).as_posix(), *rel]


def _yaml():
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 100
    yaml.preserve_quotes = True
    return yaml


def check(dvcfile: Path, root: Path = ROOT) -> list[str]:
    """One line per stage whose code deps differ from the computed ones."""
    stages = (_yaml().load(dvcfile.read_text(encoding="utf-8")) or {}).get("stages", {})
    problems = []
    for name, stage in stages.items():
        want = expected_code_deps(str(stage.get("cmd", "")), root)
        if want is None:
            continue
        have = [d for d in stage.get("deps", []) if isinstance(d, str) and _is_code(d)]
        missing = sorted(set(want) - set(have))
        extra = sorted(set(have) - set(want))
        if missing:
            problems.append(f"{name}: imports but does not list {', '.join(missing)}")
        if extra:
            problems.append(f"{name}: lists but does not import {', '.join(extra)}")
    return problems


def write(dvcfile: Path, root: Path = ROOT) -> bool:
    """Rewrite the code deps of every stage in ``dvcfile``; True if the file changed."""
    yaml = _yaml()
    before = dvcfile.read_text(encoding="utf-8")
    doc = yaml.load(before)
    for stage in doc.get("stages", {}).values():
        want = expected_code_deps(str(stage.get("cmd", "")), root)
        if want is None:
            continue
        deps = stage.get("deps")
        others = [d for d in deps or [] if not (isinstance(d, str) and _is_code(d))]
        if deps is None:
            stage["deps"] = want + others
            continue
        deps[:] = want + others
    text = io.StringIO()
    yaml.dump(doc, text)
    if text.getvalue() == before:
        return False
    dvcfile.write_text(text.getvalue(), encoding="utf-8")
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--write", action="store_true", help="rewrite dvc.yaml's code deps")
    p.add_argument("--dvcfile", type=Path, default=ROOT / "dvc.yaml", help="the pipeline file")
    args = p.parse_args(argv)
    root = args.dvcfile.resolve().parent
    if args.write:
        changed = write(args.dvcfile, root)
        print(f"{args.dvcfile}: {'code deps rewritten' if changed else 'already complete'}")
        return 0
    problems = check(args.dvcfile, root)
    for line in problems:
        print(f"error: {args.dvcfile}: {line}", file=sys.stderr)
    if problems:
        print("run `python .ci/stage_deps.py --write` to list every module", file=sys.stderr)
        return 1
    print(f"{args.dvcfile}: every stage lists every module it imports")
    return 0


if __name__ == "__main__":
    sys.exit(main())
