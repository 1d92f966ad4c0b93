"""Ready-made components: Pub/Sub input and output."""

from plugboard_beam.library.pubsub import PubSubReader, PubSubWriter

__all__ = ["PubSubReader", "PubSubWriter"]
