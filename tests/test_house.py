"""The house rules that keep the code small: no module over 400 lines, no function over 50."""

from __future__ import annotations

import ast

import pytest

from tests.conftest import REPO_ROOT

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 50
SOURCES = sorted(
    p for package in ("quantpipe", "stages") for p in (REPO_ROOT / package).rglob("*.py")
)


def _functions(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def function_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of a function from its ``def`` to its last line, its docstring left out."""
    assert node.end_lineno is not None
    lines = node.end_lineno - node.lineno + 1
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
        assert first.end_lineno is not None
        if isinstance(first.value.value, str):
            lines -= first.end_lineno - first.lineno + 1
    return lines


def test_function_lines_leave_out_the_docstring():
    tree = ast.parse('def f():\n    """Doc.\n\n    More.\n    """\n    return 1\n')
    assert function_lines(next(_functions(tree))) == 2


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_modules_and_functions_are_small(path):
    text = path.read_text(encoding="utf-8")
    assert text.count("\n") <= MAX_MODULE_LINES, f"{path.name}: over {MAX_MODULE_LINES} lines"
    long = [
        f"{node.name} ({function_lines(node)} lines)"
        for node in _functions(ast.parse(text))
        if function_lines(node) > MAX_FUNCTION_LINES
    ]
    assert not long, f"{path.name}: functions over {MAX_FUNCTION_LINES} lines: {', '.join(long)}"
