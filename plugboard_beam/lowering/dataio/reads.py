"""Keyed reads: a ``FileReader`` / ``SQLReader`` with ``key_column`` as a Beam read whose rows
become each key's chunks into the stages."""

from __future__ import annotations

from collections import defaultdict
from operator import itemgetter
import pickle
import typing as _t

import apache_beam as beam

from plugboard_beam.exceptions import StepError
from plugboard_beam.graph.model import Edge
from plugboard_beam.library.data import DataError
from plugboard_beam.library.file_io import (
    check_gcs_access,
    file_format,
    key_typed,
    open_binary,
    read_table,
)
from plugboard_beam.library.sql_io import scrub, sync_url
from plugboard_beam.lowering.dataio.common import ERRORS, KEYS, RECORD
from plugboard_beam.lowering.dataio.found import KeyedRead, file_paths
from plugboard_beam.lowering.dataio.waves import ALL_KEYS, Wave, missing_key
from plugboard_beam.lowering.plan import chunk_tag
from plugboard_beam.lowering.records import RecordBuffer
from plugboard_beam.runtime.failure import Failure
from plugboard_beam.runtime.stage import encode_chunk

#: values per chunk sent from a keyed read into a stage
CHUNK = 1024





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
        paths = file_paths(r)
    except DataError as exc:
        yield (r, 0, "", -1, str(exc).removeprefix(f"{r.what}: "))
        return
    for i, path in enumerate(paths):
        yield (r, i, path, -1, "")


def _row_groups(r: KeyedRead) -> _t.Iterator[_t.Any]:
    """(read, file index, path, row group, "") for every row group of every matching file, or
    (read, 0, "", -1, error message)."""
    import pyarrow.parquet as pq


    try:
        check_gcs_access(r.path, f"{r.what}")
        for i, path in enumerate(file_paths(r)):
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
