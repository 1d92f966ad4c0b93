"""Pub/Sub components: ``PubSubReader`` (a source) and ``PubSubWriter`` (a sink).

Message protocol (the same on every engine):

* **Input** (to a reader): data is a JSON object with one entry per name in ``fields``; the
  attribute ``key_attribute`` (default ``key``) picks the model instance; the integer attribute
  ``seq`` (0, 1, 2, ... per key) orders the messages of a key — a later one waits for a missing
  earlier one; without ``seq``, arrival order is used. A message whose attribute ``eos`` is
  ``"true"`` (with its own ``seq``, after the last value) ends that key's stream. Redelivered
  messages (same ``seq``, or same message id) are dropped.
* **Malformed input** (not JSON, not an object, a field missing, a bad ``seq``, no key, over
  the reader's decode limits ``max_payload_bytes`` / ``max_depth`` / ``max_int_digits``, checked
  before parsing: see ``json_limits``) goes to the dead-letter topic (``dead_letter_topic``,
  default ``<topic>-dead-letter``) with the reason in the attribute ``reason``, cut to fit
  Pub/Sub's limits; it never stops the pipeline.
* **Output** (from a writer): one strict JSON object per step, ``{field: value, ...}``, with
  attributes ``key`` and ``step``; when the key's stream ends, one more message with attributes
  ``key``, ``eos="true"`` and ``count`` (the number of data messages before it). A step whose
  message is not strict JSON (``NaN``, ``Infinity``, ...) or is over ``max_message_bytes``
  fails its key instead of being published.

Under the Beam lowering both are replaced by Beam's Pub/Sub IO (the reader's messages feed the
stage as chunks; the writer's messages go to ``WriteToPubSub``). Under ``LocalProcess`` they
use google-cloud-pubsub directly.
"""

from __future__ import annotations

from dataclasses import dataclass
import os
import typing as _t

from plugboard_beam.component.component import Component
from plugboard_beam.component.io_controller import IOController
from plugboard_beam.library._common import field_names
from plugboard_beam.library.json_limits import (
    MAX_PUBLISH_BYTES,
    DecodeLimits,
    LimitExceeded,
    NotJSON,
    dumps_strict,
    fit_message,
    loads_limited,
    message_size,
)
from plugboard_beam.schemas import ComponentArgsDict

DEFAULT_PROJECT = "plugboard-beam-local"
DEFAULT_LIMITS = DecodeLimits()


def project_id(explicit: _t.Optional[str] = None) -> str:
    """The project of short topic names: the argument, else the environment, else a local one."""
    return (explicit or os.environ.get("PUBSUB_PROJECT_ID") or os.environ.get("GOOGLE_CLOUD_PROJECT")
            or DEFAULT_PROJECT)


def topic_path(name: str, project: _t.Optional[str] = None) -> str:
    """``projects/P/topics/NAME`` for a short or full name."""
    return name if name.startswith("projects/") else f"projects/{project_id(project)}/topics/{name}"


def subscription_path(name: str, project: _t.Optional[str] = None) -> str:
    """``projects/P/subscriptions/NAME`` for a short or full name."""
    return name if name.startswith("projects/") else f"projects/{project_id(project)}/subscriptions/{name}"


def subscriber_client() -> _t.Any:
    """A ``SubscriberClient`` that receives any message Pub/Sub holds (up to 10 MB).

    google-cloud-pubsub opens the emulator's channel (``PUBSUB_EMULATOR_HOST``) without the
    options it gives the real service's, so gRPC's default 4 MB limit on a response applies: a
    pull holding a larger message fails (RESOURCE_EXHAUSTED), the message is redelivered and
    fails again, and one 4.5 MB message hung a run (issue 15). Here the emulator's channel has
    no such limit, as the service's has not."""
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]

    host = os.environ.get("PUBSUB_EMULATOR_HOST")
    if not host:
        return pubsub_v1.SubscriberClient()
    from google.pubsub_v1.services.subscriber.transports.grpc import SubscriberGrpcTransport
    import grpc

    channel = grpc.insecure_channel(host, options=[("grpc.max_receive_message_length", -1),
                                                   ("grpc.max_send_message_length", -1)])
    return pubsub_v1.SubscriberClient(transport=SubscriberGrpcTransport(host=host, channel=channel))


def short_name(path: str) -> str:
    """The last part of a resource path."""
    return path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Parsed:
    """A well-formed input message."""

    key: str
    seq: _t.Optional[int]
    eos: bool
    values: tuple[_t.Any, ...]  # one per field (empty for eos)


@dataclass(frozen=True)
class Rejected:
    """A malformed input message and why."""

    reason: str
    key: str = ""


def parse_message(data: bytes, attributes: _t.Mapping[str, str], fields: _t.Sequence[str],
                  key_attribute: str = "key", limits: DecodeLimits = DEFAULT_LIMITS) -> _t.Union[Parsed, Rejected]:
    """Check and decode one input message (its payload within ``limits`` before it is parsed)."""
    key = attributes.get(key_attribute)
    if not key:
        return Rejected(f"no '{key_attribute}' attribute (it names the model instance)")
    seq: _t.Optional[int] = None
    if "seq" in attributes:
        try:
            seq = int(attributes["seq"])
        except ValueError:
            return Rejected(f"attribute seq={attributes['seq']!r} is not an integer", key)
        if seq < 0:
            return Rejected(f"attribute seq={seq} is negative", key)
    if attributes.get("eos", "").lower() == "true":
        return Parsed(key, seq, True, ())
    try:
        payload = loads_limited(data, limits)
    except LimitExceeded as exc:
        return Rejected(f"payload refused: {exc}", key)
    except ValueError as exc:
        return Rejected(str(exc), key)
    if not isinstance(payload, dict):
        return Rejected(f"payload is a JSON {type(payload).__name__}, not an object", key)
    missing = [f for f in fields if f not in payload]
    if missing:
        return Rejected(f"payload lacks field(s) {', '.join(missing)}", key)
    return Parsed(key, seq, False, tuple(payload[f] for f in fields))




def reader_limits(args: _t.Mapping[str, _t.Any]) -> DecodeLimits:
    """The decode limits of a ``PubSubReader``'s arguments (``max_payload_bytes``, ``max_depth``,
    ``max_int_digits``; defaults for those not given); ``ValueError`` naming a bad one."""
    try:
        return DecodeLimits.of(args.get("max_payload_bytes"), args.get("max_depth"), args.get("max_int_digits"))
    except ValueError as exc:
        raise ValueError(str(exc).replace("max_bytes", "max_payload_bytes")) from None


#: defaults of a reader's reorder window: a key whose messages wait this many (or this long) for a
#: missing earlier ``seq`` fails, naming the reader, the key and the missing seq
REORDER_WINDOW_COUNT = 1000
REORDER_WINDOW_SECONDS = 600.0


def reorder_window(args: _t.Mapping[str, _t.Any]) -> tuple[int, float]:
    """(count, seconds) of a reader's reorder window from its arguments; ``ValueError`` if bad."""
    count = args.get("reorder_window_count", REORDER_WINDOW_COUNT)
    seconds = args.get("reorder_window_seconds", REORDER_WINDOW_SECONDS)
    if type(count) is not int or count < 0:
        raise ValueError(f"reorder_window_count must be an integer >= 0 (0: no limit), not {count!r}")
    if type(seconds) not in (int, float) or not 0 <= seconds <= 1e7:
        raise ValueError(f"reorder_window_seconds must be a number of seconds >= 0 (0: no limit), not {seconds!r}")
    return count, float(seconds)


class PubSubReader(Component):
    """A source whose output fields are the ``fields`` of JSON messages read from Pub/Sub."""

    io = IOController()

    def __init__(
        self,
        fields: list[str],
        subscription: _t.Optional[str] = None,
        topic: _t.Optional[str] = None,
        key_attribute: str = "key",
        dead_letter_topic: _t.Optional[str] = None,
        project: _t.Optional[str] = None,
        timeout: float = 0.0,
        max_payload_bytes: _t.Optional[int] = None,
        max_depth: _t.Optional[int] = None,
        max_int_digits: _t.Optional[int] = None,
        reorder_window_count: int = REORDER_WINDOW_COUNT,
        reorder_window_seconds: float = REORDER_WINDOW_SECONDS,
        **kwargs: _t.Unpack[ComponentArgsDict],
    ) -> None:
        super().__init__(**kwargs)
        self.fields = field_names({"fields": fields})
        # streaming: how long a key's messages wait for a missing earlier seq (0: no limit)
        self.reorder_window_count, self.reorder_window_seconds = reorder_window(
            {"reorder_window_count": reorder_window_count, "reorder_window_seconds": reorder_window_seconds})
        if not (subscription or topic):
            raise ValueError(f"PubSubReader {self.name!r}: give a subscription or a topic")
        #: checked on every payload before it is parsed (``json_limits``); None: the default
        self.limits = DecodeLimits.of(max_payload_bytes, max_depth, max_int_digits)
        self.io = IOController(outputs=self.fields, namespace=self.name)
        self.subscription = subscription
        self.topic = topic
        self.key_attribute = key_attribute
        self.project = project
        self.dead_letter_topic = dead_letter_topic or (
            f"{short_name(topic or subscription or 'input')}-dead-letter")
        self.timeout = timeout  # local: give up after this many idle seconds (0 = wait forever)
        self._next = 0
        self._buffer: dict[int, Parsed] = {}
        self.dead_letters = 0

    @classmethod
    def io_for(cls, args: _t.Mapping[str, _t.Any]) -> IOController:
        if not (args.get("subscription") or args.get("topic")):
            raise ValueError("PubSubReader needs a 'subscription' or a 'topic'")
        reader_limits(args)
        return IOController(outputs=field_names(args))

    # ---- local execution (LocalProcess / --runner local): google-cloud-pubsub directly
    def init(self) -> None:  # type: ignore[override]
        from google.cloud import pubsub_v1  # type: ignore[attr-defined]

        self._subscriber = subscriber_client()
        self._publisher = pubsub_v1.PublisherClient()
        self._own_subscription = None
        if self.subscription:
            self._sub_path = subscription_path(self.subscription, self.project)
        else:
            topic = topic_path(_t.cast(str, self.topic), self.project)
            self._sub_path = subscription_path(f"{short_name(topic)}-{self.name}-local", self.project)
            ensure_subscription(self._publisher, self._subscriber, self._sub_path, topic)
        self._key = getattr(self, "_plugboard_beam_key", "")

    def step(self) -> None:  # type: ignore[override]
        import time

        deadline = time.monotonic() + self.timeout if self.timeout else float("inf")
        gap_since: _t.Optional[float] = None
        while self._next not in self._buffer:
            now = time.monotonic()
            if now > deadline:
                raise TimeoutError(f"no message with seq {self._next} within {self.timeout} s")
            if self._buffer:  # a gap: later messages wait, within the reorder window
                gap_since = now if gap_since is None else gap_since
                count, seconds = self.reorder_window_count, self.reorder_window_seconds
                over = bool(count) and len(self._buffer) >= count
                if over or (seconds and now - gap_since >= seconds):
                    from plugboard_beam.runtime.stage import SeqGap

                    later = sorted(self._buffer)
                    why = f"count {count}" if over else f"{seconds:g} s"
                    raise SeqGap(
                        f"the message with seq {self._next} never arrived: {len(later)} later message(s) (seq "
                        f"{later[0]}..{later[-1]}) waited {now - gap_since:.1f} s for it, beyond the reorder "
                        f"window ({why}; reorder_window_count={count}, reorder_window_seconds={seconds:g})")
            self._pull()
        msg = self._buffer.pop(self._next)
        self._next += 1
        if msg.eos:
            self.io.close_sync()
            return
        for f, v in zip(self.fields, msg.values, strict=True):
            setattr(self, f, v)

    def _pull(self) -> None:
        resp = self._subscriber.pull(subscription=self._sub_path, max_messages=100, timeout=5.0)
        ack, nack = [], []
        for rm in resp.received_messages:
            m = rm.message
            parsed = parse_message(m.data, dict(m.attributes), self.fields, self.key_attribute, self.limits)
            if isinstance(parsed, Parsed) and self._key not in ("", "default") and parsed.key != self._key:
                nack.append(rm.ack_id)  # another instance's message
                continue
            ack.append(rm.ack_id)
            if isinstance(parsed, Rejected):
                self.dead_letters += 1
                data, attrs = fit_message(m.data, {"reason": parsed.reason, "key": parsed.key}, keep=["reason"])
                self._publisher.publish(topic_path(self.dead_letter_topic, self.project), data, **attrs).result()
                continue
            seq = parsed.seq if parsed.seq is not None else self._arrival()
            if seq >= self._next and seq not in self._buffer:
                self._buffer[seq] = parsed
        if ack:
            self._subscriber.acknowledge(subscription=self._sub_path, ack_ids=ack)
        if nack:
            self._subscriber.modify_ack_deadline(subscription=self._sub_path, ack_ids=nack, ack_deadline_seconds=0)

    def _arrival(self) -> int:
        seq = self._next + len(self._buffer)
        while seq in self._buffer:
            seq += 1
        return seq

    def destroy(self) -> None:  # type: ignore[override]
        subscriber = self.__dict__.get("_subscriber")
        if subscriber is not None:
            subscriber.close()


class PubSubWriter(Component):
    """A sink publishing one JSON object of its input ``fields`` per step to ``topic``."""

    io = IOController()

    def __init__(self, topic: str, fields: list[str], project: _t.Optional[str] = None,
                 max_message_bytes: int = MAX_PUBLISH_BYTES, **kwargs: _t.Unpack[ComponentArgsDict]) -> None:
        super().__init__(**kwargs)
        self.fields = field_names({"fields": fields})
        self.io = IOController(inputs=self.fields, initial_values=self.initial_values, namespace=self.name)
        self.topic = topic
        self.project = project
        self.max_message_bytes = writer_limit(max_message_bytes)
        self.count = 0
        #: Under Beam the messages are collected here and published by WriteToPubSub.
        self.outbox: _t.Optional[list[tuple[bytes, dict[str, str]]]] = None

    @classmethod
    def io_for(cls, args: _t.Mapping[str, _t.Any]) -> IOController:
        if not args.get("topic"):
            raise ValueError("PubSubWriter needs a 'topic'")
        writer_limit(args.get("max_message_bytes", MAX_PUBLISH_BYTES))
        return IOController(inputs=field_names(args))

    @property
    def _key(self) -> str:
        return str(getattr(self, "_plugboard_beam_key", "") or "default")

    def init(self) -> None:  # type: ignore[override]
        if self.outbox is None:
            from google.cloud import pubsub_v1  # type: ignore[attr-defined]

            self._publisher = pubsub_v1.PublisherClient()
            self._topic_path = topic_path(self.topic, self.project)
            ensure_topic(self._publisher, self._topic_path)

    def _emit(self, data: bytes, attributes: dict[str, str]) -> None:
        if self.outbox is not None:
            self.outbox.append((data, attributes))
        else:
            self._publisher.publish(self._topic_path, data, **attributes).result()

    def _checked(self, value: _t.Any, attributes: dict[str, str]) -> tuple[bytes, dict[str, str]]:
        """``value`` as a message of strict JSON within ``max_message_bytes``; a ``ValueError``
        otherwise, raised in the step (or event handler): the key fails, named, and nothing of
        it reaches the topic (issue 15: never the whole pipeline)."""
        try:
            data = dumps_strict(value).encode()
        except NotJSON as exc:
            raise ValueError(f"the message is not strict JSON: {exc}") from None
        size = message_size(data, attributes)
        if size > self.max_message_bytes:
            raise ValueError(f"a message of {size:,} bytes is over the publish limit of "
                             f"{self.max_message_bytes:,} bytes (max_message_bytes)")
        return data, attributes

    def step(self) -> None:  # type: ignore[override]
        payload = {f: getattr(self, f) for f in self.fields}
        self._emit(*self._checked(payload, {"key": self._key, "step": str(self.count)}))
        self.count += 1

    def destroy(self) -> None:  # type: ignore[override]
        self._emit(b"", {"key": self._key, "eos": "true", "count": str(self.count), "step": str(self.count)})


def writer_limit(value: _t.Any) -> int:
    """A writer's ``max_message_bytes``: a positive integer up to Pub/Sub's own limit."""
    if type(value) is not int or not 0 < value <= MAX_PUBLISH_BYTES:
        raise ValueError(f"max_message_bytes must be an integer from 1 to {MAX_PUBLISH_BYTES:,} (Pub/Sub's limit "
                         f"less room for the request), got {value!r}")
    return value


def bounded_retry(timeout: _t.Optional[float]) -> _t.Any:
    """Retries of transient errors that end after ``timeout`` seconds in all (a per-call
    ``timeout`` alone bounds each attempt, not the retries: those go on for minutes)."""
    if timeout is None:
        from google.api_core.gapic_v1.method import DEFAULT

        return DEFAULT
    from google.api_core.retry import Retry

    return Retry(initial=0.2, maximum=2.0, multiplier=2.0, timeout=timeout)


def ensure_topic(publisher: _t.Any, path: str, timeout: _t.Optional[float] = None) -> None:
    """Create a topic unless it exists (within ``timeout`` seconds, retries included)."""
    from google.api_core import exceptions

    try:
        publisher.create_topic(name=path, timeout=timeout, retry=bounded_retry(timeout))
    except exceptions.AlreadyExists:
        pass


def ensure_subscription(publisher: _t.Any, subscriber: _t.Any, path: str, topic: str,
                        timeout: _t.Optional[float] = None, ack_deadline: int = 60) -> None:
    """Create a subscription (and its topic) unless it exists (each call within ``timeout``)."""
    from google.api_core import exceptions

    ensure_topic(publisher, topic, timeout)
    try:
        subscriber.create_subscription(name=path, topic=topic, ack_deadline_seconds=ack_deadline, timeout=timeout,
                                       retry=bounded_retry(timeout))
    except exceptions.AlreadyExists:
        pass
