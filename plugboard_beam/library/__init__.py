"""Ready-made components: Pub/Sub input and output, files (local, gs://, fsspec URLs) and SQL
tables, row replay, JSON lines, LLMs (llama-index) and websockets.

Each class is imported from its module when first asked for (``from plugboard_beam.library import
FileReader`` works as usual): a run that uses none of them, e.g. one importing only
``library.data`` for keyed tables, does not import them all (PEP 562's module ``__getattr__``)."""

from __future__ import annotations

import typing as _t

from plugboard_beam.utils.lazy import lazy_names

if _t.TYPE_CHECKING:
    from plugboard_beam.library.data import DataReader, DataWriter
    from plugboard_beam.library.file_io import FileReader, FileWriter
    from plugboard_beam.library.llm import LLMChat, LLMImageProcessor
    from plugboard_beam.library.pubsub import PubSubReader, PubSubWriter
    from plugboard_beam.library.records import JsonLinesWriter, ListSource
    from plugboard_beam.library.sql_io import SQLReader, SQLWriter
    from plugboard_beam.library.websocket_io import WebsocketReader, WebsocketWriter

#: each public class, by the module that defines it
_MODULES = {
    "DataReader": "data",
    "DataWriter": "data",
    "FileReader": "file_io",
    "FileWriter": "file_io",
    "JsonLinesWriter": "records",
    "LLMChat": "llm",
    "LLMImageProcessor": "llm",
    "ListSource": "records",
    "PubSubReader": "pubsub",
    "PubSubWriter": "pubsub",
    "SQLReader": "sql_io",
    "SQLWriter": "sql_io",
    "WebsocketReader": "websocket_io",
    "WebsocketWriter": "websocket_io",
}

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


__getattr__ = lazy_names(__name__, _MODULES)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
