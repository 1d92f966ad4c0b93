"""plugboard's ``plugboard.connector.redis_channel`` path: the connector is refused here."""

from plugboard_beam.connector.transports import RedisConnector

__all__ = ["RedisConnector"]
