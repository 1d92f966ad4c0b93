"""plugboard's ``plugboard.connector.ray_channel`` path: the connector is refused here."""

from plugboard_beam.connector.transports import RayConnector

__all__ = ["RayConnector"]
