"""plugboard's ``plugboard.connector.rabbitmq_channel`` path: the connector is refused here."""

from plugboard_beam.connector.transports import RabbitMQConnector

__all__ = ["RabbitMQConnector"]
