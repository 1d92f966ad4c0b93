"""plugboard's transport connectors, which Beam replaces: naming one is fine (imports work), using
one is refused with what to use instead."""

from __future__ import annotations

import typing as _t

from plugboard_beam.connector import Connector
from plugboard_beam.exceptions import UserError


class TransportConnector(Connector):
    """A plugboard transport plugboard_beam does not carry: constructing it raises ``UserError``."""

    #: what the transport was for in plugboard
    purpose: _t.ClassVar[str] = ""

    def __init__(self, *args: _t.Any, **kwargs: _t.Any) -> None:
        raise UserError(
            f"{type(self).__name__} ({self.purpose}) is a plugboard transport that plugboard_beam "
            "replaces: values between components travel through the step engine. Use "
            "AsyncioConnector (or AsyncioConnector.builder()) with LocalProcess in Python, or run "
            "the model's YAML with `plugboard-beam process run` on the DirectRunner "
            "(--runner direct) or Dataflow (--runner dataflow) to spread it over workers."
        )


class ZMQConnector(TransportConnector):
    """plugboard's ZeroMQ connector (refused, see ``TransportConnector``)."""

    purpose = "ZeroMQ between processes"


class RayConnector(TransportConnector):
    """plugboard's Ray connector (refused, see ``TransportConnector``)."""

    purpose = "Ray actors"


class RabbitMQConnector(TransportConnector):
    """plugboard's RabbitMQ connector (refused, see ``TransportConnector``)."""

    purpose = "a RabbitMQ broker"


class RedisConnector(TransportConnector):
    """plugboard's Redis connector (refused, see ``TransportConnector``)."""

    purpose = "a Redis server"


__all__ = ["RabbitMQConnector", "RayConnector", "RedisConnector", "TransportConnector", "ZMQConnector"]
