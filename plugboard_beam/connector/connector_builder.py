"""plugboard's ``plugboard.connector.connector_builder`` path."""

from plugboard_beam.connector import ConnectorBuilder

__all__ = ["ConnectorBuilder"]
