"""Topics and subscriptions that vanish mid-run.

A streaming run depends on Pub/Sub resources someone else may delete while it runs: the
user's topics (readers' input, writers' output, dead-letter topics, a reader's own
subscription) and the run's own (feedback and control topics, the subscriptions it reads).
A publish to a deleted topic fails the Beam pipeline with ``404 Topic not found``; a deleted
subscription leaves a read (or the driver's watch) pulling nothing for ever.

The runner's liveness probe (``runners/streaming.py``: ``Liveness``) asks for every one of
them each round (``Probe``), and when the pipeline fails it asks at once. A resource that is
gone stops the run cleanly with ``Vanished``: one message naming the resource and what it was
for (exit 2, like a lost Pub/Sub), ``destroy()`` on every live component, the run's remaining
subscriptions and topics deleted. The run does not recreate its own resources: messages
published while one was missing are lost (a feedback chunk, a key's completion), so a
recreated run would wait for them for ever without saying why.
"""

from __future__ import annotations

import threading
import typing as _t

from plugboard_beam.exceptions import UserError


class Vanished(UserError):
    """A topic or subscription the run uses was deleted mid-run."""


class Resource(_t.NamedTuple):
    """One topic or subscription a run depends on, and what it is for."""

    path: str
    what: str  # e.g. "the output topic of writer 'report'"
    topic: bool
    own: bool  # made for this run


def resources_of(res: _t.Any) -> list[Resource]:
    """Every topic and subscription of a run (``streaming.resources.Resources``), described."""
    out: list[Resource] = []
    for r in res.readers:
        if r.topic and r.own_subscription:  # (a given subscription is probed itself, and its topic through it)
            out.append(Resource(r.topic, f"the input topic of reader '{r.name}'", True, False))
        if not getattr(res, "read_topics", False) or not r.own_subscription:
            kind = "the run's subscription" if r.own_subscription else "the subscription"
            out.append(Resource(r.subscription, f"{kind} of reader '{r.name}'", False, r.own_subscription))
        out.append(Resource(r.dead_letter_topic, f"the dead-letter topic of reader '{r.name}'", True, False))
    for w, t in res.writers.items():
        out.append(Resource(t, f"the output topic of writer '{w}'", True, False))
    for w, s in res.writer_watch.items():
        out.append(Resource(s, f"the run's subscription watching the output of writer '{w}'", False, True))
    if res.feedback_topic:
        own = res.feedback_topic in res.run_topics
        out.append(Resource(res.feedback_topic, "the run's feedback topic" if own else "the feedback topic",
                            True, own))
        if res.feedback_subscription:
            out.append(Resource(res.feedback_subscription, "the run's feedback subscription", False, True))
    if res.control_topic:
        out.append(Resource(res.control_topic, "the run's control topic", True, True))
    if res.control_subscription:
        out.append(Resource(res.control_subscription, "the run's control subscription", False, True))
    seen: set[str] = set()
    return [r for r in out if not (r.path in seen or seen.add(r.path))]  # type: ignore[func-returns-value]


class Probe:
    """Asks Pub/Sub whether each resource of a run is still there (each call bounded, no
    retries). ``check`` returns whether Pub/Sub answered at all; ``missing`` keeps the
    resources found gone."""

    def __init__(self, resources: _t.Sequence[Resource]) -> None:
        self.resources = list(resources)
        self.missing: list[Resource] = []
        self._pub: _t.Any = None
        self._sub: _t.Any = None
        self._lock = threading.Lock()  # the probe thread and the watcher's check at a failure

    def check(self, timeout: float) -> bool:
        with self._lock:
            return self._check(timeout)

    def _check(self, timeout: float) -> bool:
        from google.api_core import exceptions
        from google.cloud import pubsub_v1  # type: ignore[attr-defined]

        if self._pub is None:
            self._pub, self._sub = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
        answered = False
        for r in self.resources:
            try:
                if r.topic:
                    self._pub.get_topic(topic=r.path, timeout=timeout, retry=None)
                else:
                    got = self._sub.get_subscription(subscription=r.path, timeout=timeout, retry=None)
                    if got.topic == "_deleted-topic_":  # its topic was deleted
                        raise exceptions.NotFound("the subscription's topic was deleted")
                answered = True
            except exceptions.NotFound:
                answered = True
                if r not in self.missing:
                    self.missing.append(r)
            except Exception:
                return answered  # Pub/Sub slow or gone: the caller decides
        return answered

    def error(self) -> _t.Optional[Vanished]:
        """The error to stop with, if a resource is gone."""
        if not self.missing:
            return None
        names = "; ".join(f"{r.what} ({r.path})" for r in self.missing)
        own = any(r.own for r in self.missing)
        what = ("the run does not recreate its own: messages published while it was missing are lost; "
                "restart the run" if own else "create it again and restart the run")
        return Vanished(f"deleted while the run was running: {names}; the run stopped ({what})")

    def close(self) -> None:
        with self._lock:
            if self._sub is not None:
                self._sub.close()
                self._sub = self._pub = None


__all__ = ["Probe", "Resource", "Vanished", "resources_of"]
