"""The Beam lowering of data readers and writers: one table feeding many model instances.

A ``FileReader`` / ``SQLReader`` given ``key_column`` is not run inside the stages (where every
key would open the whole table). It becomes a Beam read, outside the stages like a Pub/Sub
reader in streaming:

    Create(path) -> expand globs -> Parquet row groups -> Reshuffle -> read each row group
        (CSV: each file of the glob in one read; SQL: the query, streamed)
      -> (key, (order, values)) -> GroupByKey -> each key's rows in ``order_by`` (or file) order
      -> chunks (edge, start, values, ended) into the stages the reader feeds

so the keys come from the data (no scenarios needed) and workers read row groups in parallel.
A row without a key is reported as a failure of the reader (row and file named); the other
rows go on.

A ``FileWriter`` / ``SQLWriter`` of a many-key run (a keyed reader, or several instances), whose
path has no ``{key}``, hands its rows to the stage's output instead of writing them; here they
become one table with ``key`` and ``step`` columns: files sharded by key hash and written
deterministically (``levels-00000-of-00004.parquet``; a retried shard overwrites itself),
or batched inserts into the table (idempotent on ``(key, step)``, see ``SQLTable``). A key whose
rows the sink cannot store fails alone: a Parquet shard is written without the rows of a key
whose values do not fit a column with the others' (``_misfits``), a refused insert batch is
retried one key per transaction.

On the DirectRunner, whose engine holds every PCollection that crosses a shuffle in memory, a keyed
run whose data has more rows than ``--rows-per-wave`` runs in waves (``Wave``): the keys are split
into consecutive groups of at most that many rows (``plan_waves``, from one pass over the key
column, ``key_counts``), and each group runs as a pipeline of its own that keeps only its keys'
rows at the read. Memory then depends on the wave, not on the table; sink shards are numbered
across waves (``levels-00005-of-00012.parquet``).

In streaming (``--streaming``), a ``FileWriter``'s rows go to Beam's windowed file sink
(``WindowedFiles``): stamped with the time they were written, cut into fixed windows of the
writer's ``window_seconds``, and written by ``fileio.WriteToFiles`` once the watermark (the
wall clock, on the DirectRunner's Pub/Sub source) passes each window's end, one file set per
window, so a never-ending job produces readable files as it goes.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
import gzip
import logging
from operator import itemgetter
import os
import pickle
import time
import typing as _t
import zlib

import apache_beam as beam
from apache_beam.io.fileio import FileSink
from apache_beam.metrics.metric import Metrics

from plugboard_beam.graph.model import Edge
from plugboard_beam.library.data import DataError
from plugboard_beam.library.file_io import (
    FileReader,
    FileWriter,
    csv_text,
    file_format,
    key_typed,
    match_paths,
    open_binary,
    parquet_bytes,
    read_table,
)
from plugboard_beam.library.sql_io import RowsRefused, SQLReader, SQLTable, SQLWriter, safe_url, scrub, sync_url
from plugboard_beam.lowering.plan import Plan, Stage, chunk_tag, make_plan
from plugboard_beam.runtime.failure import Failure
from plugboard_beam.runtime.stage import encode_chunk
from plugboard_beam.spec.load import LoadedModel

log = logging.getLogger("plugboard_beam")

#: values per chunk sent from a keyed read into a stage
CHUNK = 1024
#: files a many-key file writer writes (rows spread by key hash)
SHARDS = 4
KEYS = "keys"
ERRORS = "errors"
RECORD = "record"
#: streaming: rows a windowed file writer left out (their key's values did not fit a column)
ROWS_LEFT_OUT = "file_rows_left_out"


@dataclass(frozen=True)
class KeyedRead:
    """A reader lowered to a Beam read."""

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


@dataclass(frozen=True)
class Wave:
    """The keys one pipeline of a keyed run reads: all of them (``keys`` None, one wave), or one of
    ``count`` consecutive groups of keys run one after the other (``plan_waves``). The last wave
    reads every key the earlier ones did not (``keys`` None, ``earlier`` theirs): a key that only
    appeared in the data after it was counted still runs."""

    index: int = 0
    count: int = 1
    keys: _t.Optional[frozenset[str]] = None
    #: rows of keyed data of these keys (0: not counted)
    rows: int = 0
    #: the keys of the earlier waves (the last wave reads every other key)
    earlier: frozenset[str] = frozenset()

    def has(self, value: _t.Any) -> bool:
        """Whether a row with this key column value is read in this wave. Rows without a key are
        read (and reported) in the first wave only."""
        if missing_key(value):
            return self.index == 0
        if self.keys is None:
            return str(value) not in self.earlier
        return str(value) in self.keys

    @property
    def filters(self) -> bool:
        """Whether this wave leaves some keys' rows out."""
        return self.keys is not None or bool(self.earlier)

    def shard(self, shard: int) -> tuple[int, int]:
        """(shard number, shards in all) of a sink writer's ``shard`` of this wave."""
        return self.index * SHARDS + shard, self.count * SHARDS


ALL_KEYS = Wave()


def missing_key(value: _t.Any) -> bool:
    """A key column value that is no key: null, NaN or empty text."""
    return value is None or (isinstance(value, float) and value != value) or str(value) == ""


def plan_waves(counts: _t.Mapping[str, int], rows_per_wave: int) -> list[Wave]:
    """Keys (in data order) with their row counts -> waves of consecutive keys of at most
    ``rows_per_wave`` rows each (a key with more rows than that is a wave of its own); one wave
    of all keys if they fit, or if ``rows_per_wave`` is 0."""
    groups: list[tuple[list[str], int]] = []
    keys: list[str] = []
    rows = 0
    for key, n in counts.items():
        if keys and rows_per_wave and rows + n > rows_per_wave:
            groups.append((keys, rows))
            keys, rows = [], 0
        keys.append(key)
        rows += n
    if keys:
        groups.append((keys, rows))
    if len(groups) <= 1:
        return [Wave(rows=sum(counts.values()))]
    waves = [Wave(i, len(groups), frozenset(ks), n) for i, (ks, n) in enumerate(groups[:-1])]
    earlier = frozenset(k for ks, _ in groups[:-1] for k in ks)
    return [*waves, Wave(len(groups) - 1, len(groups), None, groups[-1][1], earlier)]


def writer_tag(name: str) -> str:
    """The stage output tag of a sink writer's rows (the Pub/Sub writers' tag scheme)."""
    from plugboard_beam.lowering.beam import writer_tag as tag

    return tag(name)


def _build_one(model: LoadedModel, name: str) -> _t.Any:
    spec = model.component_specs()[name]
    kwargs: dict[str, _t.Any] = dict(spec.args.extra_args())
    kwargs["name"] = name
    try:
        return model.classes[name](**kwargs)
    except (ValueError, TypeError) as exc:  # an argument the constructor refuses: the user's to fix
        from plugboard_beam.exceptions import UserError

        raise UserError(f"component '{name}' ({model.classes[name].__name__}): the constructor raised "
                        f"{type(exc).__name__}: {exc}") from None


@dataclass(frozen=True)
class DataIO:
    """The keyed reads and sink writes of one model, and the plan with the reads outside."""

    plan: Plan
    reads: tuple[KeyedRead, ...]
    sinks: tuple[SinkWrite, ...]
    #: the keys this pipeline reads (all, or one wave of them)
    wave: Wave = ALL_KEYS
    #: PCollections of error rows (JSON lines) from reads and sinks; ``lower`` hands this very list
    #: to ``build``, which adds the stages' errors and writes them all
    error_rows: list[_t.Any] = field(default_factory=list)

    @classmethod
    def of(cls, model: LoadedModel, plan: Plan, n_instances: int,
           overridden: _t.Collection[str] = (), wave: Wave = ALL_KEYS) -> DataIO:
        """Find the keyed readers and the writers to turn into sinks. ``overridden``: the
        arguments scenarios override (``component.arg``); a keyed reader's are refused (it reads
        one table for all keys), a writer's keep it writing per key."""
        reads: list[KeyedRead] = []
        for name, klass in model.classes.items():
            if not issubclass(klass, (FileReader, SQLReader)):
                continue
            comp = _build_one(model, name)
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
        sinks: list[SinkWrite] = []
        if reads or n_instances > 1:
            for name, klass in model.classes.items():
                if not issubclass(klass, (FileWriter, SQLWriter)):
                    continue
                if any(o.split(".", 1)[0] == name for o in overridden):
                    continue  # scenarios give each key its own arguments (path, table): it writes per key
                w = _build_one(model, name)
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
        for r in reads:
            bad = sorted(o for o in overridden if o.split(".", 1)[0] == r.name)
            if bad:
                from plugboard_beam.exceptions import UserError

                raise UserError(f"scenarios override {', '.join(bad)}, but '{r.name}' has key_column: it reads "
                                "one table for every key, so its arguments cannot differ per key")
        if reads:
            external = (*plan.external, *(r.name for r in reads))
            plan = make_plan(plan.graph, plan.partition, external=external, cut=plan.cut)
        return cls(plan, tuple(reads), tuple(sinks), wave)

    # ------------------------------------------------------------------------ reads
    def read(self, pipeline: beam.Pipeline, keys: _t.Any,
             record: bool = False) -> tuple[dict[int, _t.Any], _t.Any, list[_t.Any], list[_t.Any]]:
        """Add the keyed reads: (edge id -> chunk PCollection, the keys PCollection, error rows,
        record tables: with ``record``, the rows each reader sends, as a component in a stage
        records what it sends).

        With keyed reads the keys are those found in the data (``keys`` is replaced)."""
        edges: dict[int, _t.Any] = {}
        errors = self.error_rows
        records: list[_t.Any] = []
        found = []
        graph = self.plan.graph
        for r in self.reads:
            out_edges = [e for e in graph.edges if e.source == r.name]
            rows = _rows(pipeline, r, self.wave)
            tags = [chunk_tag(e) for e in out_edges]
            grouped = (rows["rows"] | f"Group {r.name} by key" >> beam.GroupByKey()
                       | f"Chunks of {r.name}" >> beam.ParDo(_KeyChunks(r, out_edges, record)).with_outputs(
                           *tags, KEYS, RECORD, ERRORS))
            for e in out_edges:
                edges[e.id] = grouped[chunk_tag(e)]
            found.append(grouped[KEYS])
            errors += [rows[ERRORS], grouped[ERRORS]]
            if record:
                records.append(grouped[RECORD])
        if found:
            keys = (tuple(found) | "Keys from data" >> beam.Flatten()
                    | "Distinct keys" >> beam.Distinct())
        return edges, keys, errors, records

    # ----------------------------------------------------------------------- writes
    def writers(self, stage: Stage) -> tuple[str, ...]:
        """The sink writers run by ``stage`` (their rows leave it on ``writer_tag``)."""
        return tuple(s.name for s in self.sinks if s.name in stage.members)

    def tags(self, stage: Stage) -> tuple[str, ...]:
        """Output tags ``stage`` needs for its sink writers."""
        return tuple(writer_tag(n) for n in self.writers(stage))

    def write(self, stage: Stage, outs: _t.Any) -> None:
        """Add the sinks of ``stage``'s writers."""
        for s in self.sinks:
            if s.name not in stage.members:
                continue
            batches = outs[writer_tag(s.name)]  # lists of one key's (key, step, values) rows
            if s.kind == "sql":
                failed = batches | f"Insert {s.name}" >> beam.ParDo(_InsertRows(s))
            else:
                sharded = batches | f"Shard {s.name}" >> beam.ParDo(_ShardBatch(s)).with_outputs(ERRORS, main="rows")
                failed = (sharded["rows"] | f"Group {s.name} shards" >> beam.GroupByKey()
                          | f"Write {s.name}" >> beam.FlatMap(_write_shard, s, self.wave))
                self.error_rows.append(sharded[ERRORS])
            self.error_rows.append(failed)


def lower(
    pipeline: beam.Pipeline, model: LoadedModel, plan: Plan, instances: _t.Sequence[tuple[str, _t.Any]], keys: _t.Any,
    wave: Wave = ALL_KEYS, record: bool = False,
) -> tuple[DataIO, dict[int, _t.Any], _t.Any, list[_t.Any], list[_t.Any]]:
    """The hook of ``lowering.beam.build``: the data I/O of the model, the chunk PCollections of
    keyed reads by edge id, the keys to start stages with, error rows to report, and (with
    ``record``) the record tables of keyed reads. ``wave``: the keys whose rows keyed reads keep
    (all by default)."""
    overridden = {name for _, o in instances for name in (o or {})}
    io = DataIO.of(model, plan, len(instances), overridden, wave)
    edges, keys, errors, records = io.read(pipeline, keys, record)
    return io, edges, keys, errors, records


# ------------------------------------------------------------------------- read transforms
def _error_row(r: KeyedRead, message: str, row: int = 0, key: str = "") -> str:
    """A read failure; ``message`` is prefixed with the source unless it names it already."""
    reason = message if message.startswith(r.what) else f"{r.what}: {message}"
    return Failure(key=key, component=r.name, step=row, phase="read", error_type="DataError",
                   reason=reason).to_json()


def _rows(pipeline: beam.Pipeline, r: KeyedRead, wave: Wave) -> _t.Any:
    """(key, (order, values)) per row of ``wave``'s keys, and error rows."""
    start = pipeline | f"Source {r.name}" >> beam.Create([r])
    if r.kind == "file" and file_format(r.path) == ".parquet":
        parts = (start | f"Row groups of {r.name}" >> beam.FlatMap(_row_groups)
                 | f"Spread {r.name}" >> beam.Reshuffle())
    elif r.kind == "file":  # CSV: each file a part (a glob's files are read in parallel)
        parts = (start | f"Files of {r.name}" >> beam.FlatMap(_csv_files)
                 | f"Spread {r.name}" >> beam.Reshuffle())
    else:
        parts = start | f"Query {r.name}" >> beam.Map(lambda x: (x, 0, "", -1, ""))
    return parts | f"Read {r.name}" >> beam.ParDo(_ReadPart(wave)).with_outputs(ERRORS, main="rows")


def _csv_files(r: KeyedRead) -> _t.Iterator[_t.Any]:
    """(read, file index, path, -1, "") for every file a CSV read's path (or glob) matches, or
    (read, 0, "", -1, error message)."""
    try:
        paths = _file_paths(r)
    except DataError as exc:
        yield (r, 0, "", -1, str(exc).removeprefix(f"{r.what}: "))
        return
    for i, path in enumerate(paths):
        yield (r, i, path, -1, "")


def _row_groups(r: KeyedRead) -> _t.Iterator[_t.Any]:
    """(read, file index, path, row group, "") for every row group of every matching file, or
    (read, 0, "", -1, error message)."""
    import pyarrow.parquet as pq

    from plugboard_beam.library.file_io import check_gcs_access

    try:
        check_gcs_access(r.path, f"{r.what}")
        for i, path in enumerate(_file_paths(r)):
            if "://" not in path:
                meta = pq.ParquetFile(path).metadata
            else:
                with open_binary(path, dict(r.storage_options)) as f:
                    meta = pq.ParquetFile(f).metadata
            for g in range(meta.num_row_groups):
                yield (r, i, path, g, "")
    except FileNotFoundError:
        yield (r, 0, "", -1, "no such file")
    except DataError as exc:
        yield (r, 0, "", -1, str(exc).removeprefix(f"{r.what}: "))
    except Exception as exc:
        yield (r, 0, "", -1, f"cannot be read: {type(exc).__name__}: {exc}")


def _file_paths(r: KeyedRead) -> list[str]:
    """The files of a file read: its path, or the files its glob matches (sorted)."""

    if not any(ch in r.path for ch in "*?["):
        return [r.path]
    paths = match_paths(r.path, dict(r.storage_options))
    if not paths:
        raise DataError(f"{r.what}: no file matches")
    return paths


class _ReadPart(beam.DoFn):
    """Reads one part (a Parquet row group, a whole CSV file, the SQL query) as keyed rows of the
    wave's keys."""

    def __init__(self, wave: Wave = ALL_KEYS) -> None:
        self.wave = wave

    def process(self, part: _t.Any) -> _t.Iterator[_t.Any]:
        r, file_index, path, group, error = part
        if error:
            if self.wave.index == 0:
                yield beam.pvalue.TaggedOutput(ERRORS, _error_row(r, error))
            return
        try:
            yield from self._rows(r, file_index, path, group)
        except DataError as exc:
            if self.wave.index == 0:  # every wave reads the same parts: reported once
                yield beam.pvalue.TaggedOutput(ERRORS, _error_row(r, str(exc)))

    def _rows(self, r: KeyedRead, file_index: int, path: str, group: int) -> _t.Iterator[_t.Any]:
        cols = r.columns
        k = cols.index(r.key_column)
        batches: _t.Iterator[Batch]
        if r.kind == "sql":
            batches = (_python_batch([list(c) for c in zip(*part, strict=True)] if part else [[] for _ in cols],
                                     k, self.wave) for part in _sql_rows(r, cols))
        elif group >= 0:
            batches = iter([_arrow_batch(_parquet_group(r, path, group, cols), cols, k, self.wave)])
        else:
            what = r.what if path in ("", r.path) else f"{r.what} (file {path!r})"
            table = read_table(path or r.path, what, cols, dict(r.storage_options))
            batches = iter([_arrow_batch(table, cols, k, self.wave)])
        o = cols.index(r.order_by) if r.order_by is not None else None
        nf = len(r.fields)
        csv_file = r.kind == "file" and group < 0
        row = 0
        for columns, numbers, n_read in batches:
            # one element per key per batch (not per row), columnar (lists of plain values pickle
            # compactly): (file index, row group, row numbers, order values or None, field columns)
            number: _t.Sequence[int] = range(len(columns[k]) if columns else 0) if numbers is None else numbers
            groups: defaultdict[_t.Any, list[int]] = defaultdict(list)
            try:
                for i, key in enumerate(columns[k]):  # the per-row loop: one dict lookup per row
                    groups[key].append(i)
            except TypeError:  # unhashable values (a list column): grouped by their text
                groups.clear()
                for i, key in enumerate(columns[k]):
                    groups[key if key is None or isinstance(key, (str, int, float)) else str(key)].append(i)
            per_key: dict[str, list[int]] = {}
            missing: list[int] = []
            for key, idx in groups.items():  # per distinct value
                if missing_key(key):
                    missing += idx
                elif str(key) in per_key:  # e.g. True and "True": one key, rows in file order
                    per_key[str(key)] = sorted(per_key[str(key)] + idx)
                else:
                    per_key[str(key)] = idx
            for i in sorted(missing):
                where = (f"row {row + number[i]} (counting from 0)" + (f" of row group {group}" if group >= 0 else "")
                         + (f" of file {path!r}" if path not in ("", r.path) else ""))
                yield beam.pvalue.TaggedOutput(ERRORS, _error_row(
                    r, f"{where} has no {r.key_column!r} (the key column)", row + number[i]))
            for key, idx in per_key.items():
                orders = [columns[o][i] for i in idx] if o is not None else None
                # the part's row numbers, order values and field columns cross the GroupByKey as
                # one pickle (a row's values are plain data read from a file or a query)
                fields = [[columns[f][i] for i in idx] for f in range(nf)]
                if csv_file:  # text typed as the key's own file would be (issue 15)
                    fields = [key_typed(v) for v in fields]
                payload = pickle.dumps(([row + number[i] for i in idx], orders, fields),
                                       protocol=pickle.HIGHEST_PROTOCOL)
                yield key, (file_index, group, row + number[idx[0]], payload)
            row += n_read


#: a batch of read rows: (columns as lists, the row number in the part of each kept row or None
#: if every row was kept, the number of rows read)
Batch = tuple[list[list[_t.Any]], _t.Optional[list[int]], int]


def _python_batch(columns: list[list[_t.Any]], k: int, wave: Wave) -> Batch:
    """The rows of ``wave``'s keys (``k``: the key column's index)."""
    n = len(columns[k]) if columns else 0
    if not wave.filters:
        return columns, None, n
    kept = [i for i, key in enumerate(columns[k]) if wave.has(key)]
    return [[c[i] for i in kept] for c in columns], kept, n


def _arrow_batch(table: _t.Any, cols: list[str], k: int, wave: Wave) -> Batch:
    """An Arrow table's rows of ``wave``'s keys as Python lists: filtered in Arrow (one membership
    test per row against the wave's distinct values), so a wave decodes only its own rows."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not wave.filters:
        return [table.column(c).to_pylist() for c in cols], None, table.num_rows
    column = table.column(cols[k])
    try:
        chosen = [v for v in pc.unique(column).to_pylist() if wave.has(v)]
        mask = pc.is_in(column, value_set=pa.array(chosen, type=column.type), skip_nulls=False)
    except (pa.ArrowException, TypeError):  # e.g. a nested key column: test the rows in Python
        return _python_batch([table.column(c).to_pylist() for c in cols], k, wave)
    kept = pc.indices_nonzero(mask).to_pylist()
    table = table.filter(mask)
    return [table.column(c).to_pylist() for c in cols], kept, len(mask)


def _parquet_group(r: KeyedRead, path: str, group: int, cols: list[str]) -> _t.Any:
    import pyarrow.parquet as pq

    try:
        if "://" not in path:
            pf = pq.ParquetFile(path)
            t = pf.read_row_group(group, columns=None, use_threads=False)
        else:
            with open_binary(path, dict(r.storage_options)) as f:
                t = pq.ParquetFile(f).read_row_group(group, use_threads=False)
    except Exception as exc:
        raise DataError(f"{r.what}: cannot be read: {type(exc).__name__}: {exc}") from None
    missing = [c for c in cols if c not in t.column_names]
    if missing:
        raise DataError(f"{r.what}: no column(s) {missing} (it has {t.column_names})")
    return t


def _sql_rows(r: KeyedRead, cols: list[str]) -> _t.Iterator[list[tuple[_t.Any, ...]]]:
    from sqlalchemy import create_engine, text

    try:
        engine = create_engine(sync_url(r.connection_string), **dict(r.connect_args))
    except Exception as exc:
        raise DataError(f"{r.what}: cannot use the database: {type(exc).__name__}: "
                        f"{scrub(str(exc), r.connection_string)}") from None
    try:
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True).execute(text(r.query), dict(r.params))
            have = list(result.keys())
            missing = [c for c in cols if c not in have]
            if missing:
                raise DataError(f"{r.what}: no column(s) {missing} (it has {have})")
            pos = [have.index(c) for c in cols]
            for part in result.partitions(CHUNK * 8):
                yield [tuple(row[i] for i in pos) for row in part]
    except DataError:
        raise
    except Exception as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise DataError(f"{r.what}: {type(exc).__name__}: "
                        f"{scrub(detail[0], r.connection_string) if detail else ''}") from None
    finally:
        engine.dispose()


class _KeyChunks(beam.DoFn):
    """One key's rows, in order, as chunks into every edge leaving the reader (and, with
    ``record``, as record rows: step ``i`` is the key's ``i``-th row)."""

    def __init__(self, r: KeyedRead, out_edges: _t.Sequence[Edge], record: bool = False) -> None:
        self.r = r
        self.routes = [(r.fields.index(e.source_field), e, chunk_tag(e)) for e in out_edges]
        self.record = record

    def process(self, element: tuple[str, _t.Iterable[_t.Any]]) -> _t.Iterator[_t.Any]:
        key, parts = element
        # parts in file order (file, row group, first row); a stable sort by the order column
        # keeps file order among equal values
        ordered = [pickle.loads(part[3]) for part in sorted(parts, key=itemgetter(0, 1, 2))]
        columns = [[v for part in ordered for v in part[2][f]] for f in range(len(self.r.fields))]
        n = len(columns[0]) if columns else sum(len(part[0]) for part in ordered)
        if self.r.order_by is not None:
            sort_keys = [(v is None, v) for part in ordered for v in part[1]]
            perm = sorted(range(n), key=sort_keys.__getitem__)
            columns = [[col[i] for i in perm] for col in columns]
        if self.record:
            from plugboard_beam.exceptions import StepError
            from plugboard_beam.lowering.records import RecordBuffer

            buffer = RecordBuffer()
            buffer.key = key
            tables = []
            try:
                for field_index, edge, _ in self.routes:
                    for i, value in enumerate(columns[field_index]):
                        buffer(edge, i, value)
                        if buffer.full():
                            tables.append(buffer.take())
            except StepError as err:  # a value JSON cannot hold: the key fails, named (no chunks)
                yield beam.pvalue.TaggedOutput(ERRORS, Failure.of(err).to_json())
                return
            tables.append(buffer.take())
            for table in tables:
                if table is not None:
                    yield beam.pvalue.TaggedOutput(RECORD, table)
        yield beam.pvalue.TaggedOutput(KEYS, key)
        for field_index, edge, tag in self.routes:
            col = columns[field_index]
            for start in range(0, max(n, 1), CHUNK):
                chunk = (edge.id, start, col[start:start + CHUNK], start + CHUNK >= n)
                yield beam.pvalue.TaggedOutput(tag, (key, encode_chunk(chunk)))


# ------------------------------------------------------------------------ write transforms
def _shard_path(target: str, shard: int, wave: Wave = ALL_KEYS) -> str:
    fmt = file_format(target)
    stem = target[: -len(fmt)]
    number, count = wave.shard(shard)
    return f"{stem}-{number:05d}-of-{count:05d}{fmt}"


def _sink_error(s: SinkWrite, message: str, keys: _t.Iterable[str]) -> str:
    ks = sorted(set(keys))
    head = ", ".join(repr(k) for k in ks[:5]) + (f" and {len(ks) - 5} more" if len(ks) > 5 else "")
    return Failure(key="", component=s.name, step=0, phase="write", error_type="DataError",
                   reason=f"the rows of key(s) {head}: {message}").to_json()


Row = tuple[str, int, tuple[_t.Any, ...]]


class _ShardBatch(beam.DoFn):
    """A batch of one key's rows -> (shard, (key, first step, the rows pickled once)): the rows
    cross the shard GroupByKey as bytes. A batch that cannot be pickled fails its key, named."""

    def __init__(self, s: SinkWrite) -> None:
        self.s = s

    def process(self, batch: list[Row]) -> _t.Iterator[_t.Any]:
        if not batch:
            return
        key, step = batch[0][0], batch[0][1]
        try:
            data = pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            yield beam.pvalue.TaggedOutput(ERRORS, Failure(
                key=key, component=self.s.name, step=step, phase="write", error_type=type(exc).__name__,
                reason=f"a row cannot be handed to the file sink: {exc}").to_json())
            return
        yield zlib.crc32(key.encode()) % SHARDS, (key, step, data)


def _write_shard(element: tuple[int, _t.Iterable[tuple[str, int, bytes]]], s: SinkWrite,
                 wave: Wave = ALL_KEYS) -> _t.Iterator[str]:
    """Write one shard (its rows sorted by key and step); yields error rows for what it cannot
    write. A key whose values do not fit a Parquet column with the other keys' values (text
    where the others have numbers...) fails alone: the shard is written without its rows."""
    shard, batches = element
    # a batch is one key's rows of consecutive steps and batches of a key never overlap: sorting
    # the batches by their first (key, step) orders the rows
    ordered: list[Row] = [r for b in sorted(batches, key=itemgetter(0, 1)) for r in pickle.loads(b[2])]
    path = _shard_path(s.target, shard, wave)
    what = f"file {path!r}"
    try:
        _write_rows(s, ordered, path, what)
    except (DataError, *TEXT_ERRORS) as exc:
        misfits = _misfits(s.fields, ordered) if file_format(s.target) == ".parquet" else {}
        # a value no file can hold as text (a 5,000-digit int, ...): its key's rows fail alone
        misfits.update(_unwritable(ordered, misfits, lambda rows: _rows_bytes(s.fields, s.target, rows, what)))
        if not misfits:
            yield _sink_error(s, f"{type(exc).__name__}: {exc}" if not isinstance(exc, DataError) else str(exc),
                              (r[0] for r in ordered))
            return
        kept = [r for r in ordered if r[0] not in misfits]
        for key, (step, reason) in misfits.items():
            yield Failure(key=key, component=s.name, step=step, phase="write", error_type="DataError",
                          reason=f"{what}: {reason}; the key's rows were left out of the file (the other "
                                 "keys' were written)").to_json()
        try:
            _write_rows(s, kept, path, what)
        except (DataError, *TEXT_ERRORS) as again:
            yield _sink_error(s, str(again), (r[0] for r in kept))


#: what encoding a value as file text or Parquet raises for a value it cannot hold (an int over
#: Python's 4300-digit str limit, or too large for a float column, a value nested too deep)
TEXT_ERRORS = (ValueError, TypeError, OverflowError, RecursionError)


def _unwritable(rows: _t.Sequence[Row], known: _t.Mapping[str, tuple[int, str]],
                encode: _t.Callable[[_t.Sequence[Row]], bytes]) -> dict[str, tuple[int, str]]:
    """The keys (other than ``known``) whose rows cannot be encoded even alone: (first step,
    reason). Only called after encoding the whole shard failed."""
    by_key: dict[str, list[Row]] = {}
    for r in rows:
        if r[0] not in known:
            by_key.setdefault(r[0], []).append(r)
    out: dict[str, tuple[int, str]] = {}
    for key, own in by_key.items():
        try:
            encode(own)
        except (DataError, *TEXT_ERRORS) as exc:
            step = own[0][1]
            for r in own:  # the first row that fails alone, when one does
                try:
                    encode([r])
                except (DataError, *TEXT_ERRORS):
                    step = r[1]
                    break
            out[key] = (step, f"a value cannot be written ({type(exc).__name__}: {str(exc)[:300]})")
    return out


def _rows_bytes(fields: _t.Sequence[str], target: str, rows: _t.Sequence[Row], what: str) -> bytes:
    names = ["key", "step", *fields]
    columns: list[list[_t.Any]] = [[r[0] for r in rows], [r[1] for r in rows]]
    columns += [[r[2][i] for r in rows] for i in range(len(fields))]
    if file_format(target) == ".parquet":
        return parquet_bytes(names, columns, what)
    return csv_text(names, columns, header=True).encode()


def _write_rows(s: SinkWrite, rows: _t.Sequence[Row], path: str, what: str) -> None:
    from plugboard_beam.library.file_io import write_bytes

    write_bytes(path, _rows_bytes(s.fields, s.target, rows, what), what, dict(s.storage_options))


def _kind(value: _t.Any) -> _t.Optional[str]:
    """What Parquet stores a value as, coarsely: numbers (int and float mix), text, ...; None for
    a missing value (it fits any column)."""
    from plugboard_beam.library.data import is_missing, plain

    value = plain(value)
    if is_missing(value):
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def _misfits(fields: _t.Sequence[str], rows: _t.Sequence[Row]) -> dict[str, tuple[int, str]]:
    """The keys whose rows do not fit a Parquet column with the rest: (first such step, reason).
    A column takes the kind most of its rows have; a key with values of another kind, or whose
    own values Parquet cannot store together, is a misfit."""
    import pyarrow as pa

    from plugboard_beam.library.data import plain

    by_key: dict[str, list[Row]] = {}
    for r in rows:
        by_key.setdefault(r[0], []).append(r)
    misfits: dict[str, tuple[int, str]] = {}
    for i, name in enumerate(fields):
        weight: dict[str, int] = {}
        for r in rows:
            kind = _kind(r[2][i])
            if kind is not None:
                weight[kind] = weight.get(kind, 0) + 1
        if not weight:
            continue
        kind = max(sorted(weight), key=weight.__getitem__)
        for key, own in by_key.items():
            if key in misfits:
                continue
            odd = next((r for r in own if _kind(r[2][i]) not in (None, kind)), None)
            if odd is not None:
                misfits[key] = (odd[1], f"column {name!r} gets a {type(plain(odd[2][i])).__name__} at this step "
                                        f"where the other rows hold {kind} values")
                continue
            try:
                pa.array([plain(r[2][i]) for r in own])
            except (pa.ArrowException, TypeError, ValueError) as exc:
                misfits[key] = (own[0][1], f"column {name!r}: the key's values cannot be stored together ({exc})")
    return misfits


class _InsertRows(beam.DoFn):
    """Batched inserts of a many-key SQLWriter (one transaction per batch)."""

    BATCH = 500

    def __init__(self, s: SinkWrite) -> None:
        self.s = s

    def setup(self) -> None:
        s = self.s
        self.table = SQLTable(s.connection_string, s.target, dict(s.connect_args), s.fields,
                              f"table {s.target!r} on {safe_url(s.connection_string)}", need_key=True)
        self.batch: list[tuple[str, int, tuple[_t.Any, ...]]] = []

    def start_bundle(self) -> None:
        self.batch = []

    def process(self, rows: list[tuple[str, int, tuple[_t.Any, ...]]]) -> _t.Iterator[str]:
        self.batch.extend(rows)
        if len(self.batch) >= self.BATCH:
            yield from self._flush()

    def finish_bundle(self) -> _t.Iterator[_t.Any]:
        from apache_beam.transforms.window import GlobalWindow
        from apache_beam.utils.windowed_value import WindowedValue

        for row in self._flush():
            yield WindowedValue(row, 0, (GlobalWindow(),))

    def _flush(self) -> _t.Iterator[str]:
        batch, self.batch = self.batch, []
        if not batch:
            return
        try:
            self.table.insert(batch)
            return
        except DataError as exc:
            keys = sorted({r[0] for r in batch})
            if len(keys) == 1 or not isinstance(exc, RowsRefused):  # unreachable, no table: all fail
                yield _sink_error(self.s, str(exc), keys)
                return
        # one key's rows broke the batch (one transaction): each key's rows in a transaction of
        # their own, so that only the keys whose rows the table refuses fail
        for key in keys:
            try:
                self.table.insert([r for r in batch if r[0] == key])
            except DataError as exc:
                step = min(r[1] for r in batch if r[0] == key)
                yield Failure(key=key, component=self.s.name, step=step, phase="write", error_type="DataError",
                              reason=f"{exc} (the key's rows from step {step} in one insert; the other keys' "
                                     "rows were inserted)").to_json()

    def teardown(self) -> None:
        self.table.close()


# ------------------------------------------------------------------ streaming: windowed files
@dataclass(frozen=True)
class WindowedWrite:
    """A ``FileWriter`` of a streaming run: its rows (all keys) go to one file set per window."""

    name: str
    fields: tuple[str, ...]
    path: str  # may hold {key} in its file name: then each key has its own files
    window_seconds: float

    @property
    def folder(self) -> str:
        """The directory the files go to."""
        from apache_beam.io.filesystems import FileSystems

        folder: str = FileSystems.split(self.path)[0]
        return folder or "."

    @property
    def stem(self) -> str:
        """The file name without its format (``{key}`` still in it)."""
        from apache_beam.io.filesystems import FileSystems

        name: str = FileSystems.split(self.path)[1]
        return name[: -len(file_format(name))]


def windowed_writes(model: LoadedModel, overridden: _t.Collection[str] = ()) -> dict[str, WindowedWrite]:
    """The model's ``FileWriter``s as windowed writes (for ``--streaming``). ``overridden``: the
    arguments scenarios override (``component.arg``): a writer's are refused (its files are
    written for all keys at once; put ``{key}`` in its file name for files per key)."""
    from plugboard_beam.exceptions import UserError

    out: dict[str, WindowedWrite] = {}
    for name, klass in model.classes.items():
        if not issubclass(klass, FileWriter):
            continue
        bad = sorted(o for o in overridden if o.split(".", 1)[0] == name)
        if bad:
            raise UserError(f"--streaming: scenarios override {', '.join(bad)}, but '{name}' (FileWriter) "
                            "writes the files of every key together, one set per window; put {key} in its "
                            "file name to give each key its own files")
        w = _build_one(model, name)
        ww = WindowedWrite(name, tuple(w.io.inputs), w.path, w.window_seconds)
        if "{key}" in ww.folder:
            raise UserError(f"--streaming: '{name}' (FileWriter) path {w.path!r}: {{key}} may only appear in "
                            "the file name in a streaming run (the files of a window are written to one folder)")
        out[name] = ww
    return out


class WindowedFiles(beam.PTransform):  # type: ignore[type-arg]
    """A streaming ``FileWriter``'s row batches -> windowed files through ``fileio.WriteToFiles``.

    Rows are stamped with the wall-clock time they reach the sink (processing time: a row is
    in the window in which it was written), windowed with ``FixedWindows(window_seconds)``;
    ``WriteToFiles`` writes each bundle's rows of a window to a temporary file and, when the
    window closes, moves them to ``<stem>-<window start>-<window end>-<i>-of-<n><format>``.
    """

    def __init__(self, w: WindowedWrite) -> None:
        super().__init__()
        self.w = w

    def expand(self, batches: _t.Any) -> _t.Any:
        from apache_beam.io import fileio
        from apache_beam.transforms.window import FixedWindows

        w = self.w
        fmt = file_format(w.path)
        return (batches
                | "Stamp rows" >> beam.FlatMap(_stamped)
                | "Window rows" >> beam.WindowInto(FixedWindows(w.window_seconds))
                | "Write files" >> fileio.WriteToFiles(
                    path=w.folder, destination=_Destination(w), sink=_SinkOf(w),
                    file_naming=fileio.destination_prefix_naming(fmt)))


def _stamped(batch: list[tuple[str, int, tuple[_t.Any, ...]]]) -> _t.Iterator[_t.Any]:
    from apache_beam.transforms.window import TimestampedValue

    now = time.time()
    for row in batch:
        yield TimestampedValue(row, now)


class _Destination:
    """The file name stem of a row: the writer's, with ``{key}`` replaced by the safe key."""

    def __init__(self, w: WindowedWrite) -> None:
        self.stem = w.stem

    def __call__(self, row: tuple[str, int, tuple[_t.Any, ...]]) -> str:
        if "{key}" not in self.stem:
            return self.stem
        from plugboard_beam.spec.keys import substitute_key

        return substitute_key(self.stem, row[0])


class _SinkOf:
    """A new ``_RowSink`` per file (a sink object is never shared between windows)."""

    def __init__(self, w: WindowedWrite) -> None:
        self.w = w

    def __call__(self, destination: str) -> _t.Any:
        return _RowSink(self.w)


class _RowSink(FileSink):
    """One window file: rows buffered, written on ``flush`` with the batch writer's formatting
    (``key``, ``step``, then the fields; CSV as pandas writes it, gzip for ``.csv.gz``, Parquet)."""

    def __init__(self, w: WindowedWrite) -> None:
        self.w = w
        self.rows: list[tuple[str, int, tuple[_t.Any, ...]]] = []
        self.fh: _t.Any = None

    def open(self, fh: _t.Any) -> None:
        self.fh = fh
        self.rows = []

    def write(self, record: tuple[str, int, tuple[_t.Any, ...]]) -> None:
        self.rows.append(record)

    def flush(self) -> None:
        w = self.w
        rows = sorted(self.rows, key=itemgetter(0, 1))
        self.rows = []
        what = f"file writer '{w.name}' (streaming files of {w.path!r})"
        try:
            data = self._encode(rows, what)
        except (DataError, *TEXT_ERRORS):
            # a key whose values do not fit a Parquet column with the others' (or that no file
            # can hold as text) is left out of the window's file, logged (writer, key, step,
            # reason) and counted; the rest is written
            misfits = _misfits(w.fields, rows)
            misfits.update(_unwritable(rows, misfits, lambda part: self._encode(part, what)))
            for key, (step, reason) in misfits.items():
                log.error("%s: key %r, step %d: %s; the key's rows of this window were left out of its file",
                          what, key, step, reason)
            kept = [r for r in rows if r[0] not in misfits]
            Metrics.counter("plugboard_beam", ROWS_LEFT_OUT).inc(len(rows) - len(kept))
            data = self._encode(kept, what)  # still failing: the job fails, loudly
        self.fh.write(data)

    def _encode(self, rows: _t.Sequence[Row], what: str) -> bytes:
        w = self.w
        names = ["key", "step", *w.fields]
        columns: list[list[_t.Any]] = [[r[0] for r in rows], [r[1] for r in rows]]
        columns += [[r[2][i] for r in rows] for i in range(len(w.fields))]
        fmt = file_format(w.path)
        if fmt == ".parquet":
            return parquet_bytes(names, columns, what)
        data = csv_text(names, columns, header=True).encode()
        return gzip.compress(data, mtime=0) if fmt == ".csv.gz" else data


__all__ = ["ALL_KEYS", "DataIO", "KeyedRead", "SinkWrite", "Wave", "WindowedFiles", "WindowedWrite", "data_keys",
           "key_counts", "lower", "missing_key", "plan_waves", "refuse_in_streaming", "windowed_writes"]


def refuse_in_streaming(model: LoadedModel) -> None:
    """Data readers are batch-only: raise ``UserError`` naming them (for the streaming runner's
    option check). A never-ending job has no end of a file or query to wait for; replay a
    history in batch, or publish it to the reader's topic."""
    from plugboard_beam.exceptions import UserError
    from plugboard_beam.library.data import DataReader

    readers = [n for n, c in model.classes.items() if issubclass(c, DataReader)]
    if readers:
        lines = {c.args.name: c for c in model.config.plugboard.process.args.components}
        where = ", ".join(f"'{n}' ({lines[n].type})" for n in readers)
        raise UserError(f"--streaming: data reader(s) {where} read a file or query once, which a streaming "
                        "job cannot do; run it in batch (without --streaming), or feed the model through a "
                        "PubSubReader")


def key_counts(model: LoadedModel) -> _t.Optional[dict[str, int]]:
    """The keys found in the data of the model's keyed readers, in first appearance order, with
    their numbers of rows (summed over the readers), or ``None`` if it has none. One pass over
    each reader's key column, in this process; a missing file or table raises ``DataError``."""
    import pyarrow.compute as pc

    from plugboard_beam.library.sql_io import _engine

    reads = DataIO.of(model, make_plan(model.graph), 1).reads
    if not reads:
        return None
    counts: dict[str, int] = {}
    for r in reads:
        pairs: list[tuple[_t.Any, int]]
        if r.kind == "file":
            pairs = []
            for path in _file_paths(r):
                for column in _key_column(r, path):
                    try:
                        vc = pc.value_counts(column)
                        pairs += zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True)
                    except Exception:  # a nested key column: counted in Python
                        pairs += [(v, 1) for v in column.to_pylist()]
        else:
            from sqlalchemy import text

            engine = _engine(r.connection_string, dict(r.connect_args), r.what)
            try:
                with engine.connect() as conn:
                    result = conn.execute(text(r.query), dict(r.params))
                    names = list(result.keys())
                    if r.key_column not in names:
                        raise DataError(f"{r.what}: no column(s) {[r.key_column]} (it has {names})")
                    i = names.index(r.key_column)
                    pairs = [(row[i], 1) for row in result]
            finally:
                engine.dispose()
        for value, n in pairs:
            if not missing_key(value):
                counts[str(value)] = counts.get(str(value), 0) + n
    return counts


def _key_column(r: KeyedRead, path: str) -> _t.Iterator[_t.Any]:
    """A file's key column in parts: a Parquet file's row groups one at a time (memory does not
    grow with the file), a CSV file whole."""
    if file_format(path) != ".parquet":
        yield read_table(path, r.what, [r.key_column], dict(r.storage_options)).column(r.key_column)
        return
    import pyarrow.parquet as pq

    from plugboard_beam.library.file_io import check_gcs_access, is_local

    check_gcs_access(path, r.what)
    if is_local(path) and not os.path.exists(path):
        raise DataError(f"{r.what}: no such file")
    try:
        with open_binary(path, dict(r.storage_options)) as f:
            pf = pq.ParquetFile(f)
            if r.key_column not in pf.schema_arrow.names:
                raise DataError(f"{r.what}: no column(s) {[r.key_column]} (it has {pf.schema_arrow.names})")
            for g in range(pf.metadata.num_row_groups):
                yield pf.read_row_group(g, columns=[r.key_column], use_threads=False).column(0)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{r.what}: cannot be read: {type(exc).__name__}: {exc}") from None


def data_keys(model: LoadedModel) -> _t.Optional[list[str]]:
    """The keys found in the data of the model's keyed readers (first appearance order), or
    ``None`` if it has none: what a runner without Beam (``--runner local``) can run when no
    scenarios are given. Reads the key columns in this process."""
    counts = key_counts(model)
    return None if counts is None else list(counts)
