"""``DataReader`` / ``DataWriter``: plugboard 0.9.0's abstract data components.

A reader is a source: it steps once per row, its ``field_names`` are its outputs, and it
closes after the last row. A writer takes one row per step and saves it. Subclasses supply
plugboard's hooks: a reader ``_fetch`` (a chunk of data, raising ``NoMoreDataException`` at
the end) and ``_adapt``/``_convert`` (the chunk as ``{field: deque}``); a writer ``_adapt``/
``_convert`` (the buffer as whatever ``_save`` takes) and ``_save``.

Two additions serve many model instances fed from one table: ``key_column`` (each key's
instance gets the rows whose column equals its key; the Beam lowering reads the table once and
groups it by key, see ``lowering/dataio/reads.py``) and ``order_by`` (the column giving each key's
row order; default: file order). A writer given rows by the Beam lowering (its ``outbox`` set)
hands them over instead of saving them itself, and the lowering writes one table for all keys.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
import math
import typing as _t

from plugboard_beam.component.component import Component, engine_run
from plugboard_beam.component.io_controller import IOController
from plugboard_beam.exceptions import NoMoreDataException
from plugboard_beam.schemas import ComponentArgsDict


class DataError(Exception):
    """Bad input data: says which source, which row and what is wrong."""


def check_field_names(field_names: _t.Any, what: str = "field_names") -> list[str]:
    """``field_names`` as a list of identifiers, or a clear error."""
    if (not isinstance(field_names, (list, tuple)) or not field_names
            or not all(isinstance(f, str) and f.isidentifier() and not f.startswith("_") for f in field_names)):
        raise ValueError(f"'{what}' must be a non-empty list of field names (public identifiers), got {field_names!r}")
    if len(set(field_names)) != len(field_names):
        raise ValueError(f"'{what}' names a field twice: {list(field_names)}")
    return list(field_names)


def check_chunk_size(chunk_size: _t.Any) -> _t.Optional[int]:
    """``chunk_size`` as a positive int or ``None``, or a clear error."""
    if chunk_size is not None and (not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1):
        raise ValueError(f"'chunk_size' must be a positive integer, got {chunk_size!r}")
    return chunk_size


def _check_column(value: _t.Any, what: str) -> _t.Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ValueError(f"'{what}' must be a column name, got {value!r}")
    return value


#: types that are plain already (the common case: checked first, per value)
PLAIN_TYPES = frozenset({float, int, str, bool, type(None), bytes})


def plain(value: _t.Any) -> _t.Any:
    """A numpy/pyarrow scalar as the plain Python value (NaN stays a float)."""
    if type(value) in PLAIN_TYPES:
        return value
    item = getattr(value, "item", None)
    if item is not None and not isinstance(value, (str, bytes)):
        try:
            return item()
        except (TypeError, ValueError):
            return value
    return value


class KeyedRows:
    """A keyed reader's whole table, read once for every key a process runs (``--runner local``):
    each key's row numbers in ``order_by`` (or source) order, chosen as a reader alone chooses
    them (the key column's value as text equals the key; a null key column is nobody's row).
    The runner hands it to each key's reader, which then takes its rows from here instead of
    reading the whole source again (one read per run instead of one per key)."""

    def __init__(self, columns: dict[str, list[_t.Any]], key_column: str, order_by: _t.Optional[str],
                 per_key: _t.Optional[_t.Callable[[list[_t.Any]], list[_t.Any]]] = None) -> None:
        self.columns = columns
        #: applied to each key's values of a field (a CSV file: text typed as the key's own file)
        self.per_key = per_key
        index: dict[str, list[int]] = {}
        for i, k in enumerate(columns[key_column]):
            if k is not None:
                index.setdefault(str(k), []).append(i)
        if order_by is not None:
            order = columns[order_by]
            for rows in index.values():
                rows.sort(key=lambda i: (order[i] is None, order[i]))  # stable: ties keep source order
        self.index = index

    def chunks(self, key: str, fields: _t.Sequence[str], size: _t.Optional[int],
               skip: int = 0) -> _t.Iterator[dict[str, list[_t.Any]]]:
        """``key``'s rows from row ``skip`` on, ``size`` rows at a time (all at once if None)."""
        rows = self.index.get(key, [])
        step = size or max(len(rows), 1)
        if self.per_key is not None:
            typed = {f: self.per_key([self.columns[f][i] for i in rows]) for f in fields}
            for start in range(skip, len(rows), step):
                yield {f: v[start:start + step] for f, v in typed.items()}
            return
        for start in range(skip, len(rows), step):
            part = rows[start:start + step]
            yield {f: [self.columns[f][i] for i in part] for f in fields}


class DataReader(Component, ABC):
    """Abstract base class for reading data (plugboard's ``DataReader``)."""

    io = IOController()

    def __init__(
        self,
        *,
        field_names: list[str],
        chunk_size: _t.Optional[int] = None,
        key_column: _t.Optional[str] = None,
        order_by: _t.Optional[str] = None,
        **kwargs: _t.Unpack[ComponentArgsDict],
    ) -> None:
        super().__init__(**kwargs)
        fields = check_field_names(field_names)
        self._chunk_size = check_chunk_size(chunk_size)
        self._key_column = _check_column(key_column, "key_column")
        self._order_by = _check_column(order_by, "order_by")
        self.io = IOController(outputs=fields, namespace=self.name)
        self._buffer: dict[str, deque[_t.Any]] = {f: deque() for f in fields}
        self._done = False
        #: rows handed out so far (0-based index of the next row, for messages)
        self._row = 0
        #: rows fetched into the buffer so far: a reader restored from a pickle (whose open
        #: cursor was dropped) reopens its source and skips these
        self._fetched = 0

    @classmethod
    def io_for(cls, args: _t.Mapping[str, _t.Any]) -> IOController:
        return IOController(outputs=check_field_names(args.get("field_names")))

    @property
    def key_column(self) -> _t.Optional[str]:
        """The column naming each row's model instance (``None``: every row is this instance's)."""
        return self._key_column

    @property
    def order_by(self) -> _t.Optional[str]:
        """The column ordering each key's rows (``None``: file order)."""
        return self._order_by

    def describe_source(self) -> str:
        """What this reader reads, for messages (``file 'x.csv'``, ``query '...'``)."""
        return type(self).__name__

    def _shared_chunks(self) -> _t.Optional[_t.Iterator[dict[str, list[_t.Any]]]]:
        """This key's chunks from the ``KeyedRows`` a runner handed this reader, or None."""
        shared: _t.Optional[KeyedRows] = self.__dict__.get("_plugboard_beam_rows")
        if shared is None:
            return None
        return shared.chunks(self._plugboard_beam_key, list(self.io.outputs),
                             self._chunk_size, self._fetched)

    def __getstate__(self) -> dict[str, _t.Any]:
        state = dict(self.__dict__)
        state.pop("_plugboard_beam_rows", None)  # the run's shared table: a restored reader reads its source
        if "_chunks" in state:  # an open cursor: a restored reader reopens its source, skipping what it fetched
            state["_chunks"] = None
        return state

    @abstractmethod
    async def _fetch(self) -> _t.Any:
        """The next chunk of data; raise ``NoMoreDataException`` when there is none."""

    async def _adapt(self, data: _t.Any) -> dict[str, deque[_t.Any]]:
        """The fetched chunk as ``{field: deque of values}`` (plugboard also names it ``_convert``)."""
        convert = getattr(self, "_convert", None)
        if convert is None:
            raise NotImplementedError(f"{type(self).__name__} must implement _adapt or _convert")
        result: dict[str, deque[_t.Any]] = await convert(data)
        return result

    async def _fetch_chunk(self) -> bool:
        """Fill the buffer from the next chunk; ``False`` at the end of the data."""
        try:
            data = await self._fetch()
        except NoMoreDataException:
            return False
        adapted = await self._adapt(data)
        missing = [f for f in self.io.outputs if f not in adapted]
        if missing:
            raise DataError(f"{self.describe_source()}: no column(s) {missing} (it has {sorted(adapted)})")
        self._buffer = {f: deque(plain(v) for v in adapted[f]) for f in self.io.outputs}
        if self.io.outputs:
            self._fetched += len(self._buffer[self.io.outputs[0]])
        return True

    async def init(self) -> None:
        """Fetch the first chunk (a missing file or table fails here, before any step)."""
        if not await self._fetch_chunk():
            self._done = True

    async def step(self) -> None:
        """Output the next row. The step after the last row closes the IO, so a reader driven
        by hand raises ``IOStreamClosedError`` there, as plugboard's readers do."""
        fields = self.io.outputs
        first = self._buffer[fields[0]] if fields else deque()
        while not first and not self._done:
            if not await self._fetch_chunk():
                self._done = True
            first = self._buffer[fields[0]]
        if not first:
            await self.io.close()
            return
        d = self.__dict__
        for f in fields:
            d[f] = self._buffer[f].popleft()
        self._row += 1


class DataWriter(Component, ABC):
    """Abstract base class for writing data (plugboard's ``DataWriter``).

    Rows are buffered and saved every ``chunk_size`` rows (all at the end when ``None``).
    """

    io = IOController()

    def __init__(
        self,
        *,
        field_names: list[str],
        chunk_size: _t.Optional[int] = None,
        **kwargs: _t.Unpack[ComponentArgsDict],
    ) -> None:
        super().__init__(**kwargs)
        fields = check_field_names(field_names)
        self._chunk_size = check_chunk_size(chunk_size)
        self.io = IOController(inputs=fields, initial_values=self.initial_values, namespace=self.name)
        self._buffer: dict[str, deque[_t.Any]] = {f: deque() for f in fields}
        self._rows = 0
        #: set by the Beam lowering: rows go there, in lists of (key, step, values), and a Beam sink
        #: writes them
        self.outbox: _t.Optional[list[list[tuple[str, int, tuple[_t.Any, ...]]]]] = None

    @classmethod
    def io_for(cls, args: _t.Mapping[str, _t.Any]) -> IOController:
        return IOController(inputs=check_field_names(args.get("field_names")))

    def describe_target(self) -> str:
        """Where this writer writes, for messages."""
        return type(self).__name__

    def sink_target(self) -> _t.Optional[str]:
        """The path or table a Beam sink writes for all keys (``None``: this writer cannot
        hand its rows to a sink, or writes one target per key)."""
        return None

    @abstractmethod
    async def _save(self, data: _t.Any) -> None:
        """Save one adapted chunk."""

    async def _adapt(self, data: dict[str, deque[_t.Any]]) -> _t.Any:
        """The buffer in the form ``_save`` takes (plugboard also names it ``_convert``)."""
        convert = getattr(self, "_convert", None)
        if convert is None:
            raise NotImplementedError(f"{type(self).__name__} must implement _adapt or _convert")
        return await convert(data)

    async def _save_chunk(self) -> None:
        data = self._buffer
        if not data[self.io.inputs[0]]:
            return
        self._buffer = {f: deque() for f in self.io.inputs}
        await self._save(await self._adapt(data))

    async def step(self) -> None:
        """Buffer this step's row; save when a chunk is full."""
        d = self.__dict__
        outbox = self.outbox
        if outbox is not None:
            # rows since the stage last drained the outbox travel as one element (a list of rows)
            row = (d.get("_plugboard_beam_key", ""), self._rows, tuple(d.get(f) for f in self.io.inputs))
            if outbox:
                outbox[-1].append(row)
            else:
                outbox.append([row])
            self._rows += 1
            return
        for f in self.io.inputs:
            self._buffer[f].append(d.get(f))
        self._rows += 1
        if self._chunk_size is not None and len(self._buffer[self.io.inputs[0]]) >= self._chunk_size:
            await self._save_chunk()

    @engine_run
    async def run(self) -> None:
        """Step until the IO closes, then save what is left (plugboard's ``DataWriter.run``,
        for a writer driven by hand; the engines save the rest in ``destroy()``)."""
        await super().run()
        if self.outbox is None:
            await self._save_chunk()

    async def destroy(self) -> None:
        """Save what is left (also after a failure: the rows before it are kept)."""
        if self.outbox is None:
            await self._save_chunk()


def is_missing(value: _t.Any) -> bool:
    """``None`` or NaN."""
    return value is None or (isinstance(value, float) and math.isnan(value))


__all__ = ["DataError", "DataReader", "DataWriter", "KeyedRows", "NoMoreDataException", "check_field_names"]
