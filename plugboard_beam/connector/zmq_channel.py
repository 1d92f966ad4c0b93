"""plugboard's ``plugboard.connector.zmq_channel`` path: the connector is refused here."""

from plugboard_beam.connector.transports import ZMQConnector

__all__ = ["ZMQConnector"]
