"""Log records of Beam's worker processes (DirectRunner ``multi_processing``) shown like our own.

A worker process's records go through Python logging to Beam's ``FnApiLogRecordHandler``, which
sends them to the runner; the runner's logging service logs each one on the root logger as the
text form of its ``LogEntry`` protobuf. ``Forwarded`` (a filter of the command line's
``LogHandler``) reads that text back with protobuf's text parser (size checked first), and gives
the record the structured event our worker-side logger had put in the message (one JSON line,
``plugboard_beam.logs``), so a component's record from a worker is rendered exactly as one from
this process. Beam's own worker chatter is dropped unless ``--debug``; other records keep their
message.
"""

from __future__ import annotations

import json
import logging
import typing as _t

from plugboard_beam.logs import EVENT_ATTR, LOGGER

#: the longest forwarded entry read back (a longer one is shown as it came)
MAX_ENTRY = 1 << 20


def _is_forwarded(record: logging.LogRecord) -> bool:
    return (record.name == "root" and record.funcName == "Logging"
            and record.pathname.replace("\\", "/").endswith("fn_api_runner/worker_handlers.py"))


class Forwarded(logging.Filter):
    """Turns a record Beam forwarded from a worker process back into the worker's record."""

    def __init__(self, debug: bool = False) -> None:
        super().__init__()
        self.debug = debug

    def filter(self, record: logging.LogRecord) -> bool:
        if not _is_forwarded(record):
            return True
        text = record.getMessage()
        if len(text) > MAX_ENTRY:
            return True
        from apache_beam.portability.api import beam_fn_api_pb2
        from google.protobuf import text_format

        entry = beam_fn_api_pb2.LogEntry()
        try:
            text_format.Parse(text, entry)
        except text_format.ParseError:
            return True
        event = _event(entry.message)
        if event is not None:
            setattr(record, EVENT_ATTR, event)
            record.name = str(event.get("logger") or LOGGER)
        elif "apache_beam/" in entry.log_location.replace("\\", "/") and not self.debug:
            return False
        else:
            record.name = "worker"
        record.msg, record.args = entry.message, ()
        if entry.trace and event is None:
            record.msg = f"{entry.message}\n{entry.trace}"
        return True


def _event(message: str) -> _t.Optional[dict[str, _t.Any]]:
    """The event of one of our loggers' messages (a JSON object with ``event`` and a ``logger``
    of ours), else None."""
    if not message.startswith("{"):
        return None
    try:
        data = json.loads(message)
    except ValueError:
        return None
    if isinstance(data, dict) and "event" in data and str(data.get("logger", "")).startswith(LOGGER):
        return data
    return None
