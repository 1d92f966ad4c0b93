"""Streaming: Pub/Sub in and out, one model instance per key, loops through a feedback topic."""

from __future__ import annotations

import typing as _t

from plugboard_beam.exceptions import UserError
from plugboard_beam.spec.load import LoadedModel

if _t.TYPE_CHECKING:
    from plugboard_beam.dataflow.builders import BuildRequest


def build_pipeline(pipeline: _t.Any, model: LoadedModel, request: BuildRequest) -> list[str]:
    """The streaming lowering for Dataflow (the ``builders`` hook): the job's own feedback and
    control topics (named after the job), read as topics (Dataflow owns those subscriptions);
    nothing is contacted here, so a dry run stays offline. Returns one line per stage."""
    from plugboard_beam.events.codec import event_classes
    from plugboard_beam.library.pubsub import PubSubReader
    from plugboard_beam.streaming.codec import Codec
    from plugboard_beam.streaming.pipeline import build_streaming
    from plugboard_beam.streaming.plan import components_of, streaming_plan
    from plugboard_beam.streaming.resources import Resources
    from plugboard_beam.streaming.secrets import SecretManagerKey

    # Only the name of the job's secret is in its DoFns (the job graph): the workers read the key
    # from Secret Manager in setup(); it is never in the job, a staged file, a template or a log.
    if not request.control_secret:
        raise UserError("a streaming Dataflow job needs --control_secret projects/PROJECT/secrets/NAME/versions/"
                        "NUMBER (see docs/deploying.md)")
    plan = streaming_plan(model, request.options)
    res = Resources.plan(model, plan.cut, request.project, request.job_name, read_topics=True,
                         feedback_override=request.options.feedback_topic)
    if not request.options.dry_run:
        res.create_topics()  # feedback, control and dead-letter topics are ours to create
    readers = components_of(model, PubSubReader)
    instances = list(request.instances)
    keyed_by_messages = readers and [k for k, _ in instances] == ["default"] and not instances[0][1]
    codec = Codec(request.job_name, SecretManagerKey(request.control_secret), event_classes(model.classes.values()))
    build_streaming(pipeline, model, plan, [] if keyed_by_messages else instances, res, codec,
                    log=request.options.log)
    return plan.stage_lines()
