"""Sink writes: the rows of a many-key ``FileWriter`` / ``SQLWriter`` as one table (files sharded
by key hash, or batched inserts)."""

from __future__ import annotations

from operator import itemgetter
import pickle
import typing as _t
import zlib

import apache_beam as beam

from plugboard_beam.library.data import DataError, is_missing, plain
from plugboard_beam.library.file_io import (
    csv_text,
    file_format,
    parquet_bytes,
    write_bytes,
)
from plugboard_beam.library.sql_io import RowsRefused, SQLTable, safe_url
from plugboard_beam.lowering.dataio.common import ERRORS
from plugboard_beam.lowering.dataio.found import SinkWrite
from plugboard_beam.lowering.dataio.waves import ALL_KEYS, SHARDS, Wave
from plugboard_beam.runtime.failure import Failure


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
    write_bytes(path, _rows_bytes(s.fields, s.target, rows, what), what, dict(s.storage_options))


def _kind(value: _t.Any) -> _t.Optional[str]:
    """What Parquet stores a value as, coarsely: numbers (int and float mix), text, ...; None for
    a missing value (it fits any column)."""

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
