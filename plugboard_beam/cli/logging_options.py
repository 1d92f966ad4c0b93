"""``--log-level``, ``--log-format``, ``-v`` and ``-q`` of the run commands, and the logging set-up
they choose (``plugboard_beam.logs.configure``), done once per command."""

from __future__ import annotations

import logging
import sys
import typing as _t

import click

from plugboard_beam.logs import FORMATS, LEVELS, LineOwner, LogConfig, configure

LOG_PARAMS = ("log_level", "log_format", "verbose", "quiet")


def log_options[F: _t.Callable[..., _t.Any]](fn: F) -> F:
    """Add the logging options to a command (their values reach it as ``log_level``, ``log_format``,
    ``verbose`` and ``quiet``)."""
    fn = click.option("-q", "--quiet", count=True,
                      help="One level less than --log-level per -q (-q: error).")(fn)
    fn = click.option("-v", "--verbose", count=True,
                      help="One level more than --log-level per -v (-v: info, -vv: debug).")(fn)
    fn = click.option("--log-format", type=click.Choice(FORMATS, case_sensitive=False), default=None,
                      help="Log records as human-readable text (colours on a terminal) or one JSON object "
                           "a line. Default: text when stderr is a terminal, else json.")(fn)
    fn = click.option("--log-level", type=click.Choice(LEVELS, case_sensitive=False), default="warning",
                      show_default=True,
                      help="The least level of log records shown: the components' self._logger, the "
                           "run's own (start and end: info; a key's failure: error) and warnings. Also "
                           "on Beam workers (Dataflow: Cloud Logging).")(fn)
    return fn


def setup_logging(ctx: click.Context, line: _t.Optional[LineOwner] = None,
                  job_id: _t.Optional[str] = None, failures_at_end: bool = False) -> LogConfig:
    """Configure logging from the command's options; Beam's own chatter is kept only with
    ``--debug``. ``failures_at_end``: the command prints each key's failure at its end, so the
    text console holds the runtime's "key failed" records back (``LogConfig.failures_at_end``).
    Returns the configuration (runs pass it to their workers)."""
    from plugboard_beam.lowering.worker_logs import Forwarded

    params = ctx.params
    debug = bool(ctx.find_root().params.get("debug"))
    config = LogConfig.choose(str(params.get("log_level") or "warning"), params.get("log_format"),
                              int(params.get("verbose") or 0), int(params.get("quiet") or 0), sys.stderr,
                              job_id=job_id, debug=debug, failures_at_end=failures_at_end)
    configure(config, line=line, filters=[Forwarded(debug)])
    if not debug:
        # Beam logs a DoFn's exception (with its traceback) before re-raising it; the CLI
        # reports every failure itself, in one message.
        for name in ("apache_beam", "absl"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    return config
