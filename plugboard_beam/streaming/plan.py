"""The streaming plan: Pub/Sub readers are outside the stages, loops are cut at feedback edges."""

from __future__ import annotations

from plugboard_beam.library.pubsub import PubSubReader
from plugboard_beam.lowering.options import RunOptions
from plugboard_beam.lowering.plan import Plan, feedback_edges, make_plan
from plugboard_beam.spec.load import LoadedModel


def components_of(model: LoadedModel, kind: type) -> list[str]:
    """Names of the model's components of a class."""
    return [n for n, c in model.classes.items() if issubclass(c, kind)]


def streaming_plan(model: LoadedModel, options: RunOptions) -> Plan:
    """The stages of a streaming run: readers outside, loops cut unless ``--loops fused``."""
    cut = feedback_edges(model.graph) if options.loops == "feedback" else ()
    return make_plan(model.graph, options.partition, external=components_of(model, PubSubReader), cut=cut)
