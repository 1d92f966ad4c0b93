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


ONE_EMIT = """
    plugboard:
      process:
        args:
          components:
          - {type: specparts.Emit, args: {name: e}}
"""


def two_model_folders(tmp_path: Path) -> tuple[Path, Path]:
    """Model folders a (specparts has Emit) and b (a specparts without it); their model files."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    return write(a, ONE_EMIT), write(b, ONE_EMIT, parts="X = 1\n")


def test_modules_with_same_name_in_two_model_folders(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    model_a, model_b = two_model_folders(tmp_path)
    monkeypatch.delitem(sys.modules, "specparts", raising=False)
    load_model(model_a)
    with pytest.raises(ModelError, match="no component 'Emit'"):
        load_model(model_b)


def test_the_model_folder_comes_first_even_when_already_on_the_path(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A model's folder already on sys.path behind another folder with a module of the same name
    (a second model loaded earlier in the process): this model's module is the one imported."""
    import sys

    model_a, model_b = two_model_folders(tmp_path)
    a, b = model_a.parent, model_b.parent
    monkeypatch.setattr(sys, "path", [str(b), str(a), *sys.path])
    monkeypatch.delitem(sys.modules, "specparts", raising=False)
    assert load_model(model_a).classes["e"].__module__ == "specparts"
    assert sys.path[0] == str(a) and sys.path.count(str(a)) == 1


# ------------------------------------------------------------------ argument types
TYPED = '''
import typing as _t
from plugboard_beam.component import Component, IOController as IO
from plugboard_beam.schemas import ComponentArgsDict

class Emit(Component):
    io = IO(outputs=["x"])
    def __init__(self, iters: int, scale: float = 1.0, path: str = "out.txt",
                 tags: _t.Optional[list[str]] = None, **kwargs: _t.Unpack[ComponentArgsDict]) -> None:
        super().__init__(**kwargs)
        if iters < 0:
            raise ValueError(f"iters must be >= 0, got {iters}")
        self._left = iters
    async def step(self) -> None:
        await self.io.close()

class Relay(Component):
    io = IO(inputs=["x"], outputs=["y"])
    async def step(self) -> None:
        self.y = self.x
'''

TYPED_MODEL = """
    plugboard:
      process:
        args:
          components:
          - type: specparts.Emit
            args:
              name: e
              iters: %s
              scale: 2
          - {type: specparts.Relay, args: {name: r}}
          connectors:
          - {source: e.x, target: r.x}
"""


def test_argument_types_are_checked_against_the_constructor(tmp_path: Path) -> None:
    path = write(tmp_path, TYPED_MODEL % '"ten"', TYPED)
    [(line, msg)] = problems(path)
    assert line == 8
    assert "component 'e' (specparts.Emit)" in msg and "argument 'iters'" in msg
    assert "'ten'" in msg and "iters: int" in msg and "valid integer" in msg
    # A number written as text is not a number either (the constructor would get a str).
    [(_, msg)] = problems(write(tmp_path, TYPED_MODEL % '"10"', TYPED))
    assert "argument 'iters'" in msg and "YAML read '10' as text: write it unquoted, as 10" in msg
    [(_, msg)] = problems(write(tmp_path, (TYPED_MODEL % "3").replace("scale: 2", "scale: 1e3"), TYPED))
    assert "argument 'scale' = '1e3' is not a valid float" in msg and "as 1000.0" in msg
    # An int is a float; null is fine where the default is None; a list fits list[str].
    model = load_model(write(tmp_path, TYPED_MODEL % "3", TYPED), {"e.tags": ["a"], "e.path": "o-{key}.txt"})
    assert model.build_components("k")["e"]._left == 3  # type: ignore[attr-defined]
    assert load_model(path, {"e.iters": 4, "e.tags": None}).graph.nodes


def test_override_types_and_misspellings_are_checked(tmp_path: Path) -> None:
    path = write(tmp_path, TYPED_MODEL % "3", TYPED)
    with pytest.raises(ModelError) as info:
        load_model(path, {"e.iters": "ten", "e.tags": [1, 2]})
    text = str(info.value)
    assert "argument 'iters' (set by override 'e.iters') = 'ten' is not a valid int" in text
    assert "argument 'tags' (set by override 'e.tags')" in text and "[0]" in text
    assert "model.yaml:8:" in text  # the YAML line of the argument it replaces
    with pytest.raises(ModelError) as info:
        load_model(path, {"e.itres": 4})
    assert "unknown argument 'itres' (set by override 'e.itres') (did you mean 'iters'?)" in str(info.value)
    with pytest.raises(ModelError, match="did you mean 'e'"):
        load_model(path, {"ee.iters": 4})


def test_scenario_override_types_name_the_row(tmp_path: Path) -> None:
    from plugboard_beam.spec.scenarios import instances, load_scenarios

    model = load_model(write(tmp_path, TYPED_MODEL % "3", TYPED))
    sc = tmp_path / "sc.csv"
    sc.write_text("key,e.iters\nok,4\nbad,ten\n")
    with pytest.raises(ModelError) as info:
        instances(model, load_scenarios(sc))
    [problem] = info.value.problems
    assert "scenario 'bad' (sc.csv line 3)" in problem.message
    assert "argument 'iters'" in problem.message and "not a valid int" in problem.message
    assert problem.line == 8


# ------------------------------------------------------------------ constructors that raise
def test_a_constructor_that_raises_is_a_step_error_with_its_line(tmp_path: Path) -> None:
    from plugboard_beam.exceptions import StepError

    model = load_model(write(tmp_path, TYPED_MODEL % "-1", TYPED))
    with pytest.raises(StepError) as info:
        model.build_components("k1")
    err = info.value
    assert (err.component, err.key, err.step, err.phase) == ("e", "k1", 0, "construct")
    assert err.error_type == "ValueError"
    assert "iters must be >= 0" in str(err) and "model.yaml line 5" in str(err)
    with pytest.raises(ModelError) as minfo:
        model.check_construct()
    [problem] = minfo.value.problems
    assert problem.line == 5 and "component 'e'" in problem.format() and "iters must be >= 0" in problem.message


# ------------------------------------------------------------------ YAML bounds
BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
plugboard: {process: {args: {components: [{type: specparts.Emit, args: {name: e, iters: *i}}]}}}
"""


def test_alias_bomb_model_is_refused_fast(tmp_path: Path) -> None:
    import resource
    import time

    assert len(BOMB) < 600
    path = write(tmp_path, BOMB)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    [(line, msg)] = problems(path)
    # (0.3 s here; expanded, the 9**9 aliases would take minutes and gigabytes; a loaded CI
    # machine took 1.02 s)
    assert time.monotonic() - start < 5.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KiB
    assert "too large" in msg and "alias" in msg and line is not None


def test_alias_bomb_scenarios_and_params_are_refused_fast(tmp_path: Path) -> None:
    import time

    from plugboard_beam.spec.scenarios import load_scenarios

    aliases = BOMB.splitlines()[:-1]  # a: ... i: (the anchors)
    bomb = tmp_path / "sc.yaml"
    bomb.write_text("- key: k\n" + "".join(f"  {line}\n" for line in aliases) + "  e.iters: *i\n")
    start = time.monotonic()
    with pytest.raises(ModelError, match="alias"):
        load_scenarios(bomb)
    csv = tmp_path / "sc.csv"
    cell = "\n".join(aliases).replace('"', "") + "\nj: *i"
    csv.write_text(f'key,e.iters\nk,"{cell}"\n')
    with pytest.raises(ModelError, match="alias") as info:
        load_scenarios(csv)
    assert "column 'e.iters'" in str(info.value)
    from plugboard_beam.cli.main import parse_params
    from plugboard_beam.exceptions import UserError

    with pytest.raises(UserError, match="alias"):
        parse_params([f"e.iters={cell}"])
    assert time.monotonic() - start < 2.0


def test_deep_nesting_and_huge_files_are_refused(tmp_path: Path) -> None:
    deep = write(tmp_path, "x: " + "[" * 5000 + "]" * 5000 + "\nplugboard: {}\n")
    [(_, msg)] = problems(deep)
    assert "nested" in msg
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * (5 * 1024 * 1024) + "\n")
    with pytest.raises(ModelError, match="too large"):
        load_model(big)


def test_did_you_mean_for_modules_and_scenario_key_columns(tmp_path: Path) -> None:
    from plugboard_beam.spec.scenarios import load_scenarios

    path = write(tmp_path, """
        plugboard:
          process:
            args:
              components:
              - {type: specprts.Emit, args: {name: e}}
    """)
    [(line, msg)] = problems(path)
    assert line == 5 and "no module named 'specprts' (did you mean 'specparts'?)" in msg
    sc = tmp_path / "sc.csv"
    sc.write_text("kye,e.iters\na,1\n")
    with pytest.raises(ModelError) as info:
        load_scenarios(sc)
    text = str(info.value)
    assert text.startswith(f"{sc} is not a valid scenarios file (1 problem)")
    assert "sc.csv line 2: no 'key' (is 'kye' meant to be 'key'?)" in text
