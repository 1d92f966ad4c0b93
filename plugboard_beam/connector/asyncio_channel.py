"""plugboard's ``plugboard.connector.asyncio_channel`` path."""

from plugboard_beam.connector import AsyncioChannel, AsyncioConnector

__all__ = ["AsyncioChannel", "AsyncioConnector"]
