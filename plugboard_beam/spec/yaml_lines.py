"""YAML loading that remembers the line of every mapping key and list item."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class Limits:
    """Bounds on a YAML document, so that a small file cannot take minutes or gigabytes.

    Aliases (``*name``) share one node, so a ~500-byte "billion laughs" file describes 10**9
    elements; ``alias_elements`` bounds the elements reached again through aliases.
    """

    max_bytes: int = 4 * 1024 * 1024
    max_elements: int = 200_000
    alias_elements: int = 10_000
    max_depth: int = 64


#: Model files.
MODEL_LIMITS = Limits()
#: YAML scenarios files (one row per key: larger, flat; ~7 s per MB to parse, so bounded too:
#: larger scenario sets go in CSV, JSON or Parquet files).
SCENARIOS_LIMITS = Limits(max_bytes=4 * 1024 * 1024, max_elements=1_000_000)
#: One value (a ``-p`` parameter, a CSV cell).
VALUE_LIMITS = Limits(max_bytes=64 * 1024, max_elements=10_000, alias_elements=1_000)


class _Walk:
    """Records lines while counting elements (aliases expanded) against ``Limits``."""

    def __init__(self, lines: Lines, limits: Limits) -> None:
        self.lines, self.limits = lines, limits
        self.elements = 0
        self.repeated = 0
        self.seen: set[int] = set()

    def _count(self, node: yaml.Node, depth: int) -> None:
        lim = self.limits
        self.elements += 1
        if id(node) in self.seen:
            self.repeated += 1
            if self.repeated > lim.alias_elements:
                self._fail(node, f"aliases expand to more than {lim.alias_elements} elements "
                                 "(an alias bomb?); write the values out instead of using aliases")
        elif isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            self.seen.add(id(node))
        if self.elements > lim.max_elements:
            self._fail(node, f"more than {lim.max_elements} elements")
        if depth > lim.max_depth:
            self._fail(node, f"nested more than {lim.max_depth} levels deep")

    @staticmethod
    def _fail(node: yaml.Node, why: str) -> _t.NoReturn:
        line = node.start_mark.line + 1
        raise YamlLimitError(Problem(f"YAML document too large at line {line}: {why}", line))

    def walk(self, node: yaml.Node, path: Path_, depth: int = 0) -> None:
        self._count(node, depth)
        self.lines.add(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
                self.lines.add((*path, key), key_node.start_mark.line + 1)
                self.walk(value_node, (*path, key), depth + 1)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self.walk(item, (*path, i), depth + 1)


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing to nest deeper than ``max_depth`` while composing (its
    scanner slows down quadratically with nesting, so stop early)."""

    def __init__(self, text: str, max_depth: int) -> None:
        super().__init__(text)
        self._depth, self._max_depth = 0, max_depth

    def compose_node(self, parent: _t.Optional[yaml.Node], index: _t.Any) -> _t.Optional[yaml.Node]:
        self._depth += 1
        try:
            if self._depth > self._max_depth:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise YamlLimitError(Problem(
                    f"YAML document nested more than {self._max_depth} levels deep at line {mark.line + 1}",
                    mark.line + 1))
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def load_yaml(text: str, limits: Limits = MODEL_LIMITS) -> tuple[_t.Any, Lines]:
    """Parse YAML text into Python data plus the line of every element.

    Raises ``YamlSyntaxError`` (carrying a ``Problem`` with the line) on bad syntax, and its
    subclass ``YamlLimitError`` when the text exceeds ``limits`` (size, elements with aliases
    expanded, nesting), before building anything large.
    """
    lines = Lines()
    size = len(text.encode("utf-8", "surrogateescape"))
    if size > limits.max_bytes:
        raise YamlLimitError(Problem(f"YAML document too large: {size} bytes (at most {limits.max_bytes})"))
    loader = _BoundedLoader(text, limits.max_depth)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, lines
        _Walk(lines, limits).walk(node, ())
        data = loader.construct_document(node)
    except RecursionError:
        raise YamlLimitError(Problem(f"YAML document nested too deeply (at most {limits.max_depth} levels)")) from None
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


class YamlLimitError(YamlSyntaxError):
    """The text is YAML, but too large (bytes, elements with aliases expanded, or nesting)."""


def load_value(text: str, limits: Limits = VALUE_LIMITS) -> _t.Any:
    """One YAML value (a ``-p`` parameter, a CSV cell), bounded like a document; raises
    ``YamlSyntaxError`` / ``YamlLimitError``."""
    return load_yaml(text, limits)[0]
