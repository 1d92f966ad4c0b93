"""plugboard's ``plugboard.connector.connector`` path."""

from plugboard_beam.connector import Connector

__all__ = ["Connector"]
