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


def test_the_only_import_by_computed_name_is_the_command_dispatcher():
    """Such an import is invisible to the static closure. The only one is the `quantpipe`
    command's dispatcher in cli.py, which every stage imports (for `cli.run`) but none calls:
    the e2e test checks what each stage process really loads."""
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
        ".dvcignore: has no stage_deps block (bytecode and unreached modules)",
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
    command = "python -m stages.monitor --batch ${monitor.batch}"
    assert deps.entry_module(command) == "stages.monitor"
    assert deps.entry_module("echo hi") is None


def test_main_fails_with_the_fix_when_a_module_is_missing(tree, capsys):
    (tree / "dvc.yaml").write_text(DVC_YAML)
    assert deps.main(["--dvcfile", str(tree / "dvc.yaml")]) == 1
    err = capsys.readouterr().err
    assert "one: imports but does not list" in err
    assert "python .ci/stage_deps.py --write" in err


@pytest.fixture
def lib_tree(tree, monkeypatch):
    """`tree` plus a package `lib` that stages list as one directory dep."""
    monkeypatch.setattr(deps, "PACKAGES", ("stages", "lib"))
    monkeypatch.setattr(deps, "DIRECTORY_DEPS", ("lib",))
    lib = tree / "lib"
    (lib / "serve").mkdir(parents=True)
    (lib / "__pycache__").mkdir()
    files = {
        "lib/__init__.py": "",
        "lib/core.py": "from lib import util\n",
        "lib/util.py": "",
        "lib/serve/__init__.py": "",
        "lib/serve/app.py": "import lib.core\n",
        "lib/__pycache__/core.cpython-311.py": "",  # not a module, whatever its name
        "stages/uses_lib.py": "import lib.core\n",
    }
    for name, text in files.items():
        (tree / name).write_text(text)
    (tree / "dvc.yaml").write_text(LIB_DVC_YAML)
    (tree / ".dvcignore").write_text("# kept\n/notes/\n")
    return tree


LIB_DVC_YAML = """\
stages:
  one:
    cmd: python -m stages.uses_lib
    deps:
      - stages/uses_lib.py
      - lib/core.py
      - data/in.csv
"""


def test_a_directory_dep_stands_for_the_package(lib_tree):
    cmd = "python -m stages.uses_lib"
    assert deps.expected_code_deps(cmd, lib_tree) == [
        "stages/uses_lib.py",
        "stages/__init__.py",
        "lib",
    ]
    assert deps.unreached_modules([cmd], lib_tree) == ["lib/serve/__init__.py", "lib/serve/app.py"]


def test_check_wants_the_directory_and_the_ignore_block(lib_tree):
    assert deps.check(lib_tree / "dvc.yaml", lib_tree) == [
        "one: imports but does not list lib, stages/__init__.py",
        "one: lists lib/core.py one by one; its directory dep covers them (list the directory)",
        ".dvcignore: has no stage_deps block (bytecode and unreached modules)",
    ]


def test_write_lists_the_directory_and_hides_exactly_the_unreached_modules(lib_tree):
    assert deps.write(lib_tree / "dvc.yaml", lib_tree) is True
    assert (
        "      - stages/__init__.py\n      - lib\n      - data/in.csv\n"
        in (lib_tree / "dvc.yaml").read_text()
    )
    assert (lib_tree / ".dvcignore").read_text().splitlines() == [
        "# kept",
        "/notes/",
        deps.BEGIN,
        "__pycache__/",
        "*.pyc",
        "*.so",
        "*.pyd",
        "/lib/serve/__init__.py",
        "/lib/serve/app.py",
        deps.END,
    ]
    assert deps.check(lib_tree / "dvc.yaml", lib_tree) == []
    assert deps.write(lib_tree / "dvc.yaml", lib_tree) is False


def test_check_names_a_reached_module_that_dvcignore_hides_and_an_unreached_one_it_does_not(
    lib_tree,
):
    deps.write(lib_tree / "dvc.yaml", lib_tree)
    (lib_tree / "stages" / "uses_lib.py").write_text("import lib.core\nimport lib.serve.app\n")
    (lib_tree / "lib" / "new.py").write_text("")
    assert deps.check(lib_tree / "dvc.yaml", lib_tree) == [
        ".dvcignore: does not hide /lib/new.py",
        ".dvcignore: hides /lib/serve/__init__.py, /lib/serve/app.py",
    ]
