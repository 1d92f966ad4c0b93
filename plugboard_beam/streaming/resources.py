"""The Pub/Sub topics and subscriptions a streaming run uses; everything it creates is its own.

* every ``PubSubReader`` reads its subscription, or a subscription made for the run on its topic;
* loops cut for streaming travel through the run's **feedback topic**
  ``pbb-<model>-<run id>-feedback`` (all cut edges of the run; the edge is inside each
  authenticated message), read through the run's own subscription — never through a user's
  topic; ``--feedback-topic`` names another topic;
* stage completions and failures go to the run's **control topic** ``pbb-<model>-<run id>-control``;
* malformed input goes to each reader's dead-letter topic (a user topic: kept).
Subscriptions and topics made for a run carry its run id and are deleted when it ends, each
admin call with a bounded timeout and no retries. On Dataflow the run id is the job name and
the job owns its read subscriptions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import re
import time
import typing as _t

from plugboard_beam.graph.model import Edge
from plugboard_beam.library.json_limits import DecodeLimits
from plugboard_beam.library.pubsub import (
    PubSubReader,
    PubSubWriter,
    ensure_subscription,
    ensure_topic,
    reader_limits,
    short_name,
    subscription_path,
    topic_path,
)
from plugboard_beam.spec.load import LoadedModel


def slug(text: str) -> str:
    """A Pub/Sub-safe name fragment."""
    s = re.sub(r"[^A-Za-z0-9._~+-]+", "-", text).strip("-")
    return s or "model"


def run_prefix(model: str, run_id: str) -> str:
    """``pbb-<model>-<run id>``: the start of every resource name of one run (at most ~120
    characters, so that suffixes stay within Pub/Sub's 255)."""
    return f"pbb-{slug(model)[:80]}-{slug(run_id)[:40]}"


@dataclass
class ReaderInfo:
    """A PubSubReader as the pipeline sees it."""

    name: str
    fields: tuple[str, ...]
    key_attribute: str
    subscription: str  # full path the pipeline reads
    topic: _t.Optional[str]  # full path (None if only a subscription was given)
    dead_letter_topic: str
    own_subscription: bool  # made for this run (deleted at the end)
    limits: DecodeLimits = field(default_factory=DecodeLimits)  # checked before a payload is parsed


@dataclass
class Resources:
    """Every topic and subscription of one streaming run."""

    project: str
    model: str
    run_id: str
    readers: list[ReaderInfo] = field(default_factory=list)
    writers: dict[str, str] = field(default_factory=dict)  # writer name -> topic path
    feedback_topic: _t.Optional[str] = None  # every cut edge of the run (None: no loop is cut, readers)
    feedback_subscription: _t.Optional[str] = None
    control_topic: str = ""
    control_subscription: str = ""
    writer_watch: dict[str, str] = field(default_factory=dict)  # writer -> driver subscription
    run_topics: list[str] = field(default_factory=list)  # topics made for this run (deleted at the end)
    created: list[str] = field(default_factory=list)  # run subscriptions and topics create() made so far

    #: read topics directly (Dataflow makes and owns a subscription per read) instead of
    #: subscriptions made by us before the run (DirectRunner: nothing published is missed)
    read_topics: bool = False

    @classmethod
    def plan(cls, model: LoadedModel, cut: _t.Sequence[Edge], project: str, run_id: str,
             feedback_override: _t.Optional[str] = None, read_topics: bool = False) -> Resources:
        """Name everything (contacts nothing)."""
        name = slug(model.graph.name)
        prefix = run_prefix(name, run_id)
        res = cls(project=project, model=name, run_id=run_id, read_topics=read_topics)
        for spec in model.config.plugboard.process.args.components:
            cls_ = model.classes[spec.args.name]
            args = spec.args.extra_args()
            if issubclass(cls_, PubSubReader):
                topic = topic_path(args["topic"], args.get("project") or project) if args.get("topic") else None
                own = not args.get("subscription")
                sub = (subscription_path(args["subscription"], args.get("project") or project) if not own
                       else subscription_path(slug(f"{prefix}-{spec.args.name}"), project))
                source_name = str(args.get("topic") or args.get("subscription"))
                dead = args.get("dead_letter_topic") or f"{short_name(source_name)}-dead-letter"
                res.readers.append(ReaderInfo(
                    name=spec.args.name, fields=tuple(args["fields"]), key_attribute=args.get("key_attribute", "key"),
                    subscription=sub, topic=topic, dead_letter_topic=topic_path(dead, project),
                    own_subscription=own, limits=reader_limits(args)))
            elif issubclass(cls_, PubSubWriter):
                res.writers[spec.args.name] = topic_path(args["topic"], args.get("project") or project)
        res.control_topic = topic_path(f"{prefix}-control", project)
        res.control_subscription = subscription_path(f"{prefix}-control", project)
        res.run_topics.append(res.control_topic)
        for w in res.writers:
            res.writer_watch[w] = subscription_path(slug(f"{prefix}-watch-{w}"), project)
        if cut or not res.readers:
            # (a model without readers reads its feedback subscription even with no loop: an
            # unbounded read keeps the pipeline streaming until the run cancels it)
            res.feedback_topic = topic_path(feedback_override or f"{prefix}-feedback", project)
            res.feedback_subscription = subscription_path(f"{prefix}-feedback", project)
            if not feedback_override:
                res.run_topics.append(res.feedback_topic)
        return res

    def reads(self) -> list[tuple[dict[str, str], _t.Optional[ReaderInfo]]]:
        """What the pipeline reads: (``ReadFromPubSub`` arguments, the reader or None for feedback)."""
        out: list[tuple[dict[str, str], _t.Optional[ReaderInfo]]] = []
        for r in self.readers:
            if self.read_topics and r.own_subscription and r.topic:
                out.append(({"topic": r.topic}, r))
            else:
                out.append(({"subscription": r.subscription}, r))
        if self.feedback_topic:
            if self.read_topics:
                out.append(({"topic": self.feedback_topic}, None))
            else:
                out.append(({"subscription": _t.cast(str, self.feedback_subscription)}, None))
        return out

    def run_subscriptions(self) -> list[str]:
        """The subscriptions made for this run (the pipeline's reads and the driver's watches)."""
        paths = [r.subscription for r in self.readers if r.own_subscription]
        paths += [p for p in (self.feedback_subscription, self.control_subscription) if p]
        return paths + list(self.writer_watch.values())

    def topics(self) -> list[str]:
        """Every topic the run publishes to or reads."""
        out = [self.control_topic, *self.writers.values(), self.feedback_topic]
        for r in self.readers:
            out += [t for t in (r.topic, r.dead_letter_topic) if t]
        return list(dict.fromkeys(t for t in out if t))

    def create_topics(self, timeout: float = 15.0) -> None:
        """Create the topics that are missing (for a Dataflow submission; reads there own their
        subscriptions)."""
        from google.cloud import pubsub_v1  # type: ignore[attr-defined]

        pub = pubsub_v1.PublisherClient()
        for path in self.topics():
            ensure_topic(pub, path, timeout)

    # ------------------------------------------------------------ admin calls
    def create(self, timeout: float = 15.0) -> None:
        """Create what is missing (topics, run subscriptions); every call is bounded by ``timeout``
        overall (no silent retries), so an unreachable Pub/Sub fails fast."""
        from google.cloud import pubsub_v1  # type: ignore[attr-defined]

        deadline = time.monotonic() + timeout
        pub, sub = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()

        def left() -> float:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"Pub/Sub did not answer within {timeout:.0f} s")
            return remaining

        owned = set(self.run_subscriptions()) | set(self.run_topics)

        def topic(path: str) -> None:
            ensure_topic(pub, path, left())
            if path in owned:
                self.created.append(path)

        def subscription(path: str, on: str) -> None:
            ensure_subscription(pub, sub, path, on, left())
            self.created += [p for p in (on, path) if p in owned and p not in self.created]

        try:
            for r in self.readers:
                if r.own_subscription:
                    subscription(r.subscription, _t.cast(str, r.topic))
                elif r.topic is None:
                    r.topic = sub.get_subscription(subscription=r.subscription, timeout=left(), retry=None).topic
                topic(r.dead_letter_topic)
            if self.feedback_topic and self.feedback_subscription:
                subscription(self.feedback_subscription, self.feedback_topic)
            for w, t in self.writers.items():
                if w in self.writer_watch:  # (a run keyed by its messages does not watch its outputs)
                    subscription(self.writer_watch[w], t)
                else:
                    topic(t)
            subscription(self.control_subscription, self.control_topic)
        finally:
            sub.close()

    def delete_run_resources(self, budget: float = 10.0) -> list[str]:
        """Remove the subscriptions and topics ``create`` made for this run, within ``budget``
        seconds in all (each call bounded, no retries); returns the paths that could not be
        deleted."""
        from google.api_core import exceptions
        from google.cloud import pubsub_v1  # type: ignore[attr-defined]

        deadline = time.monotonic() + budget
        sub, pub = pubsub_v1.SubscriberClient(), pubsub_v1.PublisherClient()
        left_behind: list[str] = []
        made = set(self.created)
        calls: list[tuple[_t.Callable[..., _t.Any], str, str]] = [
            (sub.delete_subscription, "subscription", p) for p in self.run_subscriptions() if p in made]
        calls += [(pub.delete_topic, "topic", t) for t in self.run_topics if t in made]
        try:
            for call, arg, path in calls:
                remaining = deadline - time.monotonic()
                if remaining <= 0.05:
                    left_behind.append(path)
                    continue
                try:
                    call(**{arg: path}, timeout=min(3.0, remaining), retry=None)
                except exceptions.NotFound:
                    pass
                except exceptions.GoogleAPICallError:
                    left_behind.append(path)
        finally:
            sub.close()
        return left_behind
