"""Scenario files: one row per key (model instance), columns overriding component arguments.

Formats: YAML/JSON (a list of mappings; YAML up to 4 MB, being slow to parse), CSV (cells
parsed as YAML scalars, empty cells left out) and Parquet. Every row needs a ``key``; the other
columns are overrides such as ``source.steps``, ``mix.initial_values.back`` or ``scale.parameters.gain``.

A scenarios file is untrusted input: YAML is size- and alias-bounded, every key must be usable
as a path segment (``keys.key_for_path``), and override values are type-checked against the
component constructors like the model's own arguments.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
import difflib
import json
from pathlib import Path
import typing as _t

from plugboard_beam.spec.errors import ModelError, Problem
from plugboard_beam.spec.keys import DEFAULT_KEY, InvalidKey, check_key
from plugboard_beam.spec.load import KeyModel, LoadedModel
from plugboard_beam.spec.yaml_lines import (
    SCENARIOS_LIMITS,
    YamlLimitError,
    YamlSyntaxError,
    load_value,
    load_yaml,
)

__all__ = ["DEFAULT_KEY", "Instances", "Scenario", "instances", "load_scenarios"]

SCENARIOS = "scenarios file"


@dataclass(frozen=True)
class Scenario:
    """One model instance: its key, its overrides, and where it came from (for messages)."""

    key: str
    overrides: _t.Mapping[str, _t.Any]
    where: str = ""


#: JSON scenarios files are parsed by the json module (fast); the limit is on memory.
MAX_JSON_BYTES = 64 * 1024 * 1024


def _json_rows(path: Path) -> list[tuple[str, _t.Any]]:
    """A JSON list, element by element so that each row knows its line."""
    text = path.read_text()
    decoder = json.JSONDecoder()
    rows: list[tuple[str, _t.Any]] = []

    def fail(why: str, pos: int) -> _t.NoReturn:
        line = text.count("\n", 0, pos) + 1
        raise ModelError([Problem(f"JSON syntax error at line {line}: {why}", line)], str(path), SCENARIOS)

    def skip(pos: int) -> int:
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        return pos

    pos = skip(0)
    if not text.startswith("[", pos):
        raise ModelError([Problem("a scenarios file is a list of mappings, one per key", 1)], str(path), SCENARIOS)
    pos, line, counted = skip(pos + 1), 1, 0
    while not text.startswith("]", pos):
        line += text.count("\n", counted, pos)
        counted = pos
        try:
            row, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            fail(exc.msg, exc.pos)
        except RecursionError:
            fail("nested too deeply", pos)
        rows.append((f"{path.name} line {line}", row))
        pos = skip(pos)
        if text.startswith(",", pos):
            pos = skip(pos + 1)
        elif not text.startswith("]", pos):
            fail("expected ',' or ']'", pos)
    if skip(pos + 1) != len(text):
        fail("extra data after the list", skip(pos + 1))
    return rows


def _rows(path: Path) -> list[tuple[str, _t.Any]]:
    suffix = path.suffix.lower()
    if suffix == ".json":
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise ModelError([Problem(f"scenarios file too large: {size} bytes (at most {MAX_JSON_BYTES})")],
                             str(path), SCENARIOS)
        return _json_rows(path)
    if suffix in (".yaml", ".yml"):
        size = path.stat().st_size
        if size > SCENARIOS_LIMITS.max_bytes:
            raise ModelError([Problem(f"scenarios file too large: {size} bytes (at most "
                                      f"{SCENARIOS_LIMITS.max_bytes}; use CSV, JSON or Parquet for "
                                      "more)")], str(path), SCENARIOS)
        try:
            data, lines = load_yaml(path.read_text(), SCENARIOS_LIMITS)
        except YamlSyntaxError as exc:
            raise ModelError([exc.problem], str(path), SCENARIOS) from None
        if not isinstance(data, list):
            raise ModelError([Problem("a scenarios file is a list of mappings, one per key", 1)], str(path), SCENARIOS)
        return [(f"{path.name} line {lines.of((i,))}", row) for i, row in enumerate(data)]
    if suffix == ".csv":
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            out = []
            problems = []
            for row in reader:
                parsed: dict[str, _t.Any] = {}
                for col, cell in row.items():
                    if col is None or cell is None or cell == "":
                        continue
                    try:
                        parsed[col.strip()] = cell if col.strip() == "key" else _scalar(cell)
                    except YamlLimitError as exc:
                        where = f"line {reader.line_num}, column {col.strip()!r}"
                        problems.append(Problem(f"{where}: {exc.problem.message}", reader.line_num))
                out.append((f"{path.name} line {reader.line_num}", parsed))
            if problems:
                raise ModelError(problems, str(path), SCENARIOS)
            return out
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        return [(f"row {i + 1}", {k: v for k, v in row.items() if v is not None})
                for i, row in enumerate(table.to_pylist())]
    raise ModelError([Problem(f"unknown scenarios format {suffix!r}: use .yaml, .json, .csv or .parquet")],
                     str(path), SCENARIOS)


def _scalar(cell: str) -> _t.Any:
    """A CSV cell as a YAML value (``3`` -> 3, ``[1, 2]`` -> a list); text that is not YAML
    stays text. Raises ``YamlLimitError`` for a cell that is too large (e.g. an alias bomb)."""
    try:
        return load_value(cell)
    except YamlLimitError:
        raise
    except YamlSyntaxError:
        return cell


def load_scenarios(path: _t.Union[str, Path]) -> list[Scenario]:
    """Read a scenarios file; raise ``ModelError`` naming the row for a missing/duplicate key."""
    p = Path(path)
    if not p.exists():
        raise ModelError([Problem(f"scenarios file {p} does not exist")], str(p), SCENARIOS)
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    out: list[Scenario] = []
    for where, row in _rows(p):
        if not isinstance(row, dict):
            problems.append(Problem(f"{where}: expected a mapping with a 'key', got {type(row).__name__}"))
            continue
        key = row.get("key")
        if key is None or str(key) == "":
            close = difflib.get_close_matches("key", [str(c) for c in row if c != "key"], n=1, cutoff=0.5)
            hint = f" (is {close[0]!r} meant to be 'key'?)" if close else ""
            problems.append(Problem(f"{where}: no 'key'{hint} (each row names its model instance)"))
            continue
        if isinstance(key, (dict, list)):
            problems.append(Problem(f"{where}: 'key' must be a string or number, got {type(key).__name__}"))
            continue
        key = str(key)
        try:
            check_key(key)
        except InvalidKey as exc:
            problems.append(Problem(f"{where}: key {key[:40]!r}{'...' if len(key) > 40 else ''}: {exc}"))
            continue
        if key in seen:
            problems.append(Problem(f"{where}: duplicate key {key!r} (first at {seen[key]})"))
            continue
        seen[key] = where
        out.append(Scenario(key, {k: v for k, v in row.items() if k != "key"}, where))
    if not out and not problems:
        problems.append(Problem("the scenarios file has no rows"))
    if problems:
        raise ModelError(problems, str(p), SCENARIOS)
    return out


def instances(model: LoadedModel, scenarios: _t.Optional[_t.Sequence[Scenario]]) -> list[tuple[str, LoadedModel]]:
    """Each scenario's model (overrides applied and validated); all problems at once. (A run
    uses ``Instances``, which copies no model.)"""
    return [(sc.key, inst.model if not inst.changes else inst.model.with_overrides(sc.overrides))
            for sc, inst in Instances(model, scenarios)]


class Instances(_t.Sequence[tuple[Scenario, KeyModel]]):
    """The keys of a run and what each runs, made as the keys are run.

    Every scenario's overrides are checked when this is made, once, with every problem
    reported at once (``ModelError``: ``scenario 'k' (where): ...``) before any key runs. What
    a key keeps is small: the arguments its overrides set (``LoadedModel.arg_changes``), applied
    to the shared model as its components are constructed; only a scenario the quick check
    cannot take (seeds, fields the schema checks) keeps the model validated with it."""

    def __init__(self, model: LoadedModel, scenarios: _t.Optional[_t.Sequence[Scenario]]) -> None:
        self.model = model
        self.scenarios: _t.Sequence[Scenario] = scenarios or [Scenario(DEFAULT_KEY, {})]
        #: per scenario: the argument changes, or the model of its own
        self._resolved: list[_t.Union[_t.Mapping[str, _t.Mapping[str, _t.Any]], LoadedModel]] = []
        problems: list[Problem] = []
        first: dict[str, str] = {}
        for i, sc in enumerate(self.scenarios):
            where = sc.where or f"scenario {i + 1} of {len(self.scenarios)}"
            if sc.key in first:  # (a scenarios file says so on reading; scenarios given in code here)
                problems.append(Problem(f"scenario {sc.key!r} ({where}): the key is given twice "
                                        f"(first at {first[sc.key]}); keys must be unique"))
                continue
            first[sc.key] = where
            try:
                inst = model.resolve(sc.overrides)
            except ModelError as err:
                for p in err.problems:
                    problems.append(Problem(f"scenario {sc.key!r} ({sc.where}): {p.message}", p.line, p.element))
                continue
            self._resolved.append(inst.model if inst.model is not model else inst.changes)
        if problems:
            raise ModelError(problems, str(model.path))

    def __len__(self) -> int:
        return len(self.scenarios)

    @_t.overload
    def __getitem__(self, i: int) -> tuple[Scenario, KeyModel]: ...

    @_t.overload
    def __getitem__(self, i: slice) -> list[tuple[Scenario, KeyModel]]: ...

    def __getitem__(self, i: _t.Union[int, slice]) -> _t.Union[tuple[Scenario, KeyModel],
                                                               list[tuple[Scenario, KeyModel]]]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        resolved = self._resolved[i]
        inst = KeyModel(resolved) if isinstance(resolved, LoadedModel) else KeyModel(self.model, resolved)
        return self.scenarios[i], inst

    def __iter__(self) -> _t.Iterator[tuple[Scenario, KeyModel]]:
        for i in range(len(self.scenarios)):
            yield self[i]
