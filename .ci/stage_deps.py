"""Every repository module a DVC stage imports is a dependency of that stage, from the code.

DVC reruns a stage only when one of its listed deps changes, so a module missing from a
stage's ``deps:`` leaves its outputs stale with CI green. This script computes, for each
stage of ``dvc.yaml`` (its command ``python -m <module> ...``), the closure of the repository
modules that module imports, directly or not: every ``import`` statement in every reached
module, at any depth (imports inside functions included), plus the ``__init__.py`` of every
package on the way. It then checks what the stages list against it:

- a stage lists each module of the closure under ``stages/`` as a file (its entry module
  and ``stages/__init__.py``), and the package ``quantpipe`` as one directory dep if the
  closure reaches it. One directory instead of 12 to 26 files per stage keeps ``dvc.lock``
  small: DVC parses and rewrites the whole lock after every stage, and a lock of 1,355
  lines made that half of a cold ``dvc repro`` (benchmarks/startup_bench.py);
- ``.dvcignore`` hides from DVC, between its two ``stage_deps`` marker lines, exactly the
  package's modules that no stage reaches (the inference layer: the server, the batch
  command, the gate), the bytecode caches and any compiled extension (a shared library's
  bytes differ from one compiler and machine to the next; the C source,
  ``quantpipe/_kernels.c``, which the directory dep includes, is what decides the outputs),
  so that editing those reruns nothing and the same source records the same hashes
  everywhere.

    python .ci/stage_deps.py            # check: list what is missing or extra, exit 1 if any
    python .ci/stage_deps.py --write    # rewrite the code deps in dvc.yaml and .dvcignore

The code deps of a stage are written first (its entry module, the other files sorted, then
the directory); the other deps (data, models) follow in their order. Imports by computed
name (``importlib``) cannot be followed: :func:`dynamic_imports` lists them, and the test
suite checks that a stage never reaches one, that what each stage process really loads is
listed, and that DVC sees a change to every module a stage reaches and to no other.
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
#: Packages that a stage lists as one directory dep rather than file by file.
DIRECTORY_DEPS = ("quantpipe",)
#: The lines around the part of ``.dvcignore`` that this script writes.
BEGIN = "# stage_deps: begin (written by `python .ci/stage_deps.py --write`; do not edit)"
END = "# stage_deps: end"
#: What ``.dvcignore`` hides under a directory dep besides unreached modules: what Python and
#: the build write (bytecode, compiled extensions).
BUILT = ("__pycache__/", "*.pyc", "*.so", "*.pyd")
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
    return dep in DIRECTORY_DEPS or (dep.endswith(".py") and dep.split("/")[0] in PACKAGES)


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def expected_code_deps(cmd: str, root: Path = ROOT) -> list[str] | None:
    """The code deps a stage with command ``cmd`` must list, or None if it runs no module.

    The entry module's file first, then the closure's other files outside the directory
    deps (sorted), then each directory dep the closure reaches.
    """
    entry = entry_module(cmd)
    if entry is None:
        return None
    first = module_path(entry, root)
    assert first is not None
    files = {_rel(p, root) for p in closure(entry, root)} - {_rel(first, root)}
    dirs = [d for d in DIRECTORY_DEPS if any(f.startswith(f"{d}/") for f in files)]
    rest = sorted(f for f in files if f.split("/")[0] not in DIRECTORY_DEPS)
    return [_rel(first, root), *rest, *dirs]


def unreached_modules(commands: Iterable[str], root: Path = ROOT) -> list[str]:
    """Modules of the directory deps that no stage's closure reaches, sorted."""
    reached: set[str] = set()
    for cmd in commands:
        entry = entry_module(cmd)
        if entry is not None:
            reached |= {_rel(p, root) for p in closure(entry, root)}
    every = {_rel(p, root) for d in DIRECTORY_DEPS for p in (root / d).rglob("*.py")}
    return sorted(f for f in every - reached if "__pycache__" not in f)


def ignore_block(commands: Iterable[str], root: Path = ROOT) -> list[str]:
    """The lines of ``.dvcignore`` between and including the markers."""
    return [BEGIN, *BUILT, *(f"/{f}" for f in unreached_modules(commands, root)), END]


def _current_block(text: str) -> list[str] | None:
    lines = text.splitlines()
    if BEGIN not in lines or END not in lines:
        return None
    return lines[lines.index(BEGIN) : lines.index(END) + 1]


def _with_block(text: str, block: list[str]) -> str:
    lines = text.splitlines()
    if BEGIN in lines and END in lines:
        lines[lines.index(BEGIN) : lines.index(END) + 1] = block
    else:
        lines += block
    return "\n".join(lines) + "\n"


def _yaml():
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 100
    yaml.preserve_quotes = True
    return yaml


def _commands(doc) -> list[str]:
    return [str(stage.get("cmd", "")) for stage in (doc or {}).get("stages", {}).values()]


def _stage_problems(name: str, stage, root: Path) -> list[str]:
    want = expected_code_deps(str(stage.get("cmd", "")), root)
    if want is None:
        return []
    have = [d for d in stage.get("deps", []) if isinstance(d, str) and _is_code(d)]
    problems = []
    missing = sorted(set(want) - set(have))
    extra = sorted(set(have) - set(want))
    if missing:
        problems.append(f"{name}: imports but does not list {', '.join(missing)}")
    inside = [f for f in extra if f.split("/")[0] in DIRECTORY_DEPS]
    if inside:
        problems.append(
            f"{name}: lists {', '.join(inside)} one by one; "
            "its directory dep covers them (list the directory)"
        )
    extra = [f for f in extra if f not in inside]
    if extra:
        problems.append(f"{name}: lists but does not import {', '.join(extra)}")
    return problems


def _ignore_problems(doc, root: Path) -> list[str]:
    ignore = root / ".dvcignore"
    text = ignore.read_text(encoding="utf-8") if ignore.is_file() else ""
    have = _current_block(text)
    want = ignore_block(_commands(doc), root)
    if have is None:
        return [".dvcignore: has no stage_deps block (bytecode and unreached modules)"]
    problems = []
    if set(want) - set(have):
        problems.append(f".dvcignore: does not hide {', '.join(sorted(set(want) - set(have)))}")
    if set(have) - set(want):
        problems.append(f".dvcignore: hides {', '.join(sorted(set(have) - set(want)))}")
    if not problems and have != want:
        problems.append(".dvcignore: the stage_deps block is out of order")
    return problems


def check(dvcfile: Path, root: Path = ROOT) -> list[str]:
    """One line per stage whose code deps differ from the computed ones, and one per way
    that ``.dvcignore`` does not hide exactly the bytecode and the unreached modules."""
    doc = _yaml().load(dvcfile.read_text(encoding="utf-8"))
    problems = []
    for name, stage in ((doc or {}).get("stages") or {}).items():
        problems += _stage_problems(name, stage, root)
    return problems + _ignore_problems(doc, root)


def write(dvcfile: Path, root: Path = ROOT) -> bool:
    """Rewrite the code deps of every stage in ``dvcfile`` and the block of ``.dvcignore``;
    True if either file changed."""
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
    changed = text.getvalue() != before
    if changed:
        dvcfile.write_text(text.getvalue(), encoding="utf-8")
    ignore = root / ".dvcignore"
    old = ignore.read_text(encoding="utf-8") if ignore.is_file() else ""
    new = _with_block(old, ignore_block(_commands(doc), root))
    if new != old:
        ignore.write_text(new, encoding="utf-8")
        changed = True
    return changed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--write", action="store_true", help="rewrite dvc.yaml's code deps and .dvcignore"
    )
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
