"""Ready-made components: Pub/Sub input and output, row replay and JSON-lines output."""

from plugboard_beam.library.pubsub import PubSubReader, PubSubWriter
from plugboard_beam.library.records import JsonLinesWriter, ListSource

__all__ = ["JsonLinesWriter", "ListSource", "PubSubReader", "PubSubWriter"]
