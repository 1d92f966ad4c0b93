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

import typing as _t

from plugboard_beam.utils.lazy import lazy_names

if _t.TYPE_CHECKING:
    from plugboard_beam.lowering.dataio.counts import data_keys, key_counts
    from plugboard_beam.lowering.dataio.found import KeyedRead, SinkWrite
    from plugboard_beam.lowering.dataio.model import DataIO, lower
    from plugboard_beam.lowering.dataio.waves import ALL_KEYS, Wave, missing_key, plan_waves
    from plugboard_beam.lowering.dataio.windowed import (
        ROWS_LEFT_OUT,
        WindowedFiles,
        WindowedWrite,
        refuse_in_streaming,
        remove_temp_folders,
        windowed_writes,
    )

#: the module of each name (imported when first used: ``found``, ``counts`` and ``waves`` need no
#: Beam, so ``--runner local`` finds a model's keys and sinks without importing it)
_MODULE_OF = {
    "data_keys": "counts", "key_counts": "counts", "KeyedRead": "found", "SinkWrite": "found",
    "DataIO": "model", "lower": "model", "ALL_KEYS": "waves", "Wave": "waves", "missing_key": "waves",
    "plan_waves": "waves", "ROWS_LEFT_OUT": "windowed", "WindowedFiles": "windowed", "WindowedWrite": "windowed",
    "refuse_in_streaming": "windowed", "remove_temp_folders": "windowed", "windowed_writes": "windowed",
}


__getattr__ = lazy_names(__name__, _MODULE_OF)


__all__ = ["ALL_KEYS", "ROWS_LEFT_OUT", "DataIO", "KeyedRead", "SinkWrite", "Wave", "WindowedFiles", "WindowedWrite",
           "data_keys", "key_counts", "lower", "missing_key", "plan_waves", "refuse_in_streaming",
           "remove_temp_folders", "windowed_writes"]
