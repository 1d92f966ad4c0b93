"""What a model's data I/O is, found without Beam: its keyed readers (``KeyedRead``) and the
writers whose rows of many keys go to one sink (``SinkWrite``). ``--runner local`` uses this to
check a run and to find its keys without importing Beam."""

from __future__ import annotations

from dataclasses import dataclass
import typing as _t

from plugboard_beam.library.data import DataError
from plugboard_beam.library.file_io import FileReader, FileWriter, match_paths
from plugboard_beam.library.sql_io import SQLReader, SQLWriter, safe_url
from plugboard_beam.lowering.dataio.common import build_one
from plugboard_beam.spec.load import LoadedModel


@dataclass(frozen=True)
class KeyedRead:
    """A reader lowered to a Beam read (``reads.py``)."""

    name: str
    kind: str  # "file" or "sql"
    fields: tuple[str, ...]
    key_column: str
    order_by: _t.Optional[str]
    path: str = ""
    connection_string: str = ""
    query: str = ""
    params: tuple[tuple[str, _t.Any], ...] = ()
    connect_args: tuple[tuple[str, _t.Any], ...] = ()
    storage_options: tuple[tuple[str, _t.Any], ...] = ()  # a file read's fsspec options

    @property
    def what(self) -> str:
        """The source, for messages."""
        if self.kind == "file":
            return f"file {self.path!r}"
        return f"query {' '.join(self.query.split())[:200]!r} on {safe_url(self.connection_string)}"

    @property
    def columns(self) -> list[str]:
        """Columns to read: the fields, the key and the order."""
        extra = [c for c in (self.key_column, self.order_by) if c is not None and c not in self.fields]
        return [*self.fields, *extra]


@dataclass(frozen=True)
class SinkWrite:
    """A writer whose rows (all keys) go to one Beam sink."""

    name: str
    kind: str  # "file" or "sql"
    fields: tuple[str, ...]
    target: str  # path or table
    connection_string: str = ""
    connect_args: tuple[tuple[str, _t.Any], ...] = ()
    storage_options: tuple[tuple[str, _t.Any], ...] = ()  # a file sink's fsspec options


def keyed_reads(model: LoadedModel) -> list[KeyedRead]:
    """The model's readers given ``key_column``."""
    reads: list[KeyedRead] = []
    for name, klass in model.classes.items():
        if not issubclass(klass, (FileReader, SQLReader)):
            continue
        comp = build_one(model, name)
        if comp.key_column is None:
            continue
        fields = tuple(comp.io.outputs)
        if isinstance(comp, FileReader):
            reads.append(KeyedRead(name, "file", fields, comp.key_column, comp.order_by, path=comp.path,
                                   storage_options=tuple(comp.storage_options.items())))
        else:
            reads.append(KeyedRead(name, "sql", fields, comp.key_column, comp.order_by,
                                   connection_string=comp.connection_string, query=comp.query,
                                   params=tuple(comp.params.items()),
                                   connect_args=tuple(comp._connect_args.items())))
    return reads


def sink_writes(model: LoadedModel, n_instances: int, overridden: _t.Collection[str] = (),
                keyed: bool = False) -> list[SinkWrite]:
    """The writers whose rows go to one sink: all the file and SQL writers of a run of many keys
    (``n_instances`` > 1, or ``keyed`` reads) whose target has no ``{key}`` and whose arguments
    scenarios do not set (``overridden``: ``component.arg``)."""
    sinks: list[SinkWrite] = []
    if keyed or n_instances > 1:
        for name, klass in model.classes.items():
            if not issubclass(klass, (FileWriter, SQLWriter)):
                continue
            if any(o.split(".", 1)[0] == name for o in overridden):
                continue  # scenarios give each key its own arguments (path, table): it writes per key
            w = build_one(model, name)
            target = w.sink_target()
            if target is None:
                continue
            if isinstance(w, FileWriter):
                sinks.append(SinkWrite(name, "file", tuple(w.io.inputs), target,
                                       storage_options=tuple(w.storage_options.items())))
            else:
                sinks.append(SinkWrite(name, "sql", tuple(w.io.inputs), target,
                                       connection_string=w.connection_string,
                                       connect_args=tuple(w._connect_args.items())))
    return sinks


def file_paths(r: KeyedRead) -> list[str]:
    """The files of a file read: its path, or the files its glob matches (sorted)."""
    if not any(ch in r.path for ch in "*?["):
        return [r.path]
    paths = match_paths(r.path, dict(r.storage_options))
    if not paths:
        raise DataError(f"{r.what}: no file matches")
    return paths
