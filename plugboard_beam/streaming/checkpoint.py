"""Durable streaming on the DirectRunner (``process run --streaming --checkpoint PATH``).

The DirectRunner keeps keyed state in memory and its Pub/Sub read acknowledged messages as
soon as it pulled them: ``kill -9`` lost every message pulled but not yet through the model.
With a checkpoint, the run keeps an **intake journal**:

* the read of each ``PubSubReader`` subscription (patched in ``lowering/patches.py``,
  ``journal_pubsub_reads``) appends every pulled message durably to the reader's journal
  (one segment per pull: a JSON object written atomically — tmp file + fsync + rename, one
  database transaction, or one object write) and only then acknowledges it;
* on a restart the journal is replayed into the pipeline first (as if pulled, not journaled
  again), then live pulls continue; a redelivered message already in the journal is
  acknowledged and skipped (its message id), and redeliveries the journal cannot know are
  deduplicated by the pipeline as always (``seq`` per key, message id without ``seq``);
* each key's state is rebuilt by deterministic replay of its journaled inputs (loops included:
  the run's feedback topic is new per run), so its outputs are published again with the same
  ``(key, step)``: consumers deduplicate by ``(key, step)``;
* when a key has ended (every stage done and every writer's messages seen on its topic, see
  ``runners/streaming.Watch``) it is recorded as ended (bounded: at most ``max_ended`` keys,
  each for ``ended_seconds``), then its journal records are dropped (compaction); a restart
  does not run an ended key again and dead-letters its late messages;
* the checkpoint holds a fingerprint of the model and its readers; another model's or other
  readers' checkpoint is refused.

Everything read back is JSON, size-checked before parsing and validated; never pickle.
Backends: a local folder, ``gs://...`` (Beam's FileSystems) or a SQLAlchemy database URL (one
checkpoint per database: table ``pbb_checkpoint``).

Not covered yet: a message whose key is unusable (missing, unsafe, not one of the run's keys)
stays in the journal (no key ever ends for it) and is dead-lettered again after each restart;
compaction reads the whole journal (at most every batch of ended keys), so its cost grows with
the messages of open keys; FileWriters are refused with a checkpoint. Component state is never
snapshotted (it is rebuilt by replay), so no component state has to be serialisable.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
import hashlib
import itertools
import json
import logging
import os
from pathlib import Path
import queue
import re
import tempfile
import threading
import time
import typing as _t

from plugboard_beam.exceptions import UserError

log = logging.getLogger("plugboard_beam")

#: format version of everything the checkpoint stores
VERSION = 1
#: bytes a stored object may have before it is parsed (a segment is split when it grows past
#: ``SEGMENT_BYTES``; one message is at most 10 MB on Pub/Sub, base64 makes it 13.4 MB)
MAX_OBJECT_BYTES = 64 << 20
SEGMENT_BYTES = 8 << 20
#: a journaled message's limits (Pub/Sub's own)
MAX_DATA_BYTES = 10 << 20
MAX_ATTRIBUTES = 100
#: how many ended keys are remembered, and for how long (seconds)
MAX_ENDED = 100_000
ENDED_SECONDS = 7 * 24 * 3600.0
#: message ids an intake remembers to skip redeliveries of journaled messages
MAX_KNOWN_IDS = 1_000_000

META = "meta.json"
ENDED = "ended.json"


class CheckpointError(UserError):
    """The checkpoint cannot be used (another model's, unreadable, unreachable)."""


# ----------------------------------------------------------------------------- stores
class Store(_t.Protocol):
    """Named blobs, each written atomically and durably."""

    where: str

    def put(self, name: str, blob: bytes) -> None: ...
    def get(self, name: str) -> _t.Optional[bytes]: ...
    def list(self, prefix: str) -> list[str]: ...
    def delete(self, name: str) -> None: ...


_NAME = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")


def _check_name(name: str) -> str:
    if not _NAME.fullmatch(name) or ".." in name:
        raise ValueError(f"not a checkpoint object name: {name!r}")
    return name


class FolderStore:
    """A local folder: tmp file + fsync + rename + fsync of the folder."""

    def __init__(self, root: str) -> None:
        self.root = Path(root)
        self.where = str(self.root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CheckpointError(f"--checkpoint {root}: cannot create the folder: {exc.strerror or exc}") from None

    def put(self, name: str, blob: bytes) -> None:
        path = self.root / _check_name(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def get(self, name: str) -> _t.Optional[bytes]:
        path = self.root / _check_name(name)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return None
        if size > MAX_OBJECT_BYTES:
            raise ValueError(f"{size} bytes, over the {MAX_OBJECT_BYTES}-byte limit")
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    def list(self, prefix: str) -> list[str]:
        folder = self.root / _check_name(prefix)
        if not folder.is_dir():
            return []
        # tmp files of an interrupted write start with a dot: never listed
        return sorted(f"{prefix}/{p.name}" for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))

    def delete(self, name: str) -> None:
        try:
            (self.root / _check_name(name)).unlink()
        except FileNotFoundError:
            pass


class SqlStore:
    """A database through SQLAlchemy: one table ``pbb_checkpoint`` (name, blob); each put is
    one transaction (SQLite, PostgreSQL, ...)."""

    TABLE = "pbb_checkpoint"

    def __init__(self, url: str) -> None:
        from sqlalchemy import Column, LargeBinary, MetaData, String, Table, create_engine

        from plugboard_beam.library.sql_io import safe_url

        self.where = safe_url(url)
        meta = MetaData()
        self.table = Table(self.TABLE, meta, Column("name", String(400), primary_key=True),
                           Column("blob", LargeBinary, nullable=False))
        try:
            self.engine = create_engine(url)
            meta.create_all(self.engine)
        except Exception as exc:
            detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
            raise CheckpointError(f"--checkpoint {self.where}: cannot use the database: {type(exc).__name__}: "
                                  f"{detail[0] if detail else ''}") from None

    def put(self, name: str, blob: bytes) -> None:
        t = self.table
        with self.engine.begin() as conn:
            conn.execute(t.delete().where(t.c.name == _check_name(name)))
            conn.execute(t.insert().values(name=name, blob=blob))

    def get(self, name: str) -> _t.Optional[bytes]:
        from sqlalchemy import func, select

        t = self.table
        with self.engine.connect() as conn:
            size = conn.execute(select(func.length(t.c.blob)).where(t.c.name == _check_name(name))).scalar()
            if size is None:
                return None
            if int(size) > MAX_OBJECT_BYTES:
                raise ValueError(f"{size} bytes, over the {MAX_OBJECT_BYTES}-byte limit")
            blob = conn.execute(select(t.c.blob).where(t.c.name == name)).scalar()
        return None if blob is None else bytes(blob)

    def list(self, prefix: str) -> list[str]:
        from sqlalchemy import select

        t = self.table
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.name).where(t.c.name.startswith(_check_name(prefix) + "/",
                                                                            autoescape=True)))
            return sorted(str(r[0]) for r in rows)

    def delete(self, name: str) -> None:
        t = self.table
        with self.engine.begin() as conn:
            conn.execute(t.delete().where(t.c.name == _check_name(name)))


class FileSystemsStore:
    """``gs://`` (any Beam FileSystems URL): an object is written whole when its writer closes,
    so a put is atomic."""

    def __init__(self, url: str) -> None:
        self.root = url.rstrip("/")
        self.where = self.root

    def _url(self, name: str) -> str:
        return f"{self.root}/{_check_name(name)}"

    def put(self, name: str, blob: bytes) -> None:
        from apache_beam.io.filesystem import CompressionTypes
        from apache_beam.io.filesystems import FileSystems

        with FileSystems.create(self._url(name), mime_type="application/json",
                                compression_type=CompressionTypes.UNCOMPRESSED) as f:
            f.write(blob)

    def get(self, name: str) -> _t.Optional[bytes]:
        from apache_beam.io.filesystem import CompressionTypes
        from apache_beam.io.filesystems import FileSystems

        url = self._url(name)
        found = FileSystems.match([url])[0].metadata_list
        if not found:
            return None
        if found[0].size_in_bytes > MAX_OBJECT_BYTES:
            raise ValueError(f"{found[0].size_in_bytes} bytes, over the {MAX_OBJECT_BYTES}-byte limit")
        with FileSystems.open(url, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            return bytes(f.read(MAX_OBJECT_BYTES + 1))

    def list(self, prefix: str) -> list[str]:
        from apache_beam.io.filesystems import FileSystems

        base = f"{self.root}/"
        found = FileSystems.match([f"{self._url(prefix)}/*"])[0].metadata_list
        names = [m.path[len(base):] for m in found if m.path.startswith(base)]
        return sorted(n for n in names if _NAME.fullmatch(n))

    def delete(self, name: str) -> None:
        from apache_beam.io.filesystems import FileSystems

        try:
            FileSystems.delete([self._url(name)])
        except Exception:  # already gone
            log.debug("delete of %s failed", name, exc_info=True)


def open_store(url: str) -> Store:
    """The store ``--checkpoint`` names: ``gs://...``, a SQLAlchemy URL (``sqlite:///...``,
    ``postgresql://...``) or a local folder."""
    if not isinstance(url, str) or not url.strip():
        raise CheckpointError("--checkpoint needs a folder, a gs:// URL or a database URL")
    if url.startswith("gs://"):
        return FileSystemsStore(url)
    scheme = re.match(r"([a-z][a-z0-9+]*)://", url)
    if scheme:
        if scheme.group(1).split("+")[0] in ("sqlite", "postgresql", "mysql", "mariadb", "mssql", "oracle"):
            return SqlStore(url)
        raise CheckpointError(f"--checkpoint: {scheme.group(1)}:// is not supported (a folder, gs:// or a "
                              "SQLAlchemy database URL such as sqlite:///checkpoint.db)")
    return FolderStore(url)


# ----------------------------------------------------------------------------- records
@dataclass(frozen=True)
class Record:
    """One pulled message as journaled."""

    message_id: str
    data: bytes
    attributes: dict[str, str]
    publish_micros: int
    key: str

    def to_json(self) -> dict[str, _t.Any]:
        return {"id": self.message_id, "data": base64.b64encode(self.data).decode("ascii"),
                "attrs": self.attributes, "time": self.publish_micros, "key": self.key}

    @classmethod
    def from_json(cls, obj: _t.Any) -> Record:
        """A validated record (ValueError otherwise)."""
        if not isinstance(obj, dict):
            raise ValueError("a record is not an object")
        mid, data, attrs, micros, key = (obj.get(k) for k in ("id", "data", "attrs", "time", "key"))
        if not isinstance(mid, str) or not isinstance(data, str) or not isinstance(key, str):
            raise ValueError("a record's id, data or key is not a string")
        if type(micros) is not int or not isinstance(attrs, dict) or len(attrs) > MAX_ATTRIBUTES:
            raise ValueError("a record's time or attributes are malformed")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in attrs.items()):
            raise ValueError("a record's attributes are not strings")
        if len(data) > (MAX_DATA_BYTES * 4) // 3 + 4:
            raise ValueError("a record's data is over 10 MB")
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("a record's data is not base64") from None
        return cls(mid, raw, dict(attrs), micros, key)


def _dumps(obj: _t.Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def _loads(blob: bytes, what: str) -> _t.Any:
    try:
        return json.loads(blob.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{what} is not JSON ({exc})") from None


def journal_prefix(reader: str) -> str:
    """Where a reader's journal segments are (reader names are identifiers)."""
    return "journal/" + re.sub(r"[^A-Za-z0-9._-]", "_", reader)


class Journal:
    """One reader's intake journal in a store: segments named by time, so they sort in order."""

    def __init__(self, store: Store, reader: str, subscription: str) -> None:
        self.store = store
        self.reader = reader
        self.subscription = subscription
        self.prefix = journal_prefix(reader)
        self._counter = itertools.count()
        self.skipped = 0  # segments that could not be read back (named in a warning each)

    def _name(self) -> str:
        return f"{self.prefix}/{time.time_ns():020d}-{os.getpid()}-{next(self._counter):08d}.json"

    def _blob(self, records: _t.Sequence[Record]) -> bytes:
        return _dumps({"v": VERSION, "reader": self.reader, "subscription": self.subscription,
                       "records": [r.to_json() for r in records]})

    def append(self, records: _t.Sequence[Record]) -> None:
        """Write ``records`` durably (one or more segments, each atomic) before returning."""
        batch: list[Record] = []
        size = 0
        for r in records:
            n = len(r.data) * 4 // 3 + 200 + sum(len(k) + len(v) for k, v in r.attributes.items())
            if batch and size + n > SEGMENT_BYTES:
                self.store.put(self._name(), self._blob(batch))
                batch, size = [], 0
            batch.append(r)
            size += n
        if batch:
            self.store.put(self._name(), self._blob(batch))

    def _read(self, name: str) -> _t.Optional[list[Record]]:
        try:
            blob = self.store.get(name)
            if blob is None:
                return None
            obj = _loads(blob, "the segment")
            if not isinstance(obj, dict) or obj.get("v") != VERSION or not isinstance(obj.get("records"), list):
                raise ValueError("not a journal segment of this version")
            if obj.get("reader") != self.reader or obj.get("subscription") != self.subscription:
                raise ValueError(f"a segment of reader {obj.get('reader')!r} / {obj.get('subscription')!r}")
            return [Record.from_json(r) for r in obj["records"]]
        except ValueError as exc:
            self.skipped += 1
            log.warning("checkpoint %s: journal segment %s of reader %r is skipped: %s", self.store.where,
                        name, self.reader, exc)
            return None

    def segments(self) -> _t.Iterator[tuple[str, list[Record]]]:
        """Every readable segment, oldest first."""
        for name in self.store.list(self.prefix):
            records = self._read(name)
            if records is not None:
                yield name, records

    def replay(self, ended: _t.Container[str]) -> list[Record]:
        """The journaled messages of keys that have not ended, in the order they were pulled
        (a message journaled twice is replayed once)."""
        seen: set[str] = set()
        out: list[Record] = []
        for _, records in self.segments():
            for r in records:
                if r.key in ended or (r.message_id and r.message_id in seen):
                    continue
                seen.add(r.message_id)
                out.append(r)
        return out

    def compact(self, ended: _t.Container[str]) -> int:
        """Drop the records of ended keys (a segment rewritten atomically, or deleted when
        empty); how many were dropped."""
        dropped = 0
        for name, records in self.segments():
            kept = [r for r in records if r.key not in ended]
            if len(kept) == len(records):
                continue
            dropped += len(records) - len(kept)
            if kept:
                self.store.put(name, self._blob(kept))
            else:
                self.store.delete(name)
        return dropped


# ----------------------------------------------------------------------------- the read side
@dataclass(frozen=True)
class IntakeSpec:
    """What the patched Pub/Sub read of one reader needs (picklable: it travels with the read
    transform through Beam's pipeline round trip); ``open`` gives the live ``Intake``."""

    url: str
    reader: str
    subscription: str
    key_attribute: str
    ended: frozenset[str]

    def open(self) -> Intake:
        return Intake(self, open_store(self.url))


class Intake:
    """The journal of one reader's subscription as its read uses it: replay first, then every
    pulled message journaled before it is acknowledged."""

    def __init__(self, spec: IntakeSpec, store: Store) -> None:
        self.spec = spec
        self.journal = Journal(store, spec.reader, spec.subscription)
        pending = self.journal.replay(spec.ended)
        self._replay = pending[::-1]  # popped from the end
        self.replayed = 0
        self.known: dict[str, None] = {r.message_id: None for r in pending if r.message_id}
        if pending:
            log.info("checkpoint: replaying %d journaled message(s) of reader %r", len(pending), spec.reader)

    def next_replay(self, limit: int) -> list[Record]:
        """Up to ``limit`` journaled messages still to replay (empty once all were)."""
        out = [self._replay.pop() for _ in range(min(limit, len(self._replay)))]
        self.replayed += len(out)
        return out

    def admit(self, messages: _t.Sequence[tuple[str, bytes, _t.Mapping[str, str], int]]) -> list[int]:
        """Journal the pulled messages ((message id, data, attributes, publish time in µs));
        returns the indices of those to process (a message already journaled is a redelivery:
        left out). Returns only once the journal is durable: the caller may then acknowledge."""
        fresh: list[int] = []
        records: list[Record] = []
        for i, (mid, data, attrs, micros) in enumerate(messages):
            if mid and mid in self.known:
                continue
            if mid:
                self.known[mid] = None
            fresh.append(i)
            attributes = {str(k): str(v) for k, v in attrs.items()}
            records.append(Record(mid, bytes(data), attributes, int(micros),
                                  attributes.get(self.spec.key_attribute, "")))
        if records:
            self.journal.append(records)
        while len(self.known) > MAX_KNOWN_IDS:
            del self.known[next(iter(self.known))]
        return fresh


# ----------------------------------------------------------------------------- the driver side
class ReaderIdentity(_t.NamedTuple):
    """What of a reader a checkpoint is bound to."""

    name: str
    subscription: str
    fields: tuple[str, ...]
    key_attribute: str


def fingerprint(model_config: _t.Any, readers: _t.Sequence[ReaderIdentity]) -> str:
    """A digest of the model (its validated config, overrides applied) and its readers."""
    return hashlib.sha256(_dumps({"model": model_config, "readers": [list(r) for r in readers]})).hexdigest()


class Checkpoint:
    """A run's checkpoint: fingerprint, ended keys, the readers' journals, compaction."""

    def __init__(self, store: Store, url: str, readers: _t.Sequence[ReaderIdentity],
                 max_ended: int = MAX_ENDED, ended_seconds: float = ENDED_SECONDS) -> None:
        self.store = store
        self.url = url
        self.readers = list(readers)
        self.max_ended = max_ended
        self.ended_seconds = ended_seconds
        self._ended: dict[str, dict[str, _t.Any]] = {}
        self._queue: queue.Queue[_t.Optional[tuple[str, _t.Optional[dict[str, _t.Any]]]]] = queue.Queue()
        self._thread: _t.Optional[threading.Thread] = None
        self.errors: list[str] = []
        self.compacted = 0

    @classmethod
    def open(cls, url: str, model_name: str, model_config: _t.Any, readers: _t.Sequence[ReaderIdentity],
             **limits: _t.Any) -> Checkpoint:
        """Open (or start) the checkpoint at ``url`` for this model; refuse another model's."""
        store = open_store(url)
        ckpt = cls(store, url, readers, **limits)
        digest = fingerprint(model_config, readers)
        try:
            blob = store.get(META)
            meta = None if blob is None else _loads(blob, "meta.json")
        except CheckpointError:
            raise
        except Exception as exc:
            raise CheckpointError(f"--checkpoint {store.where}: cannot read it: {type(exc).__name__}: {exc}") from None
        if meta is None:
            try:
                store.put(META, _dumps({"v": VERSION, "model": model_name, "fingerprint": digest,
                                        "readers": [list(r) for r in readers]}))
            except Exception as exc:
                raise CheckpointError(f"--checkpoint {store.where}: cannot write it: {type(exc).__name__}: "
                                      f"{exc}") from None
        elif not isinstance(meta, dict) or meta.get("v") != VERSION:
            raise CheckpointError(f"--checkpoint {store.where} is not a plugboard_beam checkpoint of version {VERSION}")
        elif meta.get("fingerprint") != digest:
            theirs = meta.get("readers")
            same_readers = theirs == json.loads(_dumps([list(r) for r in readers]))
            what = "other component arguments or connections" if same_readers else "other Pub/Sub readers"
            raise CheckpointError(
                f"--checkpoint {store.where} was made by model {str(meta.get('model'))[:100]!r} with {what} "
                f"than this run's (model {model_name!r}); use a new checkpoint for a changed model or readers")
        ckpt._load_ended()
        return ckpt

    # ---- ended keys
    def _load_ended(self) -> None:
        try:
            blob = self.store.get(ENDED)
            obj = {} if blob is None else _loads(blob, "ended.json")
            keys = obj.get("keys", {}) if isinstance(obj, dict) else None
            if not isinstance(keys, dict):
                raise ValueError("not a record of ended keys")
        except Exception as exc:
            raise CheckpointError(f"--checkpoint {self.store.where}: cannot read its ended keys: {exc}") from None
        now = time.time()
        for key, entry in keys.items():
            if (isinstance(key, str) and isinstance(entry, dict) and isinstance(entry.get("t"), (int, float))
                    and (entry.get("failure") is None or isinstance(entry.get("failure"), dict))
                    and now - entry["t"] < self.ended_seconds):
                self._ended[key] = {"t": float(entry["t"]), "failure": entry.get("failure")}

    def ended(self) -> dict[str, _t.Optional[dict[str, _t.Any]]]:
        """Keys recorded as ended (and not expired): key -> its failure row, or None."""
        return {k: v["failure"] for k, v in self._ended.items()}

    def intake(self, reader: ReaderIdentity) -> IntakeSpec:
        """The spec the patched read of ``reader`` opens."""
        return IntakeSpec(self.url, reader.name, reader.subscription, reader.key_attribute, frozenset(self._ended))

    def start(self) -> None:
        """Start recording ended keys and compacting (on a thread)."""
        self._thread = threading.Thread(target=self._work, daemon=True, name="checkpoint")
        self._thread.start()

    def key_ended(self, key: str, failure: _t.Optional[dict[str, _t.Any]] = None) -> None:
        """A key has ended (all stages done, all outputs seen): record it, then compact."""
        self._queue.put((key, failure))

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            items = [item]
            while True:  # a batch: everything queued now
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            new = [i for i in items if i is not None]
            if new:
                try:
                    self.record_ended(new)
                    self.compact()
                except Exception as exc:  # the checkpoint still holds the keys: they replay after a restart
                    msg = f"checkpoint {self.store.where}: cannot record ended keys: {type(exc).__name__}: {exc}"
                    self.errors.append(msg)
                    log.error("%s", msg)
            if len(new) < len(items):
                return

    def record_ended(self, items: _t.Sequence[tuple[str, _t.Optional[dict[str, _t.Any]]]]) -> None:
        """Record keys as ended (durably), dropping expired ones and the oldest beyond ``max_ended``."""
        now = time.time()
        for key, failure in items:
            self._ended[key] = {"t": now, "failure": failure}
        live = sorted(((v["t"], k) for k, v in self._ended.items() if now - v["t"] < self.ended_seconds))
        self._ended = {k: self._ended[k] for _, k in live[-self.max_ended:]}
        self.store.put(ENDED, _dumps({"v": VERSION, "keys": self._ended}))

    def compact(self) -> int:
        """Drop the journal records of every ended key; how many were dropped."""
        ended = set(self._ended)
        dropped = sum(Journal(self.store, r.name, r.subscription).compact(ended) for r in self.readers)
        self.compacted += dropped
        return dropped

    def close(self, seconds: float = 10.0) -> bool:
        """Finish recording what has ended (at most ``seconds``); whether done."""
        if self._thread is None:
            return True
        self._queue.put(None)
        self._thread.join(seconds)
        done = not self._thread.is_alive()
        if not done:
            log.warning("checkpoint %s: recording ended keys did not finish within %.0f s; they will be "
                        "replayed after a restart", self.store.where, seconds)
        self._thread = None
        return done


def for_run(url: str, model: _t.Any, res: _t.Any) -> Checkpoint:
    """The checkpoint of a streaming run of ``model`` (a ``LoadedModel``) with resources
    ``res`` (``streaming.resources.Resources``); a ``UserError`` for what it cannot honour."""
    from plugboard_beam.lowering.dataio import windowed_writes
    from plugboard_beam.lowering.patches import journal_pubsub_reads

    ephemeral = [r.name for r in res.readers if r.own_subscription]
    if ephemeral:
        raise CheckpointError(
            f"--checkpoint needs a durable subscription for every PubSubReader: {', '.join(ephemeral)} "
            "read(s) a topic through a subscription made for the run, so messages published while the run "
            "is down would be lost; give `subscription:` (e.g. -p NAME.subscription=SUB)")
    files = sorted(windowed_writes(model, set()))
    if files:
        raise CheckpointError(f"--checkpoint does not cover FileWriters in streaming yet ({', '.join(files)}): "
                              "their windowed files would be written again after a restart")
    if not journal_pubsub_reads():
        from plugboard_beam.lowering.patches import TESTED, beam_version

        raise CheckpointError(f"--checkpoint needs the journaled Pub/Sub read, which is tested on Beam "
                              f"{', '.join(f'{a}.{b}' for a, b in TESTED)}, not the installed "
                              f"{'.'.join(map(str, beam_version()))}")
    readers = [ReaderIdentity(r.name, r.subscription, tuple(r.fields), r.key_attribute) for r in res.readers]
    config = model.config.model_dump(mode="json")
    # a run's job id is its own (generated when not given): a restart is the same model
    config.get("plugboard", {}).get("process", {}).get("args", {}).get("state", {}).get("args", {}).pop("job_id", None)
    return Checkpoint.open(url, model.graph.name, config, readers)


__all__ = ["Checkpoint", "CheckpointError", "FileSystemsStore", "FolderStore", "Intake", "IntakeSpec", "Journal",
           "ReaderIdentity", "Record", "SqlStore", "Store", "fingerprint", "for_run", "open_store"]
