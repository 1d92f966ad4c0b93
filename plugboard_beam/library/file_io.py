"""``FileReader`` / ``FileWriter``: CSV, gzip CSV and Parquet files (plugboard 0.9.0's names).

Local paths and ``gs://`` go through Beam's ``FileSystems`` (what Dataflow workers use; for
``gs://`` credentials come from the environment, so ``storage_options`` is refused there and for
local paths). Any other URL (``s3://bucket/x.csv``, ``az://``, ``memory://``, ...) is opened
with fsspec as plugboard opens it, ``storage_options`` being the file system's options
(``s3fs``: ``key``, ``secret``, ``endpoint_url``, ``client_kwargs``, ...; without them, the
usual ``AWS_*`` environment variables and ``~/.aws`` files apply). The file system's package
must be installed: ``s3fs`` for ``s3://`` (``pip install 'plugboard-beam[aws]'``). CSV is written as
pandas' ``to_csv(index=False)`` writes it: a header, integer columns as integers, float columns
with the shortest round-trip repr, missing values empty.
"""

from __future__ import annotations

from collections import deque
import csv
import gzip
import io
import math
import os
import typing as _t

from plugboard_beam.component.component import engine_run
from plugboard_beam.component.io_controller import IOController
from plugboard_beam.library.data import (
    PLAIN_TYPES,
    DataError,
    DataReader,
    DataWriter,
    KeyedRows,
    NoMoreDataException,
    is_missing,
    plain,
)

FORMATS = (".csv.gz", ".csv", ".parquet")


def file_format(path: str) -> str:
    """``.csv``, ``.csv.gz`` or ``.parquet`` from the path, or a clear error."""
    low = str(path).lower()
    for ext in FORMATS:
        if low.endswith(ext):
            return ext
    raise ValueError(f"unsupported file format of {str(path)!r}: use one of {', '.join(FORMATS)}")


#: the window of a FileWriter's files in a streaming run, in seconds
DEFAULT_WINDOW_SECONDS = 60.0


def check_window_seconds(value: _t.Any) -> float:
    """A positive number of seconds, or a clear error."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"'window_seconds' must be a positive number of seconds, not {value!r}")
    return float(value)


StorageOptions = _t.Optional[_t.Mapping[str, _t.Any]]


def uses_fsspec(path: str) -> bool:
    """A URL opened with fsspec: one with a ``scheme://`` other than ``gs://`` (Beam's)."""
    scheme, sep, _ = str(path).partition("://")
    return bool(sep) and scheme.lower() != "gs"


def _check_storage_options(storage_options: _t.Any, path: _t.Any = None) -> None:
    if storage_options is not None and not isinstance(storage_options, dict):
        raise ValueError(f"'storage_options' must be a mapping of the file system's options, not {storage_options!r}")
    if storage_options and not (isinstance(path, str) and uses_fsspec(path)):
        raise ValueError("'storage_options' (fsspec options) apply to fsspec URLs such as s3://; local and gs:// "
                         "paths are read through Beam's FileSystems, which take credentials from the environment "
                         "(for gs://, Application Default Credentials): leave it out")
    if storage_options and isinstance(path, str):
        _fsspec_protocol(path)


def _fsspec_protocol(path: str) -> _t.Any:
    """The fsspec file system class of ``path``'s scheme, or a clear error (unknown scheme, its
    package not installed)."""
    import fsspec

    scheme = str(path).partition("://")[0].lower()
    try:
        return fsspec.get_filesystem_class(scheme)
    except ValueError:
        raise ValueError(f"unknown storage {scheme + '://'!r} in {str(path)!r}: use a local path, gs:// or a URL "
                         "fsspec knows (s3://, az://, ...)") from None
    except ImportError as exc:
        extra = " (pip install 'plugboard-beam[aws]')" if scheme in ("s3", "s3a") else ""
        raise ValueError(f"{scheme}:// paths need a package that is not installed{extra}: {exc}") from None


def is_local(path: str) -> bool:
    """A path on this machine (no ``scheme://``)."""
    return "://" not in path


def open_binary(path: str, storage_options: StorageOptions = None) -> _t.Any:
    """``path`` opened for reading bytes (as they are stored: no decompression); a context manager."""
    if is_local(path):
        return open(path, "rb")
    if uses_fsspec(path):
        import fsspec

        return fsspec.open(path, "rb", **dict(storage_options or {})).open()
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.open(path)


def match_paths(pattern: str, storage_options: StorageOptions = None) -> list[str]:
    """The files a glob matches, sorted (URLs keep their scheme)."""
    if uses_fsspec(pattern):
        import fsspec

        fs, _, found = fsspec.get_fs_token_paths(pattern, storage_options=dict(storage_options or {}))
        return sorted(fs.unstrip_protocol(p) for p in found)
    from apache_beam.io.filesystems import FileSystems

    return sorted(m.path for res in FileSystems.match([pattern]) for m in res.metadata_list)  # type: ignore[no-untyped-call]


def _fsspec_read(path: str, what: str, storage_options: StorageOptions) -> bytes:
    import fsspec

    _fsspec_protocol(path)
    try:
        with fsspec.open(path, "rb", compression="gzip" if path.lower().endswith(".gz") else None,
                         **dict(storage_options or {})) as f:
            data: bytes = f.read()
    except FileNotFoundError:
        raise DataError(f"{what}: no such file") from None
    except Exception as exc:
        raise DataError(f"{what}: cannot be read: {_short(exc)}") from None
    return data


def _fsspec_write(path: str, data: bytes, what: str, storage_options: StorageOptions) -> None:
    import fsspec

    _fsspec_protocol(path)
    try:
        with fsspec.open(path, "wb", compression="gzip" if path.lower().endswith(".gz") else None,
                         **dict(storage_options or {})) as f:
            f.write(data)
    except Exception as exc:
        raise DataError(f"{what}: cannot be written: {_short(exc)}") from None


def check_gcs_access(path: str, what: str) -> None:
    """Fail fast and clearly when a ``gs://`` path cannot be reached with credentials.

    With ``STORAGE_EMULATOR_HOST`` set (a Cloud Storage emulator, Google's convention) the
    client connects anonymously; Beam would otherwise spend ~20 s retrying the credentials
    lookup first, so its lookup result is settled here. Without an emulator, Application Default
    Credentials must exist (Beam would fall back to anonymous access and fail later, slowly).
    """
    if not path.startswith("gs://"):
        return
    if os.environ.get("STORAGE_EMULATOR_HOST"):
        try:
            from apache_beam.internal.gcp import auth

            with auth._Credentials._credentials_lock:
                if not auth._Credentials._credentials_init:
                    auth._Credentials._credentials = None  # anonymous: the emulator takes no credentials
                    auth._Credentials._credentials_init = True
        except (ImportError, AttributeError):  # pragma: no cover - other Beam versions
            pass
        return
    try:
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError

        google.auth.default()
    except DefaultCredentialsError:
        raise DataError(f"{what}: no Google Cloud credentials to read or write gs:// paths (set up "
                        "Application Default Credentials: `gcloud auth application-default login`, or "
                        "GOOGLE_APPLICATION_CREDENTIALS=key.json)") from None
    except ImportError:
        raise DataError(f"{what}: gs:// needs the Google Cloud libraries (apache-beam[gcp])") from None


def read_bytes(path: str, what: str, storage_options: StorageOptions = None) -> bytes:
    """The whole (decompressed for ``.gz``) content of ``path``, or a clear error."""
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    if uses_fsspec(path):
        return _fsspec_read(path, what, storage_options)

    check_gcs_access(path, what)
    if is_local(path) and not os.path.exists(path):
        raise DataError(f"{what}: no such file")
    if not is_local(path):
        try:
            found = FileSystems.exists(path)  # type: ignore[no-untyped-call]
        except Exception as exc:
            raise DataError(f"{what}: cannot be reached: {_short(exc)}") from None
        if not found:
            raise DataError(f"{what}: no such file")
    try:
        with FileSystems.open(path, compression_type=CompressionTypes.AUTO) as f:
            data: bytes = f.read()
    except DataError:
        raise
    except Exception as exc:  # Beam wraps every file system's errors differently
        raise DataError(f"{what}: cannot be read: {_short(exc)}") from None
    return data


def write_bytes(path: str, data: bytes, what: str, storage_options: StorageOptions = None) -> None:
    """Write ``data`` to ``path`` (gzip-compressed for ``.gz``), replacing it."""
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    if uses_fsspec(path):
        _fsspec_write(path, data, what, storage_options)
        return

    check_gcs_access(path, what)
    try:
        if is_local(path):
            folder = os.path.dirname(os.path.abspath(path))
            os.makedirs(folder, exist_ok=True)
        with FileSystems.create(path, compression_type=CompressionTypes.AUTO) as f:
            f.write(data)
    except Exception as exc:
        raise DataError(f"{what}: cannot be written: {_short(exc)}") from None


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) < 600 else text[:600] + "..."


def read_table(path: str, what: str, columns: _t.Optional[_t.Sequence[str]] = None,
               storage_options: StorageOptions = None) -> _t.Any:
    """The file as a pyarrow Table (CSV types inferred as pandas would: ints, floats, bools, text)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    fmt = file_format(path)
    data = read_bytes(path, what, storage_options)
    try:
        if fmt == ".parquet":
            table = pq.read_table(pa.BufferReader(data), use_threads=False)  # no Arrow thread pool
        else:
            table = pacsv.read_csv(pa.BufferReader(data), read_options=pacsv.ReadOptions(use_threads=False),
                                   convert_options=_csv_convert_options())
    except pa.ArrowException as exc:
        raise DataError(f"{what}: cannot be parsed as {fmt}: {exc}") from None
    if columns is not None:
        missing = [c for c in columns if c not in table.column_names]
        if missing:
            raise DataError(f"{what}: no column(s) {missing} (it has {table.column_names})")
        table = table.select(list(columns))
    return table


def _csv_convert_options() -> _t.Any:
    import pyarrow.csv as pacsv

    return pacsv.ConvertOptions(timestamp_parsers=["%Y-%m-%dT%H:%M:%S.no-such-format"])  # keep text as text


def key_typed(values: list[_t.Any]) -> list[_t.Any]:
    """One key's values of a CSV column that was read as text, typed as they would be in a file
    of that key's rows alone (issue 15: one text cell in a numeric column of a keyed table
    makes the whole column text; the other keys' numbers stay numbers, and only the key with
    the text fails). Values that are not all text (or missing) are returned as they are."""
    if not any(isinstance(v, str) for v in values) or not all(v is None or isinstance(v, str) for v in values):
        return values
    import pyarrow as pa
    import pyarrow.csv as pacsv

    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["v"])
    writer.writerows([["" if v is None else v] for v in values])
    try:
        table = pacsv.read_csv(pa.BufferReader(text.getvalue().encode()),
                               read_options=pacsv.ReadOptions(use_threads=False),
                               convert_options=_csv_convert_options())
    except pa.ArrowException:
        return values
    typed: list[_t.Any] = table.column("v").to_pylist()
    return typed if len(typed) == len(values) else values


# ------------------------------------------------------------------- CSV text like pandas
def _column_kind(values: _t.Sequence[_t.Any]) -> str:
    """The pandas dtype a column of these Python values gets: bool, int, float or object."""
    kinds = set()
    for v in values:
        if v is None:
            kinds.add("none")
        elif isinstance(v, bool):
            kinds.add("bool")
        elif isinstance(v, int):
            kinds.add("int")
        elif isinstance(v, float):
            kinds.add("nan" if math.isnan(v) else "float")
        else:
            kinds.add("object")
    if kinds <= {"bool"}:
        return "bool" if kinds else "object"
    if kinds <= {"int"}:
        return "int"
    if kinds <= {"int", "float", "nan", "none"} and kinds & {"int", "float", "nan"}:
        return "float"
    return "object"


def _cell(value: _t.Any, kind: str) -> str:
    if is_missing(value):
        return ""
    if kind == "float":
        return repr(float(value))
    return str(value)


def csv_text(fields: _t.Sequence[str], columns: _t.Sequence[_t.Sequence[_t.Any]], header: bool) -> str:
    """Rows as pandas' ``DataFrame.to_csv(index=False)`` writes them."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    if header:
        w.writerow(fields)
    cols = [[plain(v) for v in col] for col in columns]
    kinds = [_column_kind(col) for col in cols]
    for row in zip(*cols, strict=True):
        w.writerow([_cell(v, k) for v, k in zip(row, kinds, strict=True)])
    return out.getvalue()


def parquet_bytes(fields: _t.Sequence[str], columns: _t.Sequence[_t.Sequence[_t.Any]], what: str) -> bytes:
    """Rows as a Parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = []
    for name, col in zip(fields, columns, strict=True):
        # plain Python values (the common case) go to Arrow as they are: one pass in C
        values = col if set(map(type, col)) <= PLAIN_TYPES else [plain(v) for v in col]
        try:
            arrays.append(pa.array(values))
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise DataError(f"{what}: column {name!r} mixes types Parquet cannot store together ({exc})") from None
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_arrays(arrays, names=list(fields)), sink)
    return bytes(sink.getvalue().to_pybytes())


# ------------------------------------------------------------------------------ components
class FileReader(DataReader):
    """Reads rows from a ``.csv``, ``.csv.gz`` or ``.parquet`` file (local or ``gs://``).

    With ``key_column``, each model instance reads the rows whose column equals its key.
    """

    io = IOController()

    def __init__(
        self,
        path: str,
        storage_options: _t.Optional[dict[str, _t.Any]] = None,
        **kwargs: _t.Any,
    ) -> None:
        super().__init__(**kwargs)
        self._file_path = str(path)
        self._extension = file_format(self._file_path)
        _check_storage_options(storage_options, self._file_path)
        self._storage_options = dict(storage_options or {})
        self._chunks: _t.Optional[_t.Iterator[dict[str, list[_t.Any]]]] = None

    @classmethod
    def io_for(cls, args: _t.Mapping[str, _t.Any]) -> IOController:
        if isinstance(args.get("path"), str):
            file_format(args["path"])
        _check_storage_options(args.get("storage_options"), args.get("path"))
        return super().io_for(args)

    @property
    def path(self) -> str:
        """The file read."""
        return self._file_path

    @property
    def storage_options(self) -> dict[str, _t.Any]:
        """The fsspec file system's options (for an fsspec URL)."""
        return dict(self._storage_options)

    def describe_source(self) -> str:
        return f"file {self._file_path!r}"

    def keyed_rows(self) -> KeyedRows:
        """The whole file, indexed by ``key_column`` (for a runner to share among keys)."""
        assert self._key_column is not None
        fields = list(self.io.outputs)
        extra = [c for c in (self._key_column, self._order_by) if c is not None and c not in fields]
        table = read_table(self._file_path, self.describe_source(), fields + extra, self._storage_options)
        csv_file = file_format(self._file_path) != ".parquet"
        return KeyedRows({c: table.column(c).to_pylist() for c in fields + extra}, self._key_column, self._order_by,
                         per_key=key_typed if csv_file else None)

    def _load(self) -> _t.Iterator[dict[str, list[_t.Any]]]:
        shared = self._shared_chunks()
        if shared is not None:
            yield from shared
            return
        what = self.describe_source()
        fields = list(self.io.outputs)
        extra = [c for c in (self._key_column, self._order_by) if c is not None and c not in fields]
        table = read_table(self._file_path, what, fields + extra, self._storage_options)
        if self._key_column is not None or self._order_by is not None:
            idx = list(range(table.num_rows))
            if self._key_column is not None:
                key = self._plugboard_beam_key
                keys = table.column(self._key_column).to_pylist()
                idx = [i for i in idx if keys[i] is not None and str(keys[i]) == key]
            if self._order_by is not None:
                order = table.column(self._order_by).to_pylist()
                idx.sort(key=lambda i: (order[i] is None, order[i]))  # stable: ties keep file order
            table = table.take(idx)
        columns = {f: table.column(f).to_pylist() for f in fields}
        if self._key_column is not None and file_format(self._file_path) != ".parquet":
            columns = {f: key_typed(v) for f, v in columns.items()}  # typed as the key's own file
        size = self._chunk_size or max(table.num_rows, 1)
        for start in range(self._fetched, table.num_rows, size):
            yield {f: v[start:start + size] for f, v in columns.items()}

    async def _fetch(self) -> dict[str, list[_t.Any]]:
        if self._chunks is None:
            self._chunks = self._load()
        try:
            return next(self._chunks)
        except StopIteration:
            raise NoMoreDataException from None

    async def _adapt(self, data: dict[str, list[_t.Any]]) -> dict[str, deque[_t.Any]]:
        return {f: deque(v) for f, v in data.items()}


class FileWriter(DataWriter):
    """Writes one row per step to a ``.csv``, ``.csv.gz`` or ``.parquet`` file (local or ``gs://``).

    With ``chunk_size`` (CSV only, as in plugboard) a local file is appended every
    ``chunk_size`` rows; otherwise the file is written when the run ends.

    ``window_seconds`` (not in plugboard; default 60) is the window of a streaming run: there the
    rows of all keys go to one file set per window (``levels-<window start>-<window end>-00000-of-
    00001.csv``, with ``key`` and ``step`` columns) as soon as the window closes, so a job that
    never ends still produces readable files. A batch run writes its files once and ignores it.
    """

    io = IOController()

    def __init__(
        self,
        path: str,
        storage_options: _t.Optional[dict[str, _t.Any]] = None,
        window_seconds: float = DEFAULT_WINDOW_SECONDS,
        **kwargs: _t.Any,
    ) -> None:
        super().__init__(**kwargs)
        self._file_path = str(path)
        self._extension = file_format(self._file_path)
        _check_storage_options(storage_options, self._file_path)
        self._storage_options = dict(storage_options or {})
        self._window_seconds = check_window_seconds(window_seconds)
        if self._extension == ".parquet" and self._chunk_size:
            raise ValueError("Only CSV files support chunked writing ('chunk_size' with a .parquet path)")
        self._saved = 0  # chunks saved
        self._pending: list[str] = []  # CSV text of saved chunks not yet written (remote paths)

    @classmethod
    def io_for(cls, args: _t.Mapping[str, _t.Any]) -> IOController:
        if isinstance(args.get("path"), str):
            file_format(args["path"])
            if args.get("chunk_size") and file_format(args["path"]) == ".parquet":
                raise ValueError("Only CSV files support chunked writing ('chunk_size' with a .parquet path)")
        _check_storage_options(args.get("storage_options"), args.get("path"))
        if "window_seconds" in args:
            check_window_seconds(args["window_seconds"])
        return super().io_for(args)

    @property
    def window_seconds(self) -> float:
        """The window of a streaming run's files, in seconds."""
        return self._window_seconds

    @property
    def path(self) -> str:
        """The file written."""
        return self._file_path

    @property
    def storage_options(self) -> dict[str, _t.Any]:
        """The fsspec file system's options (for an fsspec URL)."""
        return dict(self._storage_options)

    def describe_target(self) -> str:
        return f"file {self._file_path!r}"

    def sink_target(self) -> _t.Optional[str]:
        return None if "{key}" in self._file_path else self._file_path

    async def _adapt(self, data: dict[str, deque[_t.Any]]) -> dict[str, list[_t.Any]]:
        return {f: list(v) for f, v in data.items()}

    async def _save(self, data: dict[str, list[_t.Any]]) -> None:
        fields = list(self.io.inputs)
        columns = [data[f] for f in fields]
        what = self.describe_target()
        if self._extension == ".parquet":
            write_bytes(self._file_path, parquet_bytes(fields, columns, what), what, self._storage_options)
            return
        text = csv_text(fields, columns, header=self._saved == 0)
        first = self._saved == 0
        self._saved += 1
        if not is_local(self._file_path):
            self._pending.append(text)
            return
        try:
            folder = os.path.dirname(os.path.abspath(self._file_path))
            os.makedirs(folder, exist_ok=True)
            mode = "wb" if first else "ab"
            opener: _t.Any = gzip.open if self._extension == ".csv.gz" else open
            with opener(self._file_path, mode) as f:
                f.write(text.encode())
        except OSError as exc:
            raise DataError(f"{what}: cannot be written: {exc}") from None

    @engine_run
    async def run(self) -> None:
        """As ``DataWriter.run``; a remote CSV file is written once its IO has closed."""
        await super().run()
        await self._flush_pending()

    async def _flush_pending(self) -> None:
        if self._pending:
            what = self.describe_target()
            write_bytes(self._file_path, "".join(self._pending).encode(), what, self._storage_options)
            self._pending = []

    async def destroy(self) -> None:
        await super().destroy()
        if self.outbox is None and self._saved == 0 and self._extension != ".parquet":
            # no rows at all: plugboard leaves no file; we write the header so readers see the columns
            await self._save({f: [] for f in self.io.inputs})
        await self._flush_pending()


__all__ = ["FileReader", "FileWriter", "csv_text", "file_format", "key_typed", "match_paths", "open_binary",
           "read_table", "uses_fsspec"]
