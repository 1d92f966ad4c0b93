"""YAML loading that remembers the line of every mapping key and list item."""

from __future__ import annotations

import typing as _t

import yaml

from plugboard_beam.spec.errors import Problem

Path_ = tuple[_t.Union[str, int], ...]


class Lines:
    """Line numbers (1-based) of the elements of a YAML document, by path."""

    def __init__(self) -> None:
        self._lines: dict[Path_, int] = {}

    def add(self, path: Path_, line: int) -> None:
        """Remember ``path``'s line."""
        self._lines.setdefault(path, line)

    def of(self, path: _t.Sequence[_t.Union[str, int]]) -> _t.Optional[int]:
        """The line of ``path``, or of its nearest ancestor that has one."""
        p = tuple(path)
        while p:
            if p in self._lines:
                return self._lines[p]
            p = p[:-1]
        return self._lines.get((), None)


def _walk(node: yaml.Node, path: Path_, lines: Lines) -> None:
    lines.add(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            lines.add((*path, key), key_node.start_mark.line + 1)
            _walk(value_node, (*path, key), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), lines)


def load_yaml(text: str) -> tuple[_t.Any, Lines]:
    """Parse YAML text into Python data plus the line of every element.

    Raises ``YamlSyntaxError`` (carrying a ``Problem`` with the line) on bad syntax.
    """
    lines = Lines()
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, lines
        _walk(node, (), lines)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        col = f", column {mark.column + 1}" if mark else ""
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise YamlSyntaxError(Problem(f"YAML syntax error at line {line}{col}: {what}", line)) from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(Problem(f"YAML error: {exc}")) from None
    finally:
        loader.dispose()
    return data, lines


class YamlSyntaxError(Exception):
    """The text is not valid YAML."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        super().__init__(problem.message)
