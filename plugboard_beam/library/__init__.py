"""Ready-made components: Pub/Sub input and output, files (local, gs://, fsspec URLs) and SQL
tables, row replay, JSON lines, LLMs (llama-index) and websockets."""

from plugboard_beam.library.data import DataReader, DataWriter
from plugboard_beam.library.file_io import FileReader, FileWriter
from plugboard_beam.library.llm import LLMChat, LLMImageProcessor
from plugboard_beam.library.pubsub import PubSubReader, PubSubWriter
from plugboard_beam.library.records import JsonLinesWriter, ListSource
from plugboard_beam.library.sql_io import SQLReader, SQLWriter
from plugboard_beam.library.websocket_io import WebsocketReader, WebsocketWriter

__all__ = [
    "DataReader",
    "DataWriter",
    "FileReader",
    "FileWriter",
    "JsonLinesWriter",
    "LLMChat",
    "LLMImageProcessor",
    "ListSource",
    "PubSubReader",
    "PubSubWriter",
    "SQLReader",
    "SQLWriter",
    "WebsocketReader",
    "WebsocketWriter",
]
