"""Loading and validating YAML models: every problem reported, each with its line."""

from __future__ import annotations

from pathlib import Path
import textwrap

import pytest

from plugboard_beam.spec import ModelError, load_model

PARTS = '''
import typing as _t
from plugboard_beam.component import Component, IOController as IO
from plugboard_beam.schemas import ComponentArgsDict

class Emit(Component):
    io = IO(outputs=["x"])
    def __init__(self, iters: int = 3, **kwargs: _t.Unpack[ComponentArgsDict]) -> None:
        super().__init__(**kwargs)
        self._left = iters
    async def step(self) -> None:
        if self._left == 0:
            await self.io.close(); return
        self._left -= 1
        self.x = self._left

class Needs(Component):
    io = IO(inputs=["x"], outputs=["y"])
    def __init__(self, path: str, **kwargs: _t.Unpack[ComponentArgsDict]) -> None:
        super().__init__(**kwargs)
    async def step(self) -> None:
        self.y = self.x

class Relay(Component):
    io = IO(inputs=["x"], outputs=["y"])
    async def step(self) -> None:
        self.y = self.x
'''


def write(tmp_path: Path, body: str, parts: str = PARTS) -> Path:
    (tmp_path / "specparts.py").write_text(parts)
    path = tmp_path / "model.yaml"
    path.write_text(textwrap.dedent(body).lstrip())
    return path


def problems(path: Path) -> list[tuple[int | None, str]]:
    with pytest.raises(ModelError) as info:
        load_model(path)
    return [(p.line, p.format()) for p in info.value.problems]


def test_valid_model_builds_graph(tmp_path: Path) -> None:
    path = write(tmp_path, """
        plugboard:
          process:
            args:
              components:
              - type: specparts.Emit
                args: {name: e, iters: 2}
              - {type: specparts.Relay, args: {name: r}}
              connectors:
              - source: {entity: e, descriptor: x}
                target: r.x
    """)
    model = load_model(path)
    assert [n.name for n in model.graph.nodes] == ["e", "r"]
    assert model.graph.edges[0].label == "e.x -> r.x"
    assert model.graph.edges[0].line == 9


def test_all_problems_at_once_with_lines(tmp_path: Path) -> None:
    path = write(tmp_path, """
        plugboard:
          process:
            args:
              components:
              - {type: specparts.Emit, args: {name: e, iterz: 2}}
              - {type: specparts.Needs, args: {name: n}}
              - {type: specparts.Nope, args: {name: q}}
              - {type: specparts.Relay, args: {name: r, initial_values: {z: [1]}}}
              - {type: specparts.Relay, args: {name: lonely}}
              connectors:
              - {source: e.x, target: n.x}
              - {source: n.y, target: r.x}
              - {source: e.y, target: r.x}
              - {source: ghost.y, target: r.x}
    """)
    found = problems(path)
    text = "\n".join(m for _, m in found)
    lines = {line for line, _ in found}
    assert "unknown argument 'iterz'" in text and "did you mean 'iters'" in text
    assert "missing required argument 'path'" in text
    assert "specparts.Nope" in text
    assert "initial_values for r.z" in text
    assert "has no output field 'y'" in text  # e.y
    assert "unknown component 'ghost'" in text
    assert "lonely.x is not connected" in text
    assert {5, 6, 7, 8, 13, 14} <= lines


def test_unseeded_cycle_names_cycle_and_seeded_cycle_is_fine(tmp_path: Path) -> None:
    body = """
        plugboard:
          process:
            args:
              components:
              - {type: specparts.Relay, args: {name: ping%s}}
              - {type: specparts.Relay, args: {name: pong}}
              connectors:
              - {source: ping.y, target: pong.x}
              - {source: pong.y, target: ping.x}
    """
    found = problems(write(tmp_path, body % ""))
    assert len(found) == 1
    assert "ping -> pong -> ping" in found[0][1] and "initial_values" in found[0][1]
    assert found[0][0] == 8
    model = load_model(write(tmp_path, body % ", initial_values: {x: [0]}"))
    assert len(model.graph.strongly_connected()[0]) == 2


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    path = write(tmp_path, """
        plugboard:
          process:
            args:
              components:
              - {type: specparts.Emit, args: {name: e}
              connectors: []
    """)
    [(line, msg)] = problems(path)
    assert line == 6 and "YAML syntax error" in msg


def test_unknown_field_suggests(tmp_path: Path) -> None:
    path = write(tmp_path, """
        plugboard:
          process:
            args:
              components:
              - {type: specparts.Emit, args: {name: e}}
              conectors: []
    """)
    [(line, msg)] = problems(path)
    assert line == 6 and "unknown field 'conectors'" in msg and "connectors" in msg


def test_missing_file() -> None:
    with pytest.raises(ModelError, match="does not exist"):
        load_model("/nonexistent/model.yaml")


def test_overrides_replace_args_and_seeds(tmp_path: Path) -> None:
    path = write(tmp_path, """
        plugboard:
          process:
            args:
              components:
              - {type: specparts.Emit, args: {name: e, iters: 2}}
              - {type: specparts.Relay, args: {name: r}}
              connectors:
              - {source: e.x, target: r.x}
    """)
    model = load_model(path, {"e.iters": 9, "component.r.initial_value.x": [5]})
    comps = model.build_components()
    assert comps["e"]._left == 9  # type: ignore[attr-defined]
    assert comps["r"].io.initial_values == {"x": [5]}
    with pytest.raises(ModelError, match="unknown component 'w'"):
        load_model(path, {"w.iters": 1})


def test_modules_with_same_name_in_two_model_folders(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    body = """
        plugboard:
          process:
            args:
              components:
              - {type: specparts.Emit, args: {name: e}}
    """
    load_model(write(a, body))
    with pytest.raises(ModelError, match="no component 'Emit'"):
        load_model(write(b, body, parts="X = 1\n"))
