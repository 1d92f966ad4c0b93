"""Model loading as an ordered list of small phases over one context.

read -> parse YAML -> apply overrides -> schema -> names -> types -> arguments -> argument
types -> initial values -> connectors -> unconnected inputs -> cycles -> graph.

Each phase adds ``Problem`` s (with the YAML line) and returns; later phases only run when the
ones they depend on found nothing, so one call reports every independent problem at once.
Nothing runs beyond importing the component modules: no component is constructed
(``check_construct`` does that once, for ``process validate``).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from dataclasses import dataclass, field
import difflib
import importlib
import inspect
import json
import logging
from pathlib import Path
import sys
import typing as _t
import weakref

from pydantic import TypeAdapter, ValidationError

from plugboard_beam.component.component import BASE_ARGS, Component
from plugboard_beam.component.decorator import ComponentDecoratorHelper
from plugboard_beam.component.io_controller import IOController
from plugboard_beam.exceptions import IOSetupError, StepError
from plugboard_beam.graph.model import Edge, ModelGraph, Node
from plugboard_beam.schemas import ConfigSpec, ConnectorSpec, TuneSpec
from plugboard_beam.schemas.migration import ours, replaced_message, replaced_transport
from plugboard_beam.spec.errors import ModelError, Problem
from plugboard_beam.spec.events import check_events
from plugboard_beam.spec.keys import DEFAULT_KEY, InvalidKey, substitute_key
from plugboard_beam.spec.yaml_lines import MODEL_LIMITS, Lines, YamlSyntaxError, load_yaml

_LOG = logging.getLogger("plugboard_beam.spec")
_COMPONENTS = ("plugboard", "process", "args", "components")
_CONNECTORS = ("plugboard", "process", "args", "connectors")


@dataclass
class Context:
    """What the phases share: inputs, results so far, and the problems found."""

    path: Path
    overrides: _t.Mapping[str, _t.Any] = field(default_factory=dict)
    text: str = ""
    raw: _t.Any = None
    lines: Lines = field(default_factory=Lines)
    config: _t.Optional[ConfigSpec] = None
    classes: dict[str, type[Component]] = field(default_factory=dict)
    ios: dict[str, IOController] = field(default_factory=dict)
    graph: _t.Optional[ModelGraph] = None
    problems: list[Problem] = field(default_factory=list)
    #: (component, argument) -> the override that set it, for messages
    overridden: dict[tuple[str, str], str] = field(default_factory=dict)
    #: things the user should know that are not problems (plugboard paths rewritten, ...)
    notices: list[str] = field(default_factory=list)

    @property
    def base_dir(self) -> Path:
        """The model's folder: ``type`` import paths are resolved from here."""
        return self.path.resolve().parent

    def problem(self, message: str, path: _t.Sequence[_t.Union[str, int]] = (), element: str = "") -> None:
        """Record a problem at the YAML element ``path``."""
        self.problems.append(Problem(message, self.lines.of(path), element))


@dataclass(frozen=True)
class LoadedModel:
    """A validated model: the spec, its component classes and its graph."""

    path: Path
    config: ConfigSpec
    classes: dict[str, type[Component]]
    graph: ModelGraph
    raw: _t.Any
    text: str = ""
    lines: Lines = field(default_factory=Lines)
    #: the overrides applied to ``text`` to give this model (``-p`` parameters)
    overrides: _t.Mapping[str, _t.Any] = field(default_factory=dict)
    #: what ``with_overrides`` learns about a class once for every key (shared by the models it gives)
    memo: dict[_t.Any, _t.Any] = field(default_factory=dict, compare=False, repr=False)
    #: what loading noticed (each said once, as a warning, when the file was loaded)
    notices: tuple[str, ...] = ()

    def with_overrides(self, overrides: _t.Mapping[str, _t.Any]) -> LoadedModel:
        """This model with component arguments / seeds / parameters replaced (validated again,
        without re-reading or re-importing anything); raises ModelError."""
        if not overrides:
            return self
        fast = self._with_arg_values(overrides)
        if fast is not None:
            return fast
        ctx = Context(path=self.path, overrides=dict(overrides), text=self.text,
                      raw=copy.deepcopy(self.raw), lines=self.lines, classes=dict(self.classes))
        loaded = _run_phases(ctx, skip=("read_file", "parse_yaml", "resolve_types"))
        return dataclasses.replace(loaded, overrides={**self.overrides, **overrides})

    def resolve(self, overrides: _t.Mapping[str, _t.Any]) -> KeyModel:
        """What one key runs: this model and the argument values ``overrides`` set (checked, not
        copied into a model of their own), or, for overrides the quick check cannot take, the
        model validated again with them (``with_overrides``); raises ModelError."""
        if not overrides:
            return KeyModel(self)
        changes = self.arg_changes(overrides)
        if changes is not None:
            return KeyModel(self, changes)
        return KeyModel(self.with_overrides(overrides))

    def arg_changes(self, overrides: _t.Mapping[str, _t.Any]) -> _t.Optional[dict[str, dict[str, _t.Any]]]:
        """The common case of scenarios, checked per key without validating the whole model
        again: every override sets a constructor argument (``component.arg``) that the class
        accepts, of a component whose fields do not depend on its arguments, to a value its
        annotation accepts. Gives the arguments to change, by component (classes, fields,
        connectors and graph stay this model's own, and the schema lets any argument value
        through). Anything else, or a value that does not fit, gives None: the full validation
        then runs (and words the problem)."""
        components = self.config.plugboard.process.args.components
        index = self.memo.get("index")
        if index is None:
            index = self.memo["index"] = {c.args.name: i for i, c in enumerate(components)}
        changes: dict[str, dict[str, _t.Any]] = {}
        for name, value in overrides.items():
            comp, _, arg = name.partition(".")
            cls = self.classes.get(comp)
            if (cls is None or not arg or "." in arg or arg in BASE_ARGS or comp not in index
                    or arg in type(components[index[comp]].args).model_fields):  # a field the schema checks
                return None
            known = self.memo.get(cls)
            if known is None:
                fixed_io = getattr(cls.io_for, "__func__", None) is getattr(Component.io_for, "__func__", None)
                known = self.memo[cls] = (fixed_io, accepted_args(cls), arg_types(cls))
            fixed_io, (names, _, anything), kinds = known
            if not fixed_io or not (anything or arg in names):
                return None
            kind = kinds.get(arg)
            if kind is not None and not self._fits(cls, arg, kind, value):
                return None
            changes.setdefault(comp, {})[arg] = value
        return changes

    def _fits(self, cls: type[Component], arg: str, kind: _ArgType, value: _t.Any) -> bool:
        """``_type_problem(kind, value) is None``, remembered for plain values (scenarios of a
        sweep repeat them, and every Beam stage checks its keys' overrides again): a bounded
        memo, so a stream of ever new values does not grow it."""
        if not (value is None or type(value) in (str, int, float, bool)):
            return _type_problem(kind, value) is None
        fits: dict[tuple[_t.Any, ...], bool] = self.memo.setdefault("fits", {})
        memo_key = (cls, arg, type(value), value)
        ok = fits.get(memo_key)
        if ok is None:
            ok = _type_problem(kind, value) is None
            if len(fits) < 4096:
                fits[memo_key] = ok
        return ok

    def _with_arg_values(self, overrides: _t.Mapping[str, _t.Any]) -> _t.Optional[LoadedModel]:
        """A model of its own for overrides ``arg_changes`` takes (None for the others): what
        callers that keep a model per key use (keys being run use ``resolve``, which copies
        nothing)."""
        changes = self.arg_changes(overrides)
        if changes is None:
            return None
        components = self.config.plugboard.process.args.components
        index = self.memo["index"]
        comps = list(components)
        try:
            raw = _raw_path_copy(self.raw)
            raw_comps = raw["plugboard"]["process"]["args"]["components"]
        except (KeyError, TypeError):  # a layout this copy does not know: the full validation
            return None
        if len(raw_comps) != len(comps):
            return None
        for comp, update in changes.items():
            i = index[comp]
            spec = comps[i]
            comps[i] = spec.model_copy(update={"args": spec.args.model_copy(update=update)})
            raw_comps[i] = {**raw_comps[i], "args": {**raw_comps[i]["args"], **update}}
        pb = self.config.plugboard
        args = pb.process.args.model_copy(update={"components": comps})
        config = self.config.model_copy(update={"plugboard": pb.model_copy(update={
            "process": pb.process.model_copy(update={"args": args})})})
        return dataclasses.replace(self, config=config, raw=raw, overrides={**self.overrides, **overrides})

    @property
    def base_dir(self) -> Path:
        """The model's folder."""
        return self.path.resolve().parent

    def component_specs(self) -> dict[str, _t.Any]:
        """``ComponentSpec`` by component name."""
        return {c.args.name: c for c in self.config.plugboard.process.args.components}

    def build_components(self, key: str = "",
                         changes: _t.Optional[_t.Mapping[str, _t.Mapping[str, _t.Any]]] = None) -> dict[str, Component]:
        """Fresh component instances for one key, with the process's ``parameters`` merged
        under each component's own (as plugboard does); ``changes`` (component -> argument ->
        value, from ``arg_changes``) replace arguments of this key's components.

        ``{key}`` in string arguments is replaced by ``key_for_path(key)`` (one safe path
        segment). A constructor that raises, or a key that cannot be substituted, raises
        ``StepError(component, key, 0, "construct", exc)`` whose message gives the component's
        YAML line."""
        out: dict[str, Component] = {}
        parameters = self.config.plugboard.process.args.parameters
        for part in self._recipe():
            try:
                comp = self._construct(part, key, changes.get(part.name) if changes else None)
            except Exception as exc:
                err = StepError(part.name, key, 0, "construct", exc)
                err.error_message = f"{err.error_message} ({self._where(part.position)})"
                err.args = (err.describe(),)
                raise err from exc
            comp.merge_process_parameters(parameters)
            out[part.name] = comp
        return out

    def check_construct(self, key: str = DEFAULT_KEY) -> None:
        """Construct every component once (``process validate``): a constructor that raises
        is a ``ModelError`` naming the component and its YAML line. The instances are dropped
        unused (``init`` never ran, so there is nothing to ``destroy``)."""
        problems: list[Problem] = []
        for part in self._recipe():
            try:
                self._construct(part, key)
            except Exception as exc:
                problems.append(Problem(
                    f"the constructor raised {type(exc).__name__}: {exc}",
                    self.lines.of((*_COMPONENTS, part.position)),
                    f"component '{part.name}' ({part.type_path})",
                ))
        if problems:
            raise ModelError(problems, str(self.path))

    def _where(self, index: int) -> str:
        line = self.lines.of((*_COMPONENTS, index))
        return f"{self.path.name} line {line}" if line else self.path.name

    def _recipe(self) -> tuple[Part, ...]:
        """What constructing each component takes, worked out once per model (not per key)."""
        recipe: _t.Optional[tuple[Part, ...]] = self.__dict__.get("_parts")
        if recipe is None:  # (kept on this object only: ``dataclasses.replace`` gives a model without it)
            recipe = tuple(Part(i, spec.args.name, spec.type, self.classes[spec.args.name], extra,
                                spec.args.initial_values, spec.args.parameters, spec.args.constraints,
                                spec.args.resources, _keyed_args(extra))
                           for i, spec in enumerate(self.config.plugboard.process.args.components)
                           for extra in (spec.args.extra_args(),))
            object.__setattr__(self, "_parts", recipe)
        return recipe

    @staticmethod
    def _construct(part: Part, key: str, changes: _t.Optional[_t.Mapping[str, _t.Any]] = None) -> Component:
        cls = part.cls
        if changes:
            kwargs: dict[str, _t.Any] = {**part.extra, **changes}
            keyed = _keyed_args(kwargs)
        else:
            kwargs = dict(part.extra)
            keyed = part.keyed
        for k in keyed:  # (only the string arguments with ``{key}`` in them: worked out once)
            kwargs[k] = _subst_key(kwargs[k], key, cls, k)
        kwargs["name"] = part.name
        if part.initial_values:
            kwargs["initial_values"] = {k: list(v) for k, v in part.initial_values.items()}
        if part.parameters:
            kwargs["parameters"] = dict(part.parameters)
        if part.constraints:
            kwargs["constraints"] = dict(part.constraints)
        if part.resources is not None:
            kwargs["resources"] = part.resources.model_copy(deep=True)
        comp = cls(**kwargs)
        comp._plugboard_beam_key = key  # the model instance, for components that publish it
        return comp


class Part(_t.NamedTuple):
    """One component of a model, ready to construct for any key (``LoadedModel._recipe``)."""

    position: int
    name: str
    type_path: str
    cls: type[Component]
    extra: dict[str, _t.Any]
    initial_values: _t.Any
    parameters: _t.Any
    constraints: _t.Any
    resources: _t.Any
    #: the arguments of ``extra`` that ``{key}`` is substituted in (``_subst_key``), in order
    keyed: tuple[str, ...]


def _keyed_args(args: _t.Mapping[str, _t.Any]) -> tuple[str, ...]:
    """The names of the string arguments with ``{key}`` in them (what ``_subst_key`` changes)."""
    return tuple(k for k, v in args.items() if isinstance(v, str) and "{key}" in v)


@dataclass(frozen=True)
class KeyModel:
    """What one key runs (``LoadedModel.resolve``): a model and the argument values its
    scenario sets, applied as the key's components are constructed (the model is not copied)."""

    model: LoadedModel
    changes: _t.Mapping[str, _t.Mapping[str, _t.Any]] = field(default_factory=dict)

    @property
    def graph(self) -> ModelGraph:
        """The model's graph (scenario arguments do not change it)."""
        return self.model.graph

    def build_components(self, key: str = "") -> dict[str, Component]:
        """The key's components (``LoadedModel.build_components`` with this key's arguments)."""
        return self.model.build_components(key, self.changes)


def _raw_path_copy(raw: _t.Any) -> _t.Any:
    """The parsed YAML with the dicts and list down to the components copied (the rest shared,
    never changed in place): what ``_with_arg_values`` changes."""
    raw = dict(raw)
    pb = raw["plugboard"] = dict(raw["plugboard"])
    process = pb["process"] = dict(pb["process"])
    args = process["args"] = dict(process["args"])
    args["components"] = list(args["components"])
    return raw


def _subst_key(value: _t.Any, key: str, cls: _t.Any = None, name: str = "") -> _t.Any:
    """``{key}`` in a string argument: ``key_for_path(key)`` pasted in, unless the component's
    class decides (a classmethod ``substitute_key_in(name, value, key)``: e.g. ``SQLReader``
    binds the key as a parameter of its query instead of pasting it into SQL text)."""
    if isinstance(value, str) and "{key}" in value:
        hook = getattr(cls, "substitute_key_in", None)
        try:
            return hook(name, value, key) if hook is not None else substitute_key(value, key)
        except (InvalidKey, ValueError) as exc:
            shown = f"argument {name!r}" if hook is not None else repr(value)
            raise InvalidKey(f"cannot put key {key[:40]!r} into {shown}: {exc}") from None
    return value


# ------------------------------------------------------------------ phases
def read_file(ctx: Context) -> None:
    """The file exists, is text, and is not larger than a model file can sensibly be."""
    try:
        size = ctx.path.stat().st_size
        if size > MODEL_LIMITS.max_bytes:
            ctx.problem(f"model file {ctx.path} is too large: {size} bytes (at most {MODEL_LIMITS.max_bytes})")
            return
        ctx.text = ctx.path.read_text()
    except FileNotFoundError:
        ctx.problem(f"model file {ctx.path} does not exist")
    except (OSError, UnicodeDecodeError) as exc:
        ctx.problem(f"cannot read model file {ctx.path}: {exc}")


def parse_yaml(ctx: Context) -> None:
    """YAML syntax, with the line of the error."""
    try:
        ctx.raw, ctx.lines = load_yaml(ctx.text)
    except YamlSyntaxError as exc:
        ctx.problems.append(exc.problem)
        return
    if not isinstance(ctx.raw, dict) or "plugboard" not in ctx.raw:
        ctx.problem("a model file starts with 'plugboard: process: args: components: ...'")


#: how many model files a chain of ``process: other.yaml`` may pass through
MAX_PROCESS_FILES = 16


def follow_process_file(ctx: Context) -> None:
    """``plugboard: {process: other.yaml}``: the process is the one of the model file named,
    relative to the folder of the file that names it (any readable path: a model file is the
    user's own, and its ``type:`` imports run code anyway). The chain is followed up to
    ``MAX_PROCESS_FILES`` files; a file named twice is a cycle. From then on the model is the
    other file's: its lines and folder (where its component modules are imported from) are the
    model's, and the first file's other sections (``tune:``) are kept."""
    seen = [ctx.path.resolve()]
    while isinstance(ctx.raw, dict) and isinstance(ctx.raw.get("plugboard"), dict) \
            and isinstance(ctx.raw["plugboard"].get("process"), str):
        name = ctx.raw["plugboard"]["process"]
        where = ("plugboard", "process")
        target = (ctx.base_dir / name).resolve()
        if target in seen:
            chain = " -> ".join(p.name for p in [*seen, target])
            ctx.problem(f"process: {name!r} makes a cycle of model files ({chain})", where)
            return
        if len(seen) >= MAX_PROCESS_FILES:
            ctx.problem(f"process: {name!r}: more than {MAX_PROCESS_FILES} model files chained by 'process:'",
                        where)
            return
        if not target.is_file():
            hint = (f"; paths are relative to the folder of {ctx.path.name} ({ctx.base_dir}), and {name!r} "
                    "exists relative to the current directory" if Path(name).is_file() else "")
            ctx.problem(f"process: {name!r}: no such model file ({target}){hint}", where)
            return
        outer, outer_path, outer_lines = ctx.raw["plugboard"], ctx.path, ctx.lines
        ctx.path, ctx.text, ctx.raw, ctx.lines = target, "", None, Lines()
        before = len(ctx.problems)
        read_file(ctx)
        if len(ctx.problems) == before:
            parse_yaml(ctx)
        if len(ctx.problems) > before:
            line = outer_lines.of(where)
            ctx.problems[before:] = [Problem(f"{p.message} (the process named at {outer_path.name} line {line})",
                                             p.line, p.element) for p in ctx.problems[before:]]
            return
        inner = ctx.raw["plugboard"] if isinstance(ctx.raw, dict) else None
        if not isinstance(inner, dict) or "process" not in inner:
            ctx.problem(f"{target.name} has no 'plugboard: process:' section (named by 'process:' in "
                        f"{outer_path.name} line {outer_lines.of(where)})")
            return
        ctx.raw["plugboard"] = {**{k: v for k, v in outer.items() if k != "process"}, "process": inner["process"]}
        seen.append(target)


def apply_overrides(ctx: Context) -> None:
    """Scenario / ``--param`` values replace component arguments, seeds and parameters."""
    if not ctx.overrides:
        return
    try:
        comps = ctx.raw["plugboard"]["process"]["args"]["components"]
        by_name = {c["args"]["name"]: c["args"] for c in comps}
        index = {c["args"]["name"]: i for i, c in enumerate(comps)}
    except (KeyError, TypeError):
        return  # the schema phase reports the structure
    for name, value in ctx.overrides.items():
        parts = name.split(".")
        if parts[0] == "component" and len(parts) >= 4:  # plugboard's --param form
            kind = {"arg": "", "initial_value": "initial_values", "parameter": "parameters"}.get(parts[2])
            if kind is None:
                ctx.problems.append(Problem(
                    f"override {name!r}: expected component.<name>.<arg|initial_value|parameter>.<field>"))
                continue
            parts = [parts[1], *([kind] if kind else []), *parts[3:]]
        if len(parts) < 2:
            ctx.problems.append(Problem(f"override {name!r}: expected <component>.<argument>"))
            continue
        comp = by_name.get(parts[0])
        if comp is None:
            hint = _did_you_mean(parts[0], by_name)
            ctx.problems.append(Problem(f"override {name!r} names unknown component {parts[0]!r}{hint}"))
            continue
        if parts[1] in ("initial_values", "parameters") and len(parts) == 3:
            section = comp.setdefault(parts[1], {})
            if parts[1] == "initial_values" and not isinstance(value, list):
                value = [value]
            section[parts[2]] = value
        elif len(parts) == 2:
            comp[parts[1]] = value
            ctx.overridden[(parts[0], parts[1])] = name
        else:
            ctx.problem(
                f"override {name!r}: expected <component>.<argument> or "
                "<component>.initial_values.<field> or <component>.parameters.<name>",
                (*_COMPONENTS, index[parts[0]]),
                f"component '{parts[0]}'",
            )


def check_schema(ctx: Context) -> None:
    """The layout: required keys, types, no unknown fields."""
    raw = ctx.raw
    tune = raw["plugboard"].get("tune") if isinstance(raw, dict) and isinstance(raw.get("plugboard"), dict) else None
    if tune is not None:  # checked, with its lines, by ``process tune`` (tune/setup.py), not here
        raw = {**raw, "plugboard": {k: v for k, v in raw["plugboard"].items() if k != "tune"}}
    try:
        ctx.config = ConfigSpec.model_validate(raw)
        if tune is not None:
            with contextlib.suppress(ValidationError):
                ctx.config.plugboard.tune = TuneSpec.model_validate(tune)
        if ctx.config.plugboard.process.is_ray:
            line = ctx.lines.of(("plugboard", "process", "type"))
            ctx.notices.append(
                f"process type {ctx.config.plugboard.process.type} (line {line})"
                " runs on Beam, which places and parallelises the components as Ray would: --runner direct "
                "or dataflow (--runner local runs it in this process)")
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            where = _describe_loc(ctx, loc)
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = f"unknown field {loc[-1]!r}"
                allowed = _allowed_fields(loc)
                if allowed:
                    msg += f"{_did_you_mean(str(loc[-1]), allowed)} (allowed: {', '.join(allowed)})"
            elif err["type"] == "missing":
                msg = f"missing required field {loc[-1]!r}"
            ctx.problem(msg, loc, where)


def _allowed_fields(loc: tuple[_t.Any, ...]) -> list[str]:
    from plugboard_beam import schemas

    depth_models: list[type[_t.Any]] = [
        schemas.ConfigSpec,
        schemas.ProcessConfigSpec,
        schemas.ProcessSpec,
        schemas.ProcessArgsSpec,
    ]
    if len(loc) <= 4:
        return list(depth_models[len(loc) - 1].model_fields) if 1 <= len(loc) <= 4 else []
    if loc[3] == "components" and len(loc) == 6:
        return list(schemas.ComponentSpec.model_fields)
    if loc[3] == "connectors" and len(loc) == 6:
        return list(schemas.ConnectorSpec.model_fields)
    return []


def _describe_loc(ctx: Context, loc: tuple[_t.Any, ...]) -> str:
    if len(loc) >= 5 and loc[:4] == _COMPONENTS and isinstance(loc[4], int):
        try:
            name = ctx.raw["plugboard"]["process"]["args"]["components"][loc[4]]["args"]["name"]
            return f"component '{name}'"
        except (KeyError, TypeError, IndexError):
            return f"component #{loc[4] + 1}"
    if len(loc) >= 5 and loc[:4] == _CONNECTORS and isinstance(loc[4], int):
        try:
            c = ctx.raw["plugboard"]["process"]["args"]["connectors"][loc[4]]
            return f"connector #{loc[4] + 1} ({_ref(c.get('source'))} -> {_ref(c.get('target'))})"
        except (KeyError, TypeError, IndexError, AttributeError):
            return f"connector #{loc[4] + 1}"
    return ".".join(str(p) for p in loc)


def _ref(v: _t.Any) -> str:
    if isinstance(v, dict):
        return f"{v.get('entity')}.{v.get('descriptor')}"
    return str(v)


def check_names(ctx: Context) -> None:
    """Component names are unique."""
    seen: dict[str, int] = {}
    for i, comp in enumerate(_config(ctx).plugboard.process.args.components):
        name = comp.args.name
        if name in seen:
            first = ctx.lines.of((*_COMPONENTS, seen[name]))
            ctx.problem(
                f"duplicate component name {name!r} (first used at line {first})",
                (*_COMPONENTS, i, "args", "name"),
                f"component '{name}'",
            )
        else:
            seen[name] = i


def resolve_types(ctx: Context) -> None:
    """Every ``type`` imports (relative to the model's folder) and is a Component."""
    base = str(ctx.base_dir)
    rewritten: list[str] = []
    for i, comp in enumerate(_config(ctx).plugboard.process.args.components):
        where = (*_COMPONENTS, i, "type")
        transport = replaced_transport(comp.type)
        if transport is not None:
            ctx.problem(replaced_message(transport), where, f"component '{comp.args.name}'")
            continue
        type_path = ours(comp.type)
        try:
            ctx.classes[comp.args.name] = resolve_type(type_path, base)
        except LookupError as exc:
            read_as = f"{comp.type!r} is read as {type_path!r}: " if type_path != comp.type else ""
            ctx.problem(f"{read_as}{exc}", where, f"component '{comp.args.name}'")
            continue
        if type_path != comp.type:
            rewritten.append(f"{comp.type} (line {ctx.lines.of(where)})")
    if rewritten:
        ctx.notices.append(f"plugboard's import paths are read as plugboard_beam's: {', '.join(rewritten)} "
                           "(write plugboard_beam.… to silence this)")


def resolve_type(type_path: str, base_dir: str) -> type[Component]:
    """Import ``module.Class`` (module looked up first in ``base_dir``); raise LookupError."""
    module_name, _, attr = type_path.rpartition(".")
    if not module_name:
        raise LookupError(f"unknown type {type_path!r}: give the import path, e.g. 'my_module.{type_path}'")
    look_first_in(base_dir)
    _forget_shadowed(module_name, base_dir)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == "plugboard" and module_name.startswith("plugboard."):
            raise LookupError(f"unknown type {type_path!r}: no module named 'plugboard'"
                              f"{_plugboard_hint(type_path, base_dir)}") from None
        if exc.name and module_name.startswith(exc.name):
            local = [f.stem for f in Path(base_dir).glob("*.py")] + [
                d.name for d in Path(base_dir).iterdir() if (d / "__init__.py").exists()]
            raise LookupError(
                f"unknown type {type_path!r}: no module named {exc.name!r}{_did_you_mean(exc.name, local)} "
                f"(looked in {base_dir} and the Python path)"
            ) from None
        raise LookupError(f"importing {module_name!r} for type {type_path!r} failed: {exc}") from None
    except Exception as exc:
        raise LookupError(
            f"importing {module_name!r} for type {type_path!r} failed: {type(exc).__name__}: {exc}"
        ) from None
    obj = getattr(module, attr, None)
    if isinstance(obj, ComponentDecoratorHelper):
        obj = obj.component_cls
    if obj is None:
        names = [
            n
            for n, v in vars(module).items()
            if (isinstance(v, type) and issubclass(v, Component) and v is not Component)
            or isinstance(v, ComponentDecoratorHelper)
        ]
        raise LookupError(
            f"unknown type {type_path!r}: module {module_name!r} has no component {attr!r}{_did_you_mean(attr, names)}"
        )
    if not (isinstance(obj, type) and issubclass(obj, Component)) or obj is Component:
        hint = _plugboard_hint(type_path, base_dir) if type_path.startswith("plugboard.") else ""
        raise LookupError(f"type {type_path!r} is not a Component subclass{hint}")
    return obj


def _plugboard_hint(type_path: str, base_dir: str) -> str:
    """For a ``plugboard.X`` type (plugboard's own import path): the ``plugboard_beam.X`` to write
    instead, when there is one (never substituted silently: the YAML should say what runs)."""
    ours = "plugboard_beam" + type_path[len("plugboard"):]
    try:
        resolve_type(ours, base_dir)
    except LookupError:
        return " (plugboard's classes are imported from plugboard_beam here, which has no " \
               f"{ours!r}; see plugboard_beam.library)"
    return f" (did you mean {ours!r}? plugboard_beam runs plugboard's models with the import prefix plugboard_beam)"


def look_first_in(base_dir: str) -> None:
    """Put the model's folder first on the import path (moved there if an earlier model's folder
    came before it: a module of the same name there must not shadow this model's)."""
    if sys.path[:1] != [base_dir]:
        while base_dir in sys.path:
            sys.path.remove(base_dir)
        sys.path.insert(0, base_dir)


def _forget_shadowed(module_name: str, base_dir: str) -> None:
    """Drop a cached module of the same name loaded from another model's folder."""
    top = module_name.split(".")[0]
    cached = sys.modules.get(top)
    if cached is None:
        return
    origin = getattr(cached, "__file__", None) or ""
    local = Path(base_dir, *top.split(".")).with_suffix(".py")
    if (local.exists() or Path(base_dir, top).is_dir()) and not origin.startswith(base_dir + "/"):
        for name in [m for m in sys.modules if m == top or m.startswith(top + ".")]:
            del sys.modules[name]
        importlib.invalidate_caches()


def resolve_io(ctx: Context) -> None:
    """Each component's fields (most are declared on the class; some depend on arguments)."""
    for i, comp in enumerate(_config(ctx).plugboard.process.args.components):
        cls = ctx.classes.get(comp.args.name)
        if cls is None:
            continue
        try:
            ctx.ios[comp.args.name] = cls.io_for(comp.args.extra_args())
        except (TypeError, ValueError, IOSetupError) as exc:
            ctx.problem(str(exc), (*_COMPONENTS, i, "args"), f"component '{comp.args.name}' ({comp.type})")


def accepted_args(cls: type[Component]) -> tuple[set[str], set[str], bool]:
    """(argument names, required names, accepts anything) of a component constructor."""
    names: set[str] = set()
    required: set[str] = {"name"}
    first = True
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        if klass is Component:
            names |= BASE_ARGS
            return names, required, False
        try:
            params = list(inspect.signature(init).parameters.values())[1:]
        except (TypeError, ValueError):
            return names, required, True
        has_var_kw = False
        for p in params:
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD):
                names.add(p.name)
                if first and p.default is p.empty:
                    required.add(p.name)
            elif p.kind == p.VAR_KEYWORD:
                has_var_kw = True
        first = False
        if not has_var_kw:
            return names, required, False
    return names, required, True


def check_args(ctx: Context) -> None:
    """Arguments are ones the constructor accepts, and required ones are given."""
    for i, comp in enumerate(_config(ctx).plugboard.process.args.components):
        cls = ctx.classes.get(comp.args.name)
        if cls is None:
            continue
        names, required, anything = accepted_args(cls)
        given = set(comp.args.extra_args()) | {
            k
            for k in ("name", "initial_values", "parameters", "constraints", "resources")
            if k in comp.args.model_fields_set
        }
        elem = f"component '{comp.args.name}' ({comp.type})"
        if not anything:
            for arg in sorted(given - names):
                ctx.problem(
                    f"unknown argument {arg!r}{_from_override(ctx, comp.args.name, arg)}"
                    f"{_suggest_argument(arg, names, given)}; "
                    f"{cls.__name__} accepts: {', '.join(sorted(names - BASE_ARGS)) or '(no own arguments)'}",
                    (*_COMPONENTS, i, "args", arg),
                    elem,
                )
        for arg in sorted(required - given):
            ctx.problem(f"missing required argument {arg!r}", (*_COMPONENTS, i, "args"), elem)


def _from_override(ctx: Context, component: str, arg: str) -> str:
    name = ctx.overridden.get((component, arg))
    return f" (set by override {name!r})" if name else ""


@dataclass(frozen=True)
class _ArgType:
    """What a constructor argument's annotation accepts."""

    annotation: _t.Any
    adapter: TypeAdapter[_t.Any]
    none_ok: bool

    @property
    def label(self) -> str:
        ann = self.annotation
        text = ann.__name__ if isinstance(ann, type) else str(ann).replace("typing.", "")
        return f"{text} or None" if self.none_ok and not _t.get_origin(ann) else text


#: arg_types by class (a cache; classes are never mutated after import)
_ARG_TYPES: weakref.WeakKeyDictionary[type[Component], dict[str, _ArgType]] = weakref.WeakKeyDictionary()


def arg_types(cls: type[Component]) -> dict[str, _ArgType]:
    """Checkable argument annotations of ``cls``'s constructor (own and inherited, down to
    ``Component``). Arguments without an annotation, or with one pydantic cannot check, are
    left out. Cached by class (scenarios check every key's arguments)."""
    cached = _ARG_TYPES.get(cls)
    if cached is not None:
        return cached
    out: dict[str, _ArgType] = {}
    for klass in cls.__mro__:
        if klass is Component or klass is object:
            break
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            params = list(inspect.signature(init).parameters.values())[1:]
            hints = _t.get_type_hints(init)
        except Exception:  # unresolvable annotations: nothing to check against
            continue
        for p in params:
            if p.kind not in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) or p.name in out or p.name not in hints:
                continue
            if p.name in BASE_ARGS or hints[p.name] is _t.Any:
                continue
            try:
                adapter: TypeAdapter[_t.Any] = TypeAdapter(hints[p.name])
            except Exception:  # e.g. an arbitrary class: constructed objects cannot come from YAML
                continue
            out[p.name] = _ArgType(hints[p.name], adapter, p.default is None)
    _ARG_TYPES[cls] = out
    return out


def _type_problem(kind: _ArgType, value: _t.Any) -> _t.Optional[str]:
    """Why ``value`` does not fit, or None. Values are checked strictly as JSON data (so
    ``"ten"`` and ``"10"`` are not ints, but a list is a tuple and an int is a float); values
    JSON cannot hold (dates, ...) are checked leniently."""
    if value is None and kind.none_ok:
        return None
    if isinstance(value, str) and "{key}" in value:
        value = value.replace("{key}", DEFAULT_KEY)
    try:
        text = json.dumps(value, allow_nan=True)
    except (TypeError, ValueError):
        text = None
    try:
        if text is not None:
            kind.adapter.validate_json(text, strict=True)
        else:
            kind.adapter.validate_python(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = "".join(f"[{p!r}]" for p in first["loc"])
        return f"{loc + ': ' if loc else ''}{first['msg']}{_text_number_hint(value)}"
    return None


def _text_number_hint(value: _t.Any) -> str:
    """A hint for numbers YAML read as text (quoted, or ``1e3``, which YAML 1.1 reads as text)."""
    if not isinstance(value, str):
        return ""
    number: _t.Union[int, float]
    try:
        number = int(value)
    except ValueError:
        try:
            number = float(value)
        except ValueError:
            return ""
    return f" (YAML read {value!r} as text: write it unquoted, as {number!r})"


def check_arg_types(ctx: Context) -> None:
    """Each argument fits its constructor annotation (YAML, scenarios and ``-p`` alike)."""
    for i, comp in enumerate(_config(ctx).plugboard.process.args.components):
        cls = ctx.classes.get(comp.args.name)
        if cls is None:
            continue
        kinds = arg_types(cls)
        for arg, value in comp.args.extra_args().items():
            kind = kinds.get(arg)
            if kind is None:
                continue
            why = _type_problem(kind, value)
            if why is not None:
                shown = repr(value)
                shown = shown if len(shown) <= 60 else shown[:57] + "..."
                ctx.problem(
                    f"argument {arg!r}{_from_override(ctx, comp.args.name, arg)} = {shown} is not "
                    f"a valid {kind.label} ({cls.__name__}.__init__ expects {arg}: {kind.label}): {why}",
                    (*_COMPONENTS, i, "args", arg),
                    f"component '{comp.args.name}' ({comp.type})",
                )


def check_initial_values(ctx: Context) -> None:
    """Seeds are given for input fields only."""
    for i, comp in enumerate(_config(ctx).plugboard.process.args.components):
        io = ctx.ios.get(comp.args.name)
        if io is None:
            continue
        for fld in comp.args.initial_values:
            if fld not in io.inputs:
                ctx.problem(
                    f"initial_values for {comp.args.name}.{fld}, which is not an input field"
                    f"{_did_you_mean(fld, io.inputs)} (inputs: {', '.join(io.inputs) or 'none'})",
                    (*_COMPONENTS, i, "args", "initial_values", fld),
                    f"component '{comp.args.name}'",
                )


def check_connectors(ctx: Context) -> None:
    """Connectors name existing components, an output field as source and an input as target."""
    config = _config(ctx)
    types = {c.args.name: c.type for c in config.plugboard.process.args.components}
    for i, conn in enumerate(config.plugboard.process.args.connectors):
        elem = f"connector #{i + 1} ({conn.source.id} -> {conn.target.id})"
        for end, sock, kind in (("source", conn.source, "outputs"), ("target", conn.target, "inputs")):
            path = (*_CONNECTORS, i, end)
            if sock.entity not in types:
                ctx.problem(
                    f"{end} {sock.id}: unknown component {sock.entity!r}{_did_you_mean(sock.entity, types)}", path, elem
                )
                continue
            io = ctx.ios.get(sock.entity)
            if io is None:
                continue
            fields: tuple[str, ...] = getattr(io, kind)
            if sock.descriptor not in fields:
                other = io.inputs if kind == "outputs" else io.outputs
                extra = (
                    f"; {sock.descriptor!r} is an {'input' if kind == 'outputs' else 'output'}"
                    if sock.descriptor in other
                    else _did_you_mean(sock.descriptor, fields)
                )
                ctx.problem(
                    f"{end} {sock.id}: component {sock.entity!r} ({types[sock.entity]}) has no "
                    f"{kind[:-1]} field {sock.descriptor!r}{extra} ({kind}: {', '.join(fields) or 'none'})",
                    path,
                    elem,
                )


def check_inputs_connected(ctx: Context) -> None:
    """Every input field has at least one connector."""
    config = _config(ctx)
    targets = {(c.target.entity, c.target.descriptor) for c in config.plugboard.process.args.connectors}
    for i, comp in enumerate(config.plugboard.process.args.components):
        io = ctx.ios.get(comp.args.name)
        if io is None:
            continue
        for fld in io.inputs:
            if (comp.args.name, fld) not in targets:
                ctx.problem(
                    f"input {comp.args.name}.{fld} is not connected: every input needs a "
                    "connector (the component could never step)",
                    (*_COMPONENTS, i),
                    f"component '{comp.args.name}' ({comp.type})",
                )


def build_graph(ctx: Context) -> None:
    """The frozen model graph."""
    config = _config(ctx)
    args = config.plugboard.process.args
    nodes = tuple(
        Node(
            name=c.args.name,
            type_path=c.type,
            inputs=ctx.ios[c.args.name].inputs,
            outputs=ctx.ios[c.args.name].outputs,
            initial_values={k: tuple(v) for k, v in c.args.initial_values.items()},
            line=ctx.lines.of((*_COMPONENTS, i)),
            step_timeout=c.args.step_timeout,
        )
        for i, c in enumerate(args.components)
    )
    edges = tuple(
        Edge(
            id=i,
            source=c.source.entity,
            source_field=c.source.descriptor,
            target=c.target.entity,
            target_field=c.target.descriptor,
            line=ctx.lines.of((*_CONNECTORS, i)),
        )
        for i, c in enumerate(args.connectors)
    )
    ctx.graph = ModelGraph(nodes=nodes, edges=edges, name=args.name or ctx.path.stem)


def check_cycles(ctx: Context) -> None:
    """Every cycle passes through an input with initial_values."""
    graph = _t.cast(ModelGraph, ctx.graph)
    for group in graph.strongly_connected(skip_seeded=True):
        if not graph.is_cyclic(group, skip_seeded=True):
            continue
        cycle = graph.find_cycle(group, skip_seeded=True)
        names = [e.source for e in cycle] + [cycle[0].source]
        inputs = ", ".join(f"{e.target}.{e.target_field}" for e in cycle)
        via = ", ".join(f"{e.source}.{e.source_field} -> {e.target}.{e.target_field}" for e in cycle)
        ctx.problems.append(
            Problem(
                f"cycle {' -> '.join(names)} ({via}) has no initial_values on any of its inputs, "
                f"so none of its components can take a first step; give one of {inputs} "
                "initial_values to seed the loop",
                cycle[0].line,
                "unseeded cycle",
            )
        )


def _config(ctx: Context) -> ConfigSpec:
    return _t.cast(ConfigSpec, ctx.config)


def _did_you_mean(word: str, options: _t.Iterable[str], cutoff: float = 0.6) -> str:
    close = difflib.get_close_matches(word, sorted(options), n=1, cutoff=cutoff)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _suggest_argument(arg: str, names: _t.AbstractSet[str], given: _t.AbstractSet[str]) -> str:
    """A did-you-mean for an unknown argument: the class's own arguments first (not given yet,
    then any); plugboard's base arguments (``state``, ``parameters``, ...) only when nearly the
    same word, so that ``step`` does not suggest ``state``."""
    own = names - BASE_ARGS
    return (_did_you_mean(arg, own - given) or _did_you_mean(arg, own)
            or _did_you_mean(arg, (names & BASE_ARGS) - given, cutoff=0.85))


#: (phase, phases whose problems stop it from running)
PHASES: list[tuple[_t.Callable[[Context], None], tuple[str, ...]]] = [
    (read_file, ()),
    (parse_yaml, ("read_file",)),
    (follow_process_file, ("read_file", "parse_yaml")),
    (apply_overrides, ("read_file", "parse_yaml", "follow_process_file")),
    (check_schema, ("read_file", "parse_yaml", "follow_process_file")),
    (check_names, ("check_schema",)),
    (resolve_types, ("check_schema",)),
    (check_args, ("check_schema",)),
    (check_arg_types, ("check_schema",)),
    (resolve_io, ("check_schema",)),
    (check_initial_values, ("check_schema",)),
    (check_connectors, ("check_schema",)),
    (check_inputs_connected, ("check_schema",)),
    (build_graph, ("check_schema", "check_names", "resolve_types", "resolve_io", "check_connectors")),
    (check_events, ("build_graph",)),
    (check_cycles, ("build_graph", "check_initial_values")),
]


def load_model(
    path: _t.Union[str, Path],
    overrides: _t.Optional[_t.Mapping[str, _t.Any]] = None,
    text: _t.Optional[str] = None,
) -> LoadedModel:
    """Load and validate a model file (or ``text``, named ``path``); raise ``ModelError``
    listing every problem."""
    ctx = Context(path=Path(path), overrides=dict(overrides or {}))
    if text is not None:
        ctx.text = text
        return _run_phases(ctx, skip=("read_file",))
    return _run_phases(ctx)


def _run_phases(ctx: Context, skip: tuple[str, ...] = ()) -> LoadedModel:
    failed: set[str] = set()
    for phase, needs in PHASES:
        if phase.__name__ in skip:
            continue
        if failed & set(needs):
            failed.add(phase.__name__)
            continue
        before = len(ctx.problems)
        phase(ctx)
        if len(ctx.problems) > before:
            failed.add(phase.__name__)
    if ctx.problems:
        raise ModelError(ctx.problems, str(ctx.path))
    assert ctx.config is not None and ctx.graph is not None
    for notice in ctx.notices:
        _LOG.warning("%s: %s", ctx.path.name, notice)
    return LoadedModel(path=ctx.path, config=ctx.config, classes=ctx.classes, graph=ctx.graph,
                       raw=ctx.raw, text=ctx.text, lines=ctx.lines, overrides=ctx.overrides,
                       notices=tuple(ctx.notices))


def graph_from_components(
    components: _t.Sequence[Component], connectors: _t.Sequence[ConnectorSpec], name: str = "process",
    unconnected: _t.Optional[list[Problem]] = None,
) -> ModelGraph:
    """The model graph of Python-built components (``LocalProcess`` API); raises ModelError.

    With ``unconnected`` (a list), inputs without a connector are put there instead of raised
    when they are the only problem (``LocalProcess`` reports them from ``init()`` through
    plugboard's ``validate_process``, which plugboard's tests patch out); an unfed input that an
    event handler fills (``populates_fields``) is still raised: the engine needs its connector."""
    problems: list[Problem] = []
    by_name: dict[str, Component] = {}
    for comp in components:
        if comp.name in by_name:
            problems.append(Problem(f"duplicate component name {comp.name!r}"))
        by_name[comp.name] = comp
    nodes = tuple(
        Node(
            name=c.name,
            type_path=f"{type(c).__module__}.{type(c).__qualname__}",
            inputs=c.io.inputs,
            outputs=c.io.outputs,
            initial_values={k: tuple(v) for k, v in c.io.initial_values.items()},
        )
        for c in components
    )
    edges = []
    for i, spec in enumerate(connectors):
        src, tgt = by_name.get(spec.source.entity), by_name.get(spec.target.entity)
        elem = f"connector {spec.source.id} -> {spec.target.id}"
        if src is None or tgt is None:
            problems.append(
                Problem(f"unknown component {(spec.source if src is None else spec.target).entity!r}", None, elem)
            )
            continue
        if spec.source.descriptor not in src.io.outputs:
            problems.append(
                Problem(f"{spec.source.id}: {src.name!r} has no output field {spec.source.descriptor!r}", None, elem)
            )
        if spec.target.descriptor not in tgt.io.inputs:
            problems.append(
                Problem(f"{spec.target.id}: {tgt.name!r} has no input field {spec.target.descriptor!r}", None, elem)
            )
        edges.append(Edge(i, spec.source.entity, spec.source.descriptor, spec.target.entity, spec.target.descriptor))
    graph = ModelGraph(nodes=nodes, edges=tuple(edges), name=name)
    missing: list[Problem] = []
    for node in nodes:
        covered = {f for fs in by_name[node.name].io.event_field_coverage.values() for f in fs}
        for fld in node.inputs:
            if graph.in_edges(node.name, fld):
                continue
            if fld in covered:
                problems.append(Problem(f"input {node.name}.{fld} is not connected: its event handler fills it "
                                        "(populates_fields), but the step engine needs a connector for every "
                                        "input field; connect it"))
            else:
                missing.append(Problem(f"input {node.name}.{fld} is not connected (component {node.name!r} has "
                                       "unconnected inputs: a connector must feed each)"))
    if unconnected is not None and not problems:
        unconnected.extend(missing)
    else:
        problems.extend(missing)
    if not problems:
        for group in graph.strongly_connected(skip_seeded=True):
            if graph.is_cyclic(group, skip_seeded=True):
                cycle = graph.find_cycle(group, skip_seeded=True)
                names = " -> ".join([e.source for e in cycle] + [cycle[0].source])
                problems.append(Problem(f"cycle {names} has no initial_values on any of its inputs"))
    if problems:
        raise ModelError(problems, name)
    return graph
