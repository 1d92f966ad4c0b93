"""What the per-key path works out once (per class, per model, per pipeline) instead of per key
(issue 19): each cache gives every key, instance and class what working it out anew would."""

from __future__ import annotations

from pathlib import Path
import pickle
import textwrap
import typing as _t

from pydantic import Field

from plugboard_beam.component import Component
from plugboard_beam.component import IOController as IO
from plugboard_beam.events import Event
from plugboard_beam.lowering.beam import STAGE_INPUT, StartElements
from plugboard_beam.runtime.engine import Engine
from plugboard_beam.schemas import Resource
from plugboard_beam.spec import load_model


class _PkAlarm(Event):
    type: _t.ClassVar[str] = "pk-alarm"


class _PkReset(Event):
    type: _t.ClassVar[str] = "pk-reset"


class _PkBase(Component):
    io = IO(inputs=["a", "b"], input_events=[_PkAlarm])

    @_PkAlarm.handler(populates_fields=["a"])
    def on_alarm(self, event: _PkAlarm) -> None:
        self.a = 1


class _PkDerived(_PkBase):
    io = IO(input_events=[_PkReset])

    @_PkReset.handler(populates_fields=["b"])
    def on_reset(self, event: _PkReset) -> None:
        self.b = 0


class _PkPlain(Component):
    io = IO(inputs=["x"])


class _PkDeclared(Component):
    io = IO(inputs=["x"])
    resources = Resource(cpu=2, resources={"disk": 5})


def test_each_class_gets_its_own_event_coverage_worked_out_once() -> None:
    # a subclass defined after its base has the base's coverage and its own; a class defined
    # later still has none (each class's is worked out when it is defined)
    assert _PkBase._coverage == {"pk_alarm": ["a"]}
    assert _PkDerived._coverage == {"pk_alarm": ["a"], "pk_reset": ["b"]}
    assert _PkPlain._coverage == {}
    for cls in (_PkBase, _PkDerived, _PkPlain, Component):
        assert cls._coverage == cls.event_field_coverage()

    one, two = _PkDerived(name="one"), _PkDerived(name="two")
    assert one.io.event_field_coverage == _PkDerived.event_field_coverage()
    one.io.event_field_coverage["pk_alarm"].append("b")  # an instance's is its own
    one.io.event_field_coverage["other"] = ["x"]
    assert two.io.event_field_coverage == {"pk_alarm": ["a"], "pk_reset": ["b"]}
    assert _PkDerived._coverage == {"pk_alarm": ["a"], "pk_reset": ["b"]}


def test_an_instances_resources_are_its_own() -> None:
    one, two = _PkDeclared(name="one"), _PkDeclared(name="two")
    declared = _PkDeclared.resources
    assert one.resources == declared and one.resources is not declared
    assert one.resources.resources is not declared.resources
    assert one.resources.model_fields_set == declared.model_fields_set
    one.resources.cpu = 4
    one.resources.resources["disk"] = 9
    one.resources.resources["gpu-ram"] = 1
    assert (two.resources.cpu, two.resources.resources) == (2, {"disk": 5})
    assert (declared.cpu, declared.resources) == (2, {"disk": 5})
    one.resources.memory = "1Ki"  # still validated on assignment, as the class's is
    assert one.resources.memory == 1024
    assert _PkPlain(name="p").resources == Resource() and Component.resources == Resource()
    again = pickle.loads(pickle.dumps(one.resources))
    assert again == one.resources and again.model_fields_set == one.resources.model_fields_set


def test_a_resource_subclass_is_copied_whole() -> None:
    class Tagged(Resource):
        tags: list[str] = Field(default_factory=list)

    class WithTags(Component):
        io = IO(inputs=["x"])
        resources = Tagged(tags=["a"])

    one, two = WithTags(name="one"), WithTags(name="two")
    assert type(one.resources) is Tagged
    _t.cast(Tagged, one.resources).tags.append("b")
    assert _t.cast(Tagged, two.resources).tags == ["a"]


def test_an_instances_resources_are_made_when_first_read() -> None:
    comp = _PkDeclared(name="c")
    assert comp._own_resources is None  # not made by the constructor (a quarter of its cost)
    first = comp.resources
    assert comp.resources is first and comp._own_resources is first  # made once
    assert first == _PkDeclared.resources and first is not _PkDeclared.resources

    class Inherits(_PkDeclared):
        pass

    class Overrides(_PkDeclared):
        resources = Resource(cpu=3)

    assert Inherits.resources is _PkDeclared.resources and Inherits(name="i").resources.cpu == 2
    assert Overrides.resources.cpu == 3 and Overrides(name="o").resources.cpu == 3
    assert _PkDeclared.resources.cpu == 2 and "resources" not in Overrides.__dict__
    given = _PkDeclared(name="g", resources={"cpu": 7})  # the constructor's replaces it
    assert given.resources.cpu == 7 and given.resources.resources == {}
    given.resources = Resource(memory="1Ki")  # and so does setting it
    assert given.resources.memory == 1024 and _PkDeclared.resources.memory == 0


def _model(tmp_path: Path, module: str) -> Path:
    (tmp_path / f"{module}.py").write_text(textwrap.dedent('''
        from plugboard_beam.component import Component
        from plugboard_beam.component import IOController as IO


        class Src(Component):
            io = IO(outputs=["x"])

            def __init__(self, n: int = 2, path: str = "", **kwargs) -> None:
                super().__init__(**kwargs)
                self.n, self.path = n, path

            async def step(self) -> None:
                self.x = self.n


        class Looping(Component):
            io = IO(inputs=["x"])

            async def run(self) -> None:
                await super().run()
        '''))
    model = tmp_path / "m.yaml"
    model.write_text(textwrap.dedent(f'''
        plugboard:
          process:
            args:
              components:
              - {{type: {module}.Src, args: {{name: src, path: "out/{{key}}.csv"}}}}
              - {{type: {module}.Looping, args: {{name: sink}}}}
              connectors:
              - {{source: src.x, target: sink.x}}
        '''))
    return model


def test_key_substitution_follows_the_keys_own_arguments(tmp_path: Path) -> None:
    model = load_model(_model(tmp_path, "perkey_parts_subst"))
    assert model.build_components("k1")["src"].path == "out/k1.csv"
    # an override replacing the {key} argument is taken as given; one bringing {key} gets the key
    plain = model.resolve({"src.path": "fixed.csv"})
    assert plain.build_components("k2")["src"].path == "fixed.csv"
    keyed = model.resolve({"src.path": "{key}/x.csv", "src.n": 5})
    src = keyed.build_components("a/b")["src"]
    assert (src.path, src.n) == ("a%2Fb/x.csv", 5)
    assert src.export()["args"] == {"n": 5, "path": "a%2Fb/x.csv", "name": "src"}
    assert model.build_components("k3")["src"].path == "out/k3.csv"  # the recipe is unchanged


def test_override_type_checks_are_remembered_per_value_and_type(tmp_path: Path) -> None:
    model = load_model(_model(tmp_path, "perkey_parts_fits"))
    assert model.arg_changes({"src.n": 3}) == {"src": {"n": 3}}
    assert model.arg_changes({"src.n": True}) is None  # not an int as JSON data, whatever 1 gave
    assert model.arg_changes({"src.n": 3.5}) is None
    assert model.arg_changes({"src.n": "3"}) is None
    assert model.arg_changes({"src.n": 1}) == {"src": {"n": 1}}
    assert model.arg_changes({"src.n": 3}) == {"src": {"n": 3}}  # remembered: the same answer
    fits = model.memo["fits"]
    assert len(fits) == 5
    for i in range(5000):  # bounded: ever new values do not grow it without end
        model.arg_changes({"src.n": 100 + i})
    assert len(fits) == 4096


def test_a_class_that_overrides_run_is_known_per_class_and_node(tmp_path: Path) -> None:
    model = load_model(_model(tmp_path, "perkey_parts_run"))
    for key in ("a", "b"):
        engine = Engine(model.graph, model.build_components(key), key=key)
        assert engine.runners["sink"].user_run is not None  # its own run()
        assert engine.runners["src"].user_run is None  # Component.run: the engine's own loop


def test_start_elements_are_typed_without_looking_at_each() -> None:
    elements = [(f"k{i}", {"src.n": i}) for i in range(3)] + [("k3", {})]
    create = StartElements(elements)
    assert create.get_output_type() == STAGE_INPUT
    again = pickle.loads(pickle.dumps(create))  # (as a pipeline ships it: its values encoded)
    assert list(again.values) == elements
