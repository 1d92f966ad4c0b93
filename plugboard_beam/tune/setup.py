"""A tuning study's inputs: the model, and the ``tune:`` section checked against it.

A model file carries both (``plugboard: {process: {...}, tune: {args: ...}}``), or its
``process:`` names another model file (``process: model.yaml``, relative to this one). Every
problem is reported with its YAML line: the section's layout, an unknown parameter type,
reversed bounds, an objective or parameter naming a missing component, field or argument, a
bound a parameter's argument cannot take, a search space function that does not import.
"""

from __future__ import annotations

from dataclasses import dataclass
import difflib
from pathlib import Path
import typing as _t

from pydantic import ValidationError

from plugboard_beam.schemas.tune import (
    PARAMETER_TYPES,
    CategoricalParameterSpec,
    FloatParameterSpec,
    IntParameterSpec,
    ObjectiveSpec,
    ParameterSpec,
    TuneArgsSpec,
)
from plugboard_beam.spec.errors import ModelError, Problem
from plugboard_beam.spec.keys import DEFAULT_KEY
from plugboard_beam.spec.load import LoadedModel, accepted_args, load_model
from plugboard_beam.spec.yaml_lines import Lines, YamlSyntaxError, load_yaml

_ARGS = ("plugboard", "tune", "args")
LineOf = _t.Callable[[tuple[_t.Union[str, int], ...]], _t.Optional[int]]


@dataclass(frozen=True)
class TuneFile:
    """A model file's model and its checked ``tune:`` arguments."""

    model: LoadedModel
    args: TuneArgsSpec
    path: Path


def as_model(spec: _t.Any) -> LoadedModel:
    """The model to tune from a ``LoadedModel``, a model file path or a ``ProcessSpec``."""
    from plugboard_beam.schemas import ProcessSpec

    if isinstance(spec, LoadedModel):
        return spec
    if isinstance(spec, (str, Path)):
        return _load_process(Path(spec))
    if isinstance(spec, ProcessSpec):
        import yaml

        text = yaml.safe_dump({"plugboard": {"process": spec.model_dump(mode="json")}}, sort_keys=False)
        # type paths resolve from the working folder (and the Python path), like plugboard's registry
        return load_model(Path.cwd() / f"{spec.args.name or 'process'}.yaml", text=text)
    raise TypeError(f"spec: give a ProcessSpec, a model file path or a loaded model, not {type(spec).__name__}")


def _load_process(path: Path) -> LoadedModel:
    """A model file, following ``process: other.yaml``."""
    raw, _ = _read(path)
    process = raw.get("plugboard", {}).get("process") if isinstance(raw, dict) and isinstance(
        raw.get("plugboard"), dict) else None
    if isinstance(process, str):
        return load_model(path.parent / process)
    return load_model(path)


def _read(path: Path) -> tuple[_t.Any, Lines]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ModelError([Problem(f"model file {path} does not exist")], str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError([Problem(f"cannot read model file {path}: {exc}")], str(path)) from None
    try:
        return load_yaml(text)
    except YamlSyntaxError as exc:
        raise ModelError([exc.problem], str(path)) from None


def load_tune_file(path: _t.Union[str, Path]) -> TuneFile:
    """The model and its ``tune:`` section, every problem with its line (``ModelError``)."""
    p = Path(path)
    raw, lines = _read(p)
    plugboard = raw.get("plugboard") if isinstance(raw, dict) else None
    if not isinstance(plugboard, dict):
        raise ModelError([Problem("a model file starts with 'plugboard:'", 1)], str(p))
    process = plugboard.get("process")
    if isinstance(process, str):
        model_path = p.parent / process
        if not model_path.exists():
            raise ModelError([Problem(f"process: {process!r}: no such model file ({model_path})",
                                      lines.of(("plugboard", "process")))], str(p))
        model = load_model(model_path)
    else:
        model = load_model(p)
    tune = plugboard.get("tune")
    if not isinstance(tune, dict) or not isinstance(tune.get("args"), dict):
        raise ModelError([Problem("no tuning study here: add a 'tune: args: {objective, parameters, num_samples, "
                                  "mode}' section under 'plugboard:'", lines.of(("plugboard",)))], str(p))
    args = parse_args(tune["args"], lambda loc: lines.of((*_ARGS, *loc)), str(p))
    problems = model_problems(model, args.objective if isinstance(args.objective, list) else [args.objective],
                              args.parameters, lambda loc: lines.of((*_ARGS, *loc)))
    if args.algorithm.space:
        from plugboard_beam.tune.study import load_space

        try:
            load_space(args.algorithm.space, str(p.resolve().parent))
        except LookupError as exc:
            problems.append(Problem(str(exc), lines.of((*_ARGS, "algorithm", "space")), "algorithm"))
    if problems:
        raise ModelError(problems, str(p))
    return TuneFile(model, args, p)


def parse_args(data: dict[str, _t.Any], line_of: LineOf, filename: str = "") -> TuneArgsSpec:
    """``TuneArgsSpec`` from the ``args:`` mapping; problems with their lines."""
    problems: list[Problem] = []
    params = data.get("parameters")
    if isinstance(params, list):
        for i, prm in enumerate(params):
            kind = prm.get("type") if isinstance(prm, dict) else None
            if isinstance(prm, dict) and kind not in PARAMETER_TYPES:
                close = difflib.get_close_matches(str(kind), PARAMETER_TYPES, n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                what = f"unknown parameter type {kind!r}{hint}" if kind is not None else "missing parameter 'type'"
                problems.append(Problem(f"{what}; types: {', '.join(PARAMETER_TYPES)}",
                                        line_of(("parameters", i, "type")), f"parameter #{i + 1}"))
    if problems:
        raise ModelError(problems, filename)
    try:
        return TuneArgsSpec.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if p not in PARAMETER_TYPES)
            msg = str(err["msg"]).removeprefix("Value error, ")
            if msg.startswith("bounds reversed"):
                loc = (*loc, "lower")
            if err["type"] == "extra_forbidden":
                msg = f"unknown field {loc[-1]!r}"
            elif err["type"] == "missing":
                msg = f"missing required field {loc[-1]!r}"
            elem = (f"parameter #{int(loc[1]) + 1}" if len(loc) > 1 and loc[0] == "parameters"
                    and isinstance(loc[1], int) else ".".join(str(x) for x in loc) or "tune.args")
            if loc and loc[0] == "objective" and len(loc) > 1 and isinstance(loc[1], int):
                elem = f"objective #{loc[1] + 1}"
            problems.append(Problem(msg, line_of(loc), elem))
        raise ModelError(problems, filename) from None


def check_against_model(model: LoadedModel, objectives: _t.Sequence[ObjectiveSpec],
                        parameters: _t.Sequence[ParameterSpec]) -> None:
    """The Python API's check (no YAML lines): raise ``ModelError`` with every problem."""
    problems = model_problems(model, objectives, parameters, lambda loc: None)
    if problems:
        raise ModelError(problems, str(model.path))


def model_problems(model: LoadedModel, objectives: _t.Sequence[ObjectiveSpec],
                   parameters: _t.Sequence[ParameterSpec], line_of: LineOf) -> list[Problem]:
    """Objectives name a component and one of its fields; parameters a component and one of its
    arguments / input fields, with bounds the argument accepts."""
    problems: list[Problem] = []
    names = [n.name for n in model.graph.nodes]
    built: dict[str, _t.Any] = {}
    for i, obj in enumerate(objectives):
        loc: tuple[_t.Union[str, int], ...] = ("objective", i) if len(objectives) > 1 else ("objective",)
        elem = f"objective {obj.full_name}"
        if obj.object_name not in names:
            problems.append(Problem(f"no component {obj.object_name!r} in the model{_hint(obj.object_name, names)}",
                                    line_of((*loc, "object_name")), elem))
            continue
        node = model.graph.node(obj.object_name)
        if obj.field_name in node.inputs or obj.field_name in node.outputs:
            continue
        if not built:
            try:
                built.update(model.build_components(DEFAULT_KEY))
            except Exception as exc:
                problems.append(Problem(f"cannot build the components to check the objective: {exc}",
                                        line_of(loc), elem))
                continue
        comp = built[obj.object_name]
        # (``hasattr`` would not do: unset public fields of a component read as None)
        if obj.field_name not in vars(comp) and not any(obj.field_name in vars(k) for k in type(comp).__mro__):
            fields = [*node.inputs, *node.outputs,
                      *(k for k in vars(comp) if not k.startswith("_") and k not in ("name", "io"))]
            problems.append(Problem(
                f"component {obj.object_name!r} ({type(comp).__name__}) has no field {obj.field_name!r}"
                f"{_hint(obj.field_name, fields)} (fields: {', '.join(dict.fromkeys(fields)) or 'none'})",
                line_of((*loc, "field_name")), elem))
    for i, prm in enumerate(parameters):
        loc = ("parameters", i)
        elem = f"parameter {prm.full_name}"
        if prm.object_type != "component":
            problems.append(Problem("only component parameters can be tuned (object_type: component)",
                                    line_of((*loc, "object_type")), elem))
            continue
        if prm.object_name not in names:
            problems.append(Problem(f"no component {prm.object_name!r} in the model{_hint(prm.object_name, names)}",
                                    line_of((*loc, "object_name")), elem))
            continue
        cls = model.classes[prm.object_name]
        node = model.graph.node(prm.object_name)
        if prm.field_type == "arg":
            accepted, _, anything = accepted_args(cls)
            accepted -= {"name", "initial_values", "parameters", "constraints", "resources"}
            if not anything and prm.field_name not in accepted:
                problems.append(Problem(
                    f"{cls.__name__} has no argument {prm.field_name!r}{_hint(prm.field_name, accepted)} "
                    f"(arguments: {', '.join(sorted(accepted)) or 'none'})", line_of((*loc, "field_name")), elem))
                continue
        elif prm.field_type == "initial_value" and prm.field_name not in node.inputs:
            problems.append(Problem(
                f"{prm.object_name!r} has no input field {prm.field_name!r}{_hint(prm.field_name, node.inputs)} "
                f"(inputs: {', '.join(node.inputs) or 'none'})", line_of((*loc, "field_name")), elem))
            continue
        for bound, value in _samples(prm):
            try:
                model.with_overrides({prm.override: value})
            except ModelError as err:
                reason = "; ".join(p.message for p in err.problems)
                problems.append(Problem(f"{bound} = {value!r} cannot be given: {reason}", line_of((*loc, bound)),
                                        elem))
                break
    return problems


def _samples(prm: ParameterSpec) -> list[tuple[str, _t.Any]]:
    if isinstance(prm, FloatParameterSpec):
        return [("lower", float(prm.lower)), ("upper", float(prm.upper))]
    if isinstance(prm, IntParameterSpec):
        return [("lower", prm.lower), ("upper", prm.upper - 1)]
    assert isinstance(prm, CategoricalParameterSpec)
    return [("categories", c) for c in prm.categories]


def _hint(word: _t.Optional[str], options: _t.Iterable[str]) -> str:
    close = difflib.get_close_matches(str(word), list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
