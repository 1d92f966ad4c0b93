"""Ready-made components: Pub/Sub input and output, files and SQL tables, row replay, JSON lines."""

from plugboard_beam.library.data import DataReader, DataWriter
from plugboard_beam.library.file_io import FileReader, FileWriter
from plugboard_beam.library.pubsub import PubSubReader, PubSubWriter
from plugboard_beam.library.records import JsonLinesWriter, ListSource
from plugboard_beam.library.sql_io import SQLReader, SQLWriter

__all__ = [
    "DataReader",
    "DataWriter",
    "FileReader",
    "FileWriter",
    "JsonLinesWriter",
    "ListSource",
    "PubSubReader",
    "PubSubWriter",
    "SQLReader",
    "SQLWriter",
]
