"""YAML files read strictly: UTF-8, no duplicate keys, no aliases, one line per problem.

PyYAML keeps the last of two equal keys without a word, and expands aliases on access, so
2 kB of nested aliases can stand for billions of values (and an error message that prints
one of them, for gigabytes). Hand-written configuration needs neither.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode

from quantpipe.errors import cut, show


class _Refused(yaml.YAMLError):
    def __init__(self, problem: str, mark: Any):
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses aliases and a key given twice in one mapping."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        """Compose as the safe loader does, refusing an alias (``*name``)."""
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _Refused(f"an alias (*{event.anchor}) is not allowed", event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        """Construct as the safe loader does, refusing a key that occurs twice."""
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool) and key is not None:
                raise _Refused("a key must be a word or a number", key_node.start_mark)
            if key in seen:
                raise _Refused(f"the key {show(key)} is given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def read_yaml(path: Path, error: type[Exception]) -> Any:
    """The content of a YAML file, read strictly.

    Parameters
    ----------
    path : Path
    error : exception class
        What to raise, with one line naming the file, the line and the problem.

    Raises
    ------
    error
        If the file is missing or unreadable, not UTF-8, not valid YAML, has an alias, a
        repeated key or a key that is not a scalar, or a value PyYAML cannot build.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: not found; run from the repository root, where it lives") from None
    except UnicodeDecodeError as exc:
        raise error(f"{path}: byte {exc.start} is not UTF-8 text; save the file as UTF-8") from None
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror})") from None
    try:
        return yaml.load(text, Loader=StrictLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = f": {exc.problem}" if isinstance(exc, _Refused) else ""
        raise error(f"{path}: not valid YAML{where}{problem}; fix it") from None
    except ValueError as exc:  # a scalar PyYAML cannot build: a 5,000-digit int, 2020-13-45
        raise error(f"{path}: a value YAML cannot read ({cut(str(exc), 60)}); fix it") from None
