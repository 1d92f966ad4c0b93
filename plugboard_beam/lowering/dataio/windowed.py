"""Streaming: a ``FileWriter``'s rows in one file set per window (``window_seconds``)."""

from __future__ import annotations

from dataclasses import dataclass
import gzip
from operator import itemgetter
import time
import typing as _t

import apache_beam as beam
from apache_beam.io.fileio import FileSink
from apache_beam.metrics.metric import Metrics

from plugboard_beam.exceptions import UserError
from plugboard_beam.library.data import DataError, DataReader
from plugboard_beam.library.file_io import (
    FileWriter,
    csv_text,
    file_format,
    parquet_bytes,
)
from plugboard_beam.lowering.dataio.common import build_one, log
from plugboard_beam.lowering.dataio.sinks import TEXT_ERRORS, Row, _misfits, _unwritable
from plugboard_beam.spec.keys import substitute_key
from plugboard_beam.spec.load import LoadedModel

#: streaming: rows a windowed file writer left out (their key's values did not fit a column)
ROWS_LEFT_OUT = "file_rows_left_out"


# ------------------------------------------------------------------ streaming: windowed files
@dataclass(frozen=True)
class WindowedWrite:
    """A ``FileWriter`` of a streaming run: its rows (all keys) go to one file set per window."""

    name: str
    fields: tuple[str, ...]
    path: str  # may hold {key} in its file name: then each key has its own files
    window_seconds: float
    #: the run's id: names the folder of the files being written (``temp_folder``)
    run_id: str = ""

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

    @property
    def temp_folder(self) -> str:
        """Where a window's file is written before it is moved into place: one folder per writer
        and run, removed when the run ends (``remove_temp_folders``)."""
        from apache_beam.io.filesystems import FileSystems

        folder: str = FileSystems.join(self.folder, f".temp-{self.name}-{self.run_id or 'run'}")
        return folder


def windowed_writes(model: LoadedModel, overridden: _t.Collection[str] = (),
                    run_id: str = "") -> dict[str, WindowedWrite]:
    """The model's ``FileWriter``s as windowed writes (for ``--streaming``). ``overridden``: the
    arguments scenarios override (``component.arg``): a writer's are refused (its files are
    written for all keys at once; put ``{key}`` in its file name for files per key). ``run_id``
    names their ``temp_folder``."""
    out: dict[str, WindowedWrite] = {}
    for name, klass in model.classes.items():
        if not issubclass(klass, FileWriter):
            continue
        bad = sorted(o for o in overridden if o.split(".", 1)[0] == name)
        if bad:
            raise UserError(f"--streaming: scenarios override {', '.join(bad)}, but '{name}' (FileWriter) "
                            "writes the files of every key together, one set per window; put {key} in its "
                            "file name to give each key its own files")
        w = build_one(model, name)
        ww = WindowedWrite(name, tuple(w.io.inputs), w.path, w.window_seconds, run_id)
        if "{key}" in ww.folder:
            raise UserError(f"--streaming: '{name}' (FileWriter) path {w.path!r}: {{key}} may only appear in "
                            "the file name in a streaming run (the files of a window are written to one folder)")
        out[name] = ww
    return out


class WindowedFiles(beam.PTransform):  # type: ignore[type-arg]
    """A streaming ``FileWriter``'s row batches -> windowed files through ``fileio.WriteToFiles``.

    Rows are stamped with the wall-clock time they reach the sink (processing time: a row is
    in the window in which it was written), windowed with ``FixedWindows(window_seconds)``.
    ``WriteToFiles`` would write each bundle's rows to a file of their own (a streaming bundle
    is often one step of one key: a file per step); with no writers per bundle every row goes
    through its grouping by (file name, shard) instead, which fires once the window closes, so
    a window's rows of one file name become one file, written in ``temp_folder`` and moved to
    ``<stem>-<window start>-<window end>-00000-of-00001<format>``.
    """

    def __init__(self, w: WindowedWrite) -> None:
        super().__init__()
        self.w = w

    def expand(self, batches: _t.Any) -> _t.Any:
        from apache_beam.io import fileio
        from apache_beam.options.value_provider import StaticValueProvider
        from apache_beam.transforms.window import FixedWindows

        w = self.w
        fmt = file_format(w.path)
        return (batches
                | "Stamp rows" >> beam.FlatMap(_stamped)
                | "Window rows" >> beam.WindowInto(FixedWindows(w.window_seconds))
                | "Write files" >> fileio.WriteToFiles(
                    path=w.folder, destination=_Destination(w), sink=_SinkOf(w),
                    file_naming=fileio.destination_prefix_naming(fmt),
                    temp_directory=StaticValueProvider(str, w.temp_folder), shards=1, max_writers_per_bundle=0))


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



def remove_temp_folders(writes: _t.Iterable[WindowedWrite]) -> None:
    """Remove the ``temp_folder`` of each windowed write (when the run has ended, finished or
    stopped): what is left there is the file of a window that had not closed, logged."""
    from apache_beam.io.filesystems import FileSystems

    for w in writes:
        folder = w.temp_folder
        try:
            left = [m.path for res in FileSystems.match([FileSystems.join(folder, "*")]) for m in res.metadata_list]
            if left:
                log.warning("file writer '%s': %d file(s) of a window that had not closed when the run stopped "
                            "were removed with %s", w.name, len(left), folder)
                FileSystems.delete(left)
            if FileSystems.exists(folder):  # a local folder (object stores have none)
                FileSystems.delete([folder])
        except Exception as exc:  # the run's outcome stands; say what is left behind
            log.warning("file writer '%s': could not remove %s (%s: %s)", w.name, folder, type(exc).__name__, exc)


def refuse_in_streaming(model: LoadedModel) -> None:
    """Data readers are batch-only: raise ``UserError`` naming them (for the streaming runner's
    option check). A never-ending job has no end of a file or query to wait for; replay a
    history in batch, or publish it to the reader's topic."""

    readers = [n for n, c in model.classes.items() if issubclass(c, DataReader)]
    if readers:
        lines = {c.args.name: c for c in model.config.plugboard.process.args.components}
        where = ", ".join(f"'{n}' ({lines[n].type})" for n in readers)
        raise UserError(f"--streaming: data reader(s) {where} read a file or query once, which a streaming "
                        "job cannot do; run it in batch (without --streaming), or feed the model through a "
                        "PubSubReader")
