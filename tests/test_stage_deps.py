"""dvc.yaml lists, for every stage, every repository module the stage imports."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from tests.conftest import REPO_ROOT


def _load_tool():
    spec = importlib.util.spec_from_file_location("stage_deps", REPO_ROOT / ".ci" / "stage_deps.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["stage_deps"] = module
    spec.loader.exec_module(module)
    return module


deps = _load_tool()


def test_dvc_yaml_lists_every_module_each_stage_imports():
    problems = deps.check(REPO_ROOT / "dvc.yaml")
    assert problems == [], "run `python .ci/stage_deps.py --write`:\n" + "\n".join(problems)


def test_no_stage_reaches_an_import_by_computed_name():
    """Such an import is invisible to the static closure; the only one is the `quantpipe`
    command's dispatcher, which no stage calls (the e2e test checks what stages load)."""
    files = [*(REPO_ROOT / "stages").glob("*.py"), *(REPO_ROOT / "quantpipe").rglob("*.py")]
    found = deps.dynamic_imports(files)
    assert [f.split(":")[0] for f in found] == [str(REPO_ROOT / "quantpipe" / "cli.py")]


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A small repository: a package `stages` with every kind of import."""
    monkeypatch.setattr(deps, "PACKAGES", ("stages",))
    pkg = tmp_path / "stages"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "entry.py": "import os\nfrom stages import a\nfrom .sub import b\n",
        "a.py": "def f():\n    from stages.lazy import g  # inside a function\n    return g\n",
        "lazy.py": "import stages.leaf\n",
        "leaf.py": "",
        "sub/__init__.py": "",
        "sub/b.py": "from ..leaf import x\nfrom . import c\n",
        "sub/c.py": "",
        "unused.py": "",
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    return tmp_path


def test_closure_follows_every_kind_of_import(tree):
    found = {p.relative_to(tree).as_posix() for p in deps.closure("stages.entry", tree)}
    assert found == {
        "stages/__init__.py",
        "stages/entry.py",
        "stages/a.py",
        "stages/lazy.py",
        "stages/leaf.py",
        "stages/sub/__init__.py",
        "stages/sub/b.py",
        "stages/sub/c.py",
    }


def test_closure_of_an_unknown_module_is_an_error(tree):
    with pytest.raises(LookupError, match=r"stages\.nope: not a module of the repository"):
        deps.closure("stages.nope", tree)


DVC_YAML = """\
stages:
  one:
    # a comment that must survive
    cmd: python -m stages.entry --flag ${item}
    deps:
      - stages/entry.py
      - stages/unused.py
      - data/in.csv
  shell:
    cmd: echo hello
"""


def test_check_names_missing_and_extra_modules(tree):
    (tree / "dvc.yaml").write_text(DVC_YAML)
    assert deps.check(tree / "dvc.yaml", tree) == [
        "one: imports but does not list stages/__init__.py, stages/a.py, stages/lazy.py, "
        "stages/leaf.py, stages/sub/__init__.py, stages/sub/b.py, stages/sub/c.py",
        "one: lists but does not import stages/unused.py",
    ]


def test_write_lists_the_closure_and_keeps_the_rest(tree):
    (tree / "dvc.yaml").write_text(DVC_YAML)
    assert deps.write(tree / "dvc.yaml", tree) is True
    text = (tree / "dvc.yaml").read_text()
    assert "# a comment that must survive" in text
    assert "    deps:\n      - stages/entry.py\n      - stages/__init__.py\n" in text
    assert text.index("stages/sub/c.py") < text.index("data/in.csv")
    assert "unused" not in text
    assert deps.check(tree / "dvc.yaml", tree) == []
    assert deps.write(tree / "dvc.yaml", tree) is False  # a second run changes nothing


def test_entry_module_of_a_command():
    assert deps.entry_module("python -m stages.quantize --bits ${item.bits}") == "stages.quantize"
    assert deps.entry_module("echo hi") is None


def test_main_fails_with_the_fix_when_a_module_is_missing(tree, capsys):
    (tree / "dvc.yaml").write_text(DVC_YAML)
    assert deps.main(["--dvcfile", str(tree / "dvc.yaml")]) == 1
    err = capsys.readouterr().err
    assert "one: imports but does not list" in err
    assert "python .ci/stage_deps.py --write" in err
