"""Logging: structlog loggers for components and the framework, always routed through Python
``logging``, and the command line's rendering of the records.

Every record is made by a structlog logger whose processors end in ``_to_record``: the stdlib
record's message is the event as one line of JSON (so any handler — Beam's worker handler, which
forwards it to the runner and to Cloud Logging on Dataflow, or a plain ``StreamHandler`` — shows
all its fields) and the event dict rides along on the record (``EVENT_ATTR``) for ``Renderer``.

* ``component_logger`` is a component's ``self._logger`` (plugboard 0.9.0's structlog logger):
  bound to ``component`` (its name) and ``cls``, and — while an engine runs it — to the key, the
  step (read when the record is made) and the job id (``LogScope``).
* ``get_logger`` is the framework's structured logger (run start and end, key failures).
* ``configure`` is the command line's set-up, done once per command from explicit options
  (``LogConfig``): level, text (colours on a terminal) or JSON lines, warnings captured, and a
  handler that keeps the progress line intact (``LineOwner``).
* ``apply_level`` is the set-up of a Beam worker (the ``LogConfig`` travels in the DoFn).
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
import datetime
import json
import logging
import sys
import typing as _t

import structlog

#: the framework's loggers live under this name (components' records: ``COMPONENT_LOGGER``)
LOGGER = "plugboard_beam"
COMPONENT_LOGGER = "plugboard_beam.component"
#: the ``LogRecord`` attribute holding the structured event (a dict)
EVENT_ATTR = "plugboard_beam_event"
#: ``Component.__dict__`` entry of the ``LogScope`` an engine gives a component it runs
SCOPE_ATTR = "_plugboard_beam_log"
#: ``--log-level`` names
LEVELS = ("debug", "info", "warning", "error", "critical")
FORMATS = ("text", "json")


@dataclass(frozen=True)
class LogConfig:
    """How a run logs (plain data: it travels to Beam workers in the DoFns)."""

    #: the least level of records shown (one of ``LEVELS``)
    level: str = "warning"
    #: ``text`` (human-readable; colours on a terminal) or ``json`` (one JSON object a line)
    format: str = "text"
    #: colours in ``text`` (a terminal)
    colors: bool = False
    #: bound to every component's records when set
    job_id: _t.Optional[str] = None
    #: ``--debug``: third-party records below WARNING are shown too
    debug: bool = False
    #: Beam worker processes on this machine (DirectRunner ``multi_processing``) write our records
    #: to their stderr, the command's own, in this format (``setup_worker``); Beam does not show them
    worker_stderr: bool = False
    #: the command prints each key's failure itself at the end (``process run``: the summary
    #: counts them, the error lists them): the ``text`` console holds the runtime's "key failed"
    #: records back instead of showing each failure a second time (``LogHandler.held``); JSON
    #: lines and Beam's own handlers (Dataflow's Cloud Logging) still get every record
    failures_at_end: bool = False

    def on_local_workers(self) -> LogConfig:
        """This configuration for a pipeline whose worker processes share this terminal."""
        return dataclasses.replace(self, worker_stderr=True)

    @property
    def levelno(self) -> int:
        """``level`` as a ``logging`` number."""
        return _t.cast(int, logging.getLevelName(self.level.upper()))

    @classmethod
    def choose(cls, level: str = "warning", fmt: _t.Optional[str] = None, verbose: int = 0, quiet: int = 0,
               stream: _t.TextIO = sys.stderr, job_id: _t.Optional[str] = None, debug: bool = False,
               failures_at_end: bool = False) -> LogConfig:
        """From the command line: ``-v``/``-q`` move ``level`` one step down/up each; the format
        is JSON lines unless ``stream`` is a terminal (or as given)."""
        index = LEVELS.index(level.lower()) - verbose + quiet
        tty = _isatty(stream)
        return cls(level=LEVELS[min(max(index, 0), len(LEVELS) - 1)], format=fmt or ("text" if tty else "json"),
                   colors=tty, job_id=job_id, debug=debug, failures_at_end=failures_at_end)


def _isatty(stream: _t.TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class LogScope:
    """Where a component is running, read each time it logs: the key, the step (its steps so far,
    read from ``counter``, the engine's ``Runner``), the phase outside ``step()`` (``init``,
    ``destroy``) and the job id. Pickles to its plain fields (an engine restored from state
    gives the component a new one)."""

    __slots__ = ("counter", "job_id", "key", "phase")

    def __init__(self, key: str, job_id: _t.Optional[str] = None, counter: _t.Any = None) -> None:
        self.key = key
        self.job_id = job_id
        self.counter = counter  # anything with an int ``steps``
        self.phase: _t.Optional[str] = None

    def fields(self) -> dict[str, _t.Any]:
        """The fields it adds to a record."""
        out: dict[str, _t.Any] = {}
        if self.key:
            out["key"] = self.key
        if self.counter is not None:
            out["step"] = self.counter.steps
        if self.phase is not None:
            out["phase"] = self.phase
        if self.job_id:
            out["job_id"] = self.job_id
        return out

    def __reduce__(self) -> tuple[type[LogScope], tuple[str, _t.Optional[str]]]:
        return LogScope, (self.key, self.job_id)


def _expand_scope(logger: _t.Any, name: str, event: dict[str, _t.Any]) -> dict[str, _t.Any]:
    owner = event.pop("_owner", None)
    scope = getattr(owner, SCOPE_ATTR, None) if owner is not None else None  # (not via __dict__: see Component)
    if isinstance(scope, LogScope):
        # after the component's name, before the call's own fields
        head: dict[str, _t.Any] = {k: event.pop(k) for k in ("component", "cls") if k in event}
        return {**head, **scope.fields(), **event}
    return event


def _json_default(value: _t.Any) -> str:
    return repr(value)


def to_json(event: _t.Mapping[str, _t.Any]) -> str:
    """One line of JSON (values JSON cannot hold by their ``repr``)."""
    return json.dumps(event, default=_json_default, ensure_ascii=False, separators=(",", ":"))


def _to_record(logger: _t.Any, name: str, event: dict[str, _t.Any]) -> tuple[tuple[str], dict[str, _t.Any]]:
    return (to_json(event),), {"extra": {EVENT_ATTR: event}}


#: the processors of every logger made here (also installed by ``configure`` for ``structlog.get_logger``)
PROCESSORS: tuple[_t.Any, ...] = (
    structlog.stdlib.filter_by_level,
    _expand_scope,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.processors.format_exc_info,
    _to_record,
)


def get_logger(name: str = LOGGER, **context: _t.Any) -> structlog.stdlib.BoundLogger:
    """A structlog logger writing to the Python logger ``name``, bound to ``context``."""
    logger: structlog.stdlib.BoundLogger = structlog.wrap_logger(
        logging.getLogger(name), processors=list(PROCESSORS), wrapper_class=structlog.stdlib.BoundLogger,
        context_class=dict, **context)
    return logger


def component_logger(component: _t.Any) -> structlog.stdlib.BoundLogger:
    """``component._logger``: bound to its name and class, and (read when it logs) to the key,
    step and job id an engine gave it."""
    return get_logger(COMPONENT_LOGGER, component=component.__dict__.get("name"),
                      cls=type(component).__name__, _owner=component)


# ------------------------------------------------------------------ rendering (command line)
class LineOwner(_t.Protocol):
    """A live line on the terminal (the progress display): ``suspended()`` clears it for the
    duration of the block, in which a log record is written, and draws it again after."""

    def suspended(self) -> _t.ContextManager[None]:
        """Clear the line; draw it again on exit."""


def event_of(record: logging.LogRecord) -> dict[str, _t.Any]:
    """The structured event of ``record``: the one its structlog logger made, or one built
    from a plain ``logging`` record (the framework's, a captured warning, a library's)."""
    event = getattr(record, EVENT_ATTR, None)
    if isinstance(event, dict):
        return dict(event)
    out: dict[str, _t.Any] = {"event": record.getMessage(), "level": record.levelname.lower(),
                              "logger": record.name}
    if record.name == "py.warnings":
        out["event"] = out["event"].strip()
    out["timestamp"] = datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat().replace("+00:00", "Z")
    if record.exc_info:
        out["exception"] = logging.Formatter().formatException(record.exc_info)
    return out


class Renderer(logging.Formatter):
    """A record as one line of JSON or as structlog's console line (colours on a terminal)."""

    def __init__(self, config: LogConfig) -> None:
        super().__init__()
        self.json = config.format == "json"
        self.console = structlog.dev.ConsoleRenderer(colors=config.colors, sort_keys=False,
                                                     exception_formatter=structlog.dev.plain_traceback)

    def format(self, record: logging.LogRecord) -> str:
        event = event_of(record)
        if self.json:
            return to_json(event)
        event.pop("logger", None)
        return str(self.console(None, record.levelname.lower(), event))


class Gate(logging.Filter):
    """Our records at the configured level; other libraries' below WARNING only with ``--debug``."""

    def __init__(self, config: LogConfig) -> None:
        super().__init__()
        self.level = config.levelno
        self.debug = config.debug

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.level:
            return False
        ours = record.name.startswith(LOGGER) or hasattr(record, EVENT_ATTR)
        return ours or self.debug or record.levelno >= logging.WARNING


#: the logger and event of the runtime's record of a key's failure (``runtime/failure.py``)
KEY_FAILED = ("plugboard_beam.run", "key failed")
#: key-failure records a ``LogHandler`` holds back at most (the others are counted)
MAX_HELD = 100


def is_key_failure(record: logging.LogRecord) -> bool:
    """The runtime's record of a key's failure (``KEY_FAILED``)."""
    event = getattr(record, EVENT_ATTR, None)
    return record.name == KEY_FAILED[0] and isinstance(event, dict) and event.get("event") == KEY_FAILED[1]


class LogHandler(logging.Handler):
    """Writes rendered records to ``stream`` (``sys.stderr`` at the time of writing when None),
    with the live line (``LineOwner``) cleared meanwhile. With ``text`` and
    ``LogConfig.failures_at_end`` the key-failure records are held back (``held``; shown by
    ``release_held`` when the run ends without its error listing them, e.g. on Ctrl-C)."""

    def __init__(self, config: LogConfig, stream: _t.Optional[_t.TextIO] = None,
                 line: _t.Optional[LineOwner] = None) -> None:
        super().__init__()
        self.stream = stream
        self.line = line
        self.setFormatter(Renderer(config))
        self.addFilter(Gate(config))
        self.held: _t.Optional[list[logging.LogRecord]] = (
            [] if config.format == "text" and config.failures_at_end else None)
        self.held_over = 0

    def handle(self, record: logging.LogRecord) -> bool:
        if self.held is None:
            return super().handle(record)
        passed = self.filter(record)  # (the filters may make it a worker's record: ``Forwarded``)
        if not passed:
            return False
        if isinstance(passed, logging.LogRecord):
            record = passed
        with self.lock:  # type: ignore[union-attr]  # (created by Handler.__init__)
            if not is_key_failure(record):
                self.emit(record)
            elif len(self.held) < MAX_HELD:
                self.held.append(record)
            else:
                self.held_over += 1
        return True

    def take_held(self) -> tuple[list[logging.LogRecord], int]:
        """The held records and the number left out, both emptied."""
        with self.lock:  # type: ignore[union-attr]
            if self.held is None:
                return [], 0
            held, over = self.held, self.held_over
            self.held, self.held_over = [], 0
        return held, over

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            stream = self.stream or sys.stderr
            with self.line.suspended() if self.line is not None else contextlib.nullcontext():
                stream.write(text + "\n")
                stream.flush()
        except Exception:
            self.handleError(record)


def release_held(show: bool = True) -> None:
    """The key-failure records the command line's handlers hold back (``LogConfig.failures_at_end``):
    written now (``show``: the run ended without an error listing them, e.g. on Ctrl-C), or
    forgotten (its error lists them)."""
    for handler in logging.getLogger().handlers:
        if not isinstance(handler, LogHandler):
            continue
        held, over = handler.take_held()
        if not show:
            continue
        for record in held:
            handler.emit(record)
        if over:
            handler.emit(logging.LogRecord(KEY_FAILED[0], logging.ERROR, __file__, 0,
                                           "%d more key failure(s) not shown", (over,), None))


def configure(config: LogConfig, stream: _t.Optional[_t.TextIO] = None, line: _t.Optional[LineOwner] = None,
              filters: _t.Sequence[logging.Filter] = ()) -> LogHandler:
    """The command line's logging, once per command: one ``LogHandler`` on the root logger
    (replacing the one an earlier call installed), levels, ``warnings.warn`` routed into
    logging, and ``structlog.get_logger()`` (a user's own) sent through the same processors.
    ``filters`` run before the handler's own (e.g. unwrapping records Beam forwards from its
    worker processes)."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, LogHandler)]:
        root.removeHandler(old)
    handler = LogHandler(config, stream, line)
    for f in reversed(filters):
        handler.filters.insert(0, f)
    root.addHandler(handler)
    root.setLevel(min(config.levelno, logging.WARNING))
    apply_level(config)
    logging.captureWarnings(True)
    structlog.configure(processors=list(PROCESSORS), wrapper_class=structlog.stdlib.BoundLogger,
                        logger_factory=structlog.stdlib.LoggerFactory(), context_class=dict,
                        cache_logger_on_first_use=False)
    return handler


def setup_worker(config: LogConfig) -> None:
    """A Beam worker's logging (``StageDoFn.setup``): our loggers at the run's level; with
    ``config.worker_stderr``, in a process the command did not configure (a DirectRunner
    ``multi_processing`` worker), our records and warnings are written to its stderr in the
    run's format (Beam's forwarding of worker records does not show them). Elsewhere (Dataflow)
    they propagate to Beam's worker handler."""
    apply_level(config)
    if not config.worker_stderr or any(isinstance(h, LogHandler) for h in logging.getLogger().handlers):
        return
    for name in (LOGGER, "py.warnings"):
        logger = logging.getLogger(name)
        if not any(isinstance(h, LogHandler) for h in logger.handlers):
            logger.addHandler(LogHandler(config))
        logger.propagate = False
    logging.captureWarnings(True)


def apply_level(config: LogConfig) -> None:
    """Our loggers at ``config.level`` (in the command's process and in each Beam worker, whose
    root logger Beam sets itself; the records propagate to its handler)."""
    ours = logging.getLogger(LOGGER)
    ours.setLevel(config.levelno)
    ours.propagate = True
