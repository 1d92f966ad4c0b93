"""The Pub/Sub topics and subscriptions a streaming run uses, named from the model.

* every ``PubSubReader`` reads its subscription (or a run subscription on its topic);
* loops cut for streaming travel through a feedback topic: by default one per edge, named
  ``pbb-<model>-fb-<source>-<field>-<target>-<field>``; on the DirectRunner they are
  multiplexed onto the pipeline's one input topic instead (its Pub/Sub read blocks ~30 s on an
  idle subscription, so a second subscription would stall every loop iteration);
* a model without readers gets an input topic ``pbb-<model>-input`` for its feedback;
* stage completions and failures go to ``pbb-<model>-control`` (how a finite run knows it is done);
* malformed input goes to each reader's dead-letter topic.
Subscriptions made for a run carry the run id and are deleted when it ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import re
import typing as _t

from plugboard_beam.graph.model import Edge
from plugboard_beam.library.pubsub import (
    PubSubReader,
    PubSubWriter,
    ensure_subscription,
    ensure_topic,
    short_name,
    subscription_path,
    topic_path,
)
from plugboard_beam.spec.load import LoadedModel


def slug(text: str) -> str:
    """A Pub/Sub-safe name fragment."""
    s = re.sub(r"[^A-Za-z0-9._~+-]+", "-", text).strip("-")
    return s or "model"


def feedback_topic_name(model: str, edge: Edge) -> str:
    """The default feedback topic of a cut edge."""
    return slug(f"pbb-{model}-fb-{edge.source}-{edge.source_field}-{edge.target}-{edge.target_field}")


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


@dataclass
class Resources:
    """Every topic and subscription of one streaming run."""

    project: str
    model: str
    run_id: str
    readers: list[ReaderInfo] = field(default_factory=list)
    writers: dict[str, str] = field(default_factory=dict)  # writer name -> topic path
    input_topic: _t.Optional[str] = None  # feedback rides here when multiplexed
    input_subscription: _t.Optional[str] = None  # for a model without readers
    feedback: dict[int, str] = field(default_factory=dict)  # edge id -> topic path
    feedback_subscriptions: dict[int, str] = field(default_factory=dict)
    control_topic: str = ""
    control_subscription: str = ""
    writer_watch: dict[str, str] = field(default_factory=dict)  # writer -> driver subscription

    #: read topics directly (Dataflow makes and owns a subscription per read) instead of
    #: subscriptions made by us before the run (DirectRunner: nothing published is missed)
    read_topics: bool = False

    @classmethod
    def plan(cls, model: LoadedModel, cut: _t.Sequence[Edge], project: str, run_id: str, multiplex: bool,
             feedback_override: _t.Optional[str] = None, read_topics: bool = False) -> Resources:
        """Name everything (contacts nothing)."""
        name = slug(model.graph.name)
        res = cls(project=project, model=name, run_id=run_id, read_topics=read_topics)
        for spec in model.config.plugboard.process.args.components:
            cls_ = model.classes[spec.args.name]
            args = spec.args.extra_args()
            if issubclass(cls_, PubSubReader):
                topic = topic_path(args["topic"], args.get("project") or project) if args.get("topic") else None
                own = not args.get("subscription")
                sub = (subscription_path(args["subscription"], args.get("project") or project) if not own
                       else subscription_path(slug(f"pbb-{name}-{spec.args.name}-{run_id}"), project))
                source_name = str(args.get("topic") or args.get("subscription"))
                dead = args.get("dead_letter_topic") or f"{short_name(source_name)}-dead-letter"
                res.readers.append(ReaderInfo(
                    name=spec.args.name, fields=tuple(args["fields"]), key_attribute=args.get("key_attribute", "key"),
                    subscription=sub, topic=topic, dead_letter_topic=topic_path(dead, project),
                    own_subscription=own))
            elif issubclass(cls_, PubSubWriter):
                res.writers[spec.args.name] = topic_path(args["topic"], args.get("project") or project)
        res.control_topic = topic_path(f"pbb-{name}-control", project)
        res.control_subscription = subscription_path(slug(f"pbb-{name}-control-{run_id}"), project)
        for w in res.writers:
            res.writer_watch[w] = subscription_path(slug(f"pbb-{name}-{w}-watch-{run_id}"), project)
        if multiplex:
            if res.readers:
                first = res.readers[0]
                res.input_topic = first.topic  # resolved from the subscription at create() if None
            else:
                res.input_topic = topic_path(f"pbb-{name}-input", project)
                res.input_subscription = subscription_path(slug(f"pbb-{name}-input-{run_id}"), project)
            for e in cut:
                res.feedback[e.id] = res.input_topic or ""
        else:
            for e in cut:
                topic = topic_path(feedback_override or feedback_topic_name(name, e), project)
                res.feedback[e.id] = topic
                res.feedback_subscriptions[e.id] = subscription_path(slug(f"pbb-{name}-fb{e.id}-{run_id}"), project)
        return res

    def reads(self) -> list[tuple[dict[str, str], _t.Optional[ReaderInfo]]]:
        """What the pipeline reads: (``ReadFromPubSub`` arguments, the reader or None for feedback)."""
        out: list[tuple[dict[str, str], _t.Optional[ReaderInfo]]] = []
        for r in self.readers:
            if self.read_topics and r.own_subscription and r.topic:
                out.append(({"topic": r.topic}, r))
            else:
                out.append(({"subscription": r.subscription}, r))
        if self.input_subscription:
            out.append(({"subscription": self.input_subscription}, None))
        if self.read_topics:
            out += [({"topic": t}, None) for t in dict.fromkeys(self.feedback[e] for e in self.feedback_subscriptions)]
        else:
            out += [({"subscription": s}, None) for s in dict.fromkeys(self.feedback_subscriptions.values())]
        return out

    def topics(self) -> list[str]:
        """Every topic the run publishes to or reads."""
        out = [self.control_topic, *self.writers.values(), *self.feedback.values()]
        for r in self.readers:
            out += [t for t in (r.topic, r.dead_letter_topic) if t]
        if self.input_topic:
            out.append(self.input_topic)
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
        """Create what is missing (topics, run subscriptions); fails fast if Pub/Sub is unreachable."""
        from google.cloud import pubsub_v1  # type: ignore[attr-defined]

        pub, sub = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()

        def topic(path: str) -> None:
            ensure_topic(pub, path, timeout)

        def subscription(path: str, on: str) -> None:
            ensure_subscription(pub, sub, path, on, timeout)

        try:
            for r in self.readers:
                if r.own_subscription:
                    subscription(r.subscription, _t.cast(str, r.topic))
                elif r.topic is None:
                    r.topic = sub.get_subscription(subscription=r.subscription, timeout=timeout).topic
                topic(r.dead_letter_topic)
            if self.readers and self.input_topic is None and self.feedback:
                self.input_topic = self.readers[0].topic
                self.feedback = {e: _t.cast(str, self.input_topic) for e in self.feedback}
            if self.input_subscription and self.input_topic:
                subscription(self.input_subscription, self.input_topic)
            for eid, sub_path in self.feedback_subscriptions.items():
                subscription(sub_path, self.feedback[eid])
            for w, t in self.writers.items():
                subscription(self.writer_watch[w], t)
            subscription(self.control_subscription, self.control_topic)
        finally:
            sub.close()

    def delete_run_subscriptions(self) -> None:
        """Remove the subscriptions made for this run."""
        from google.api_core import exceptions
        from google.cloud import pubsub_v1  # type: ignore[attr-defined]

        sub = pubsub_v1.SubscriberClient()
        paths = [r.subscription for r in self.readers if r.own_subscription]
        paths += [p for p in (self.input_subscription, self.control_subscription) if p]
        paths += list(self.feedback_subscriptions.values()) + list(self.writer_watch.values())
        try:
            for path in paths:
                try:
                    sub.delete_subscription(subscription=path, timeout=5)
                except exceptions.GoogleAPICallError:
                    pass
        finally:
            sub.close()
