"""The keys in a keyed run's data, counted in this process (for waves and ``--runner local``)."""

from __future__ import annotations

import os
import typing as _t

from plugboard_beam.library.data import DataError
from plugboard_beam.library.file_io import (
    check_gcs_access,
    file_format,
    is_local,
    open_binary,
    read_table,
)
from plugboard_beam.library.sql_io import _engine
from plugboard_beam.lowering.dataio.found import KeyedRead, file_paths, keyed_reads
from plugboard_beam.lowering.dataio.waves import missing_key
from plugboard_beam.spec.load import LoadedModel


def key_counts(model: LoadedModel) -> _t.Optional[dict[str, int]]:
    """The keys found in the data of the model's keyed readers, in first appearance order, with
    their numbers of rows (summed over the readers), or ``None`` if it has none. One pass over
    each reader's key column, in this process; a missing file or table raises ``DataError``."""
    import pyarrow.compute as pc


    reads = keyed_reads(model)
    if not reads:
        return None
    counts: dict[str, int] = {}
    for r in reads:
        pairs: list[tuple[_t.Any, int]]
        if r.kind == "file":
            pairs = []
            for path in file_paths(r):
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
