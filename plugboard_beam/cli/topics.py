"""``plugboard-beam topic publish|tail``: feed a streaming run and watch its results by hand.

``publish TOPIC FILE`` turns the rows of a CSV or JSON-lines file into messages in the format
``PubSubReader`` reads: the ``key`` column becomes the ``key`` attribute, ``seq`` numbers each
key's messages 0, 1, 2, ... (unless the file has a ``seq`` column), the other columns are the
JSON payload; ``--eos`` ends each key's stream after its rows. ``tail TOPIC`` creates its own
subscription on the topic, prints every message as one JSON line (payload and attributes) and
deletes the subscription when it stops. Both honour ``PUBSUB_EMULATOR_HOST``.

The file is untrusted input: its size, its number of rows and each message's size are bounded,
cells are parsed as data (never evaluated), and every problem names the file and row.
"""

from __future__ import annotations

import base64
import csv
from dataclasses import dataclass, field
import io
import json
import math
import os
from pathlib import Path
import re
import sys
import time
import typing as _t
import uuid

import click

from plugboard_beam.exceptions import UserError

#: bounds of a file to publish (one message per row)
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_ROWS = 1_000_000
#: the largest payload of one message (Pub/Sub's own limit is 10 MB)
MAX_MESSAGE_BYTES = 1024 * 1024
#: seconds for each set-up call (topic, subscription), and for the publishes to be confirmed
#: (plus 1 ms a message)
SETUP_SECONDS = 15.0
PUBLISH_SECONDS = 60.0
#: the longest one pull may block (Ctrl-C is honoured between pulls)
PULL_SECONDS = 2.0

_INT = re.compile(r"[-+]?[0-9]{1,18}")
_SUBSCRIPTION_NAME = re.compile(r"[A-Za-z][-A-Za-z0-9_.~+%]{2,254}")


@dataclass
class Message:
    """One message to publish: JSON payload and attributes."""

    data: bytes
    attributes: dict[str, str]


@dataclass
class Messages:
    """The messages of a file, in file order, and the keys they belong to."""

    messages: list[Message] = field(default_factory=list)
    keys: dict[str, int] = field(default_factory=dict)  # key -> next seq


def cell(text: str) -> _t.Any:
    """A CSV cell as JSON data: integers and finite reals become numbers, ``true``/``false``
    booleans, an empty cell ``null``; anything else stays text."""
    if text == "":
        return None
    if _INT.fullmatch(text):
        return int(text)
    if text in ("true", "false"):
        return text == "true"
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def _reject_constant(name: str) -> _t.NoReturn:
    raise ValueError(f"{name} is not JSON")


def read_rows(path: Path) -> _t.Iterator[tuple[int, dict[str, _t.Any]]]:
    """(line number, row) of a ``.csv`` or ``.jsonl``/``.ndjson`` file, within the bounds."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise UserError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if not path.is_file():
        raise UserError(f"{path}: not a file")
    if size > MAX_FILE_BYTES:
        raise UserError(f"{path}: {size} bytes; at most {MAX_FILE_BYTES} can be published (split the file)")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".ndjson"):
        raise UserError(f"{path}: give a .csv or .jsonl (.ndjson) file")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text, newline=""), restkey="\0extra")
        if not reader.fieldnames:
            raise UserError(f"{path}: no header row")
        names = list(reader.fieldnames)
        if len(set(names)) != len(names) or "" in names:
            raise UserError(f"{path}: the header has an empty or repeated column name")
        try:
            for row in reader:
                line = reader.line_num
                if "\0extra" in row:
                    raise UserError(f"{path}:{line}: more cells than the header has columns")
                yield line, {k: cell(v) if v is not None else None for k, v in row.items()}
        except csv.Error as exc:
            raise UserError(f"{path}:{reader.line_num}: not valid CSV ({exc})") from None
        return
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            raise UserError(f"{path}:{line}: not a JSON object ({str(exc)[:200]})") from None
        if not isinstance(row, dict):
            raise UserError(f"{path}:{line}: not a JSON object (one object per line)")
        yield line, row


def messages_of(path: Path, eos: bool = False) -> Messages:
    """The messages for ``path``'s rows (see the module docstring); ``UserError`` naming the
    file and line for any problem."""
    out = Messages()
    given_seq: _t.Optional[bool] = None
    for n, (line, row) in enumerate(read_rows(path)):
        if n >= MAX_ROWS:
            raise UserError(f"{path}: more than {MAX_ROWS} rows; at most {MAX_ROWS} can be published at once")
        where = f"{path}:{line}"
        if "key" not in row:
            raise UserError(f"{where}: no 'key' (each row names its model instance in a 'key' column)")
        key = row.pop("key")
        if isinstance(key, bool) or not isinstance(key, (str, int)) or str(key) == "":
            raise UserError(f"{where}: 'key' must be a non-empty text or integer")
        key = str(key)
        has_seq = row.get("seq") is not None
        if given_seq is None:
            given_seq = has_seq
        elif has_seq != given_seq:
            raise UserError(f"{where}: give 'seq' on every row or on none")
        if has_seq:
            seq = row.pop("seq")
            if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
                raise UserError(f"{where}: 'seq' must be an integer >= 0")
        else:
            row.pop("seq", None)
            seq = out.keys.get(key, 0)
        out.keys[key] = max(out.keys.get(key, 0), seq + 1)
        data = json.dumps(row, separators=(",", ":"), allow_nan=False).encode()
        if len(data) > MAX_MESSAGE_BYTES:
            raise UserError(f"{where}: the message would have {len(data)} bytes; at most {MAX_MESSAGE_BYTES}")
        out.messages.append(Message(data, {"key": key, "seq": str(seq)}))
    if eos:
        out.messages += [Message(b"", {"key": k, "seq": str(s), "eos": "true"}) for k, s in out.keys.items()]
    return out


def describe_message(data: bytes, attributes: _t.Mapping[str, str]) -> str:
    """One JSON line: ``{"attributes": {...}, "data": <the JSON payload>}`` (``data`` is null for
    an empty message; a payload that is not JSON is given as ``text``, or ``base64`` when it is
    not UTF-8). Control characters are escaped, so a message cannot drive the terminal."""
    out: dict[str, _t.Any] = {"attributes": dict(sorted(attributes.items()))}
    if not data:
        out["data"] = None
    else:
        try:
            out["data"] = json.loads(data, parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            try:
                out["text"] = data.decode("utf-8")
            except UnicodeDecodeError:
                out["base64"] = base64.b64encode(data).decode()
    return json.dumps(out, separators=(", ", ": "))


def _endpoint() -> str:
    host = os.environ.get("PUBSUB_EMULATOR_HOST")
    return f"the Pub/Sub emulator at {host}" if host else "pubsub.googleapis.com (the real service)"


def _unreachable(what: str, exc: Exception) -> UserError:
    first = str(exc).splitlines()[0][:300] if str(exc) else ""
    return UserError(f"cannot {what} at {_endpoint()}: {type(exc).__name__}: {first}")


def publish(topic: str, path: Path, project: _t.Optional[str], subscription: _t.Optional[str],
            eos: bool) -> tuple[str, Messages]:
    """Publish ``path``'s rows to ``topic`` (created when missing); with ``subscription``, make
    sure that subscription exists on the topic first (so the messages wait there for a run)."""
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]

    from plugboard_beam.library.pubsub import ensure_subscription, ensure_topic, subscription_path, topic_path

    found = messages_of(path, eos)
    full = topic_path(topic, project)
    pub = pubsub_v1.PublisherClient()
    try:
        if subscription:
            sub = pubsub_v1.SubscriberClient()
            try:
                ensure_subscription(pub, sub, subscription_path(subscription, project), full, SETUP_SECONDS)
            finally:
                sub.close()
        else:
            ensure_topic(pub, full, SETUP_SECONDS)
    except Exception as exc:
        raise _unreachable(f"set up topic {full}", exc) from None
    # confirmations: PUBLISH_SECONDS, and 1 ms more per message (a big file takes a while)
    deadline = time.monotonic() + PUBLISH_SECONDS + len(found.messages) / 1000
    futures = [pub.publish(full, m.data, **m.attributes) for m in found.messages]
    try:
        for future in futures:
            future.result(timeout=max(0.1, deadline - time.monotonic()))
    except Exception as exc:
        raise _unreachable(f"publish to {full}", exc) from None
    finally:
        pub.stop()
    return full, found


def tail(topic: str, project: _t.Optional[str], max_messages: int, timeout: _t.Optional[float],
         echo: _t.Callable[[str], None]) -> int:
    """Print ``topic``'s messages through a subscription of its own (deleted at the end) until
    ``max_messages`` (0: no limit) have come or ``timeout`` seconds passed without one (None:
    until Ctrl-C). Returns the number printed."""
    from google.api_core import exceptions
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]

    from plugboard_beam.library.pubsub import ensure_subscription, short_name, subscription_path, topic_path

    full = topic_path(topic, project)
    name = f"pbb-tail-{re.sub(r'[^-A-Za-z0-9_.]', '-', short_name(full))[:200]}-{uuid.uuid4().hex[:8]}"
    sub_path = subscription_path(name, project or full.split("/")[1])
    pub, sub = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    printed = 0
    try:
        try:
            ensure_subscription(pub, sub, sub_path, full, SETUP_SECONDS)
        except Exception as exc:
            raise _unreachable(f"subscribe to {full}", exc) from None
        click.echo(f"tailing {full} (subscription {sub_path}; Ctrl-C stops)", err=True)
        quiet_since = time.monotonic()
        while not max_messages or printed < max_messages:
            left = None if timeout is None else timeout - (time.monotonic() - quiet_since)
            if left is not None and left <= 0:
                break
            wait = PULL_SECONDS if left is None else max(0.1, min(PULL_SECONDS, left))
            want = min(100, max_messages - printed) if max_messages else 100
            try:
                resp = sub.pull(subscription=sub_path, max_messages=want, timeout=wait, retry=None)
            except exceptions.DeadlineExceeded:
                continue
            except exceptions.GoogleAPICallError as exc:
                raise _unreachable(f"pull from {sub_path}", exc) from None
            if not resp.received_messages:
                continue
            for m in resp.received_messages:
                echo(describe_message(bytes(m.message.data), dict(m.message.attributes)))
            printed += len(resp.received_messages)
            sub.acknowledge(subscription=sub_path, ack_ids=[m.ack_id for m in resp.received_messages],
                            timeout=SETUP_SECONDS)
            quiet_since = time.monotonic()
    finally:
        try:
            sub.delete_subscription(subscription=sub_path, timeout=3.0, retry=None)
        except Exception:  # best effort: never hide why we stopped
            click.echo(f"warning: could not delete subscription {sub_path}", err=True)
        sub.close()
    return printed


def _warn_real_service() -> None:
    if not os.environ.get("PUBSUB_EMULATOR_HOST"):
        click.echo("warning: PUBSUB_EMULATOR_HOST is not set: using the real Pub/Sub service", err=True)


def topic_group(handle_errors: _t.Callable[[_t.Callable[..., _t.Any]], _t.Callable[..., _t.Any]]) -> click.Group:
    """The ``topic`` command group (``handle_errors``: the CLI's error handling)."""

    @click.group()
    def topic() -> None:
        """Publish a file's rows to a Pub/Sub topic, or print a topic's messages (the emulator
        when PUBSUB_EMULATOR_HOST is set)."""

    project_option = click.option("--project", default=None,
                                  help="Project of short topic names (default: PUBSUB_PROJECT_ID, then "
                                       "GOOGLE_CLOUD_PROJECT).")

    @topic.command(name="publish", short_help="Publish a CSV or JSON-lines file's rows to TOPIC.")
    @click.argument("topic_name", metavar="TOPIC")
    @click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
    @project_option
    @click.option("--eos", is_flag=True, help="After the rows, end each key's stream (eos=\"true\", the next seq).")
    @click.option("--subscription", default=None, metavar="NAME",
                  help="Create this subscription on TOPIC first (when missing), so the messages wait in it "
                       "for a run that reads it (-p READER.subscription=NAME).")
    @handle_errors
    def publish_cmd(topic_name: str, file: Path, project: _t.Optional[str], eos: bool,
                    subscription: _t.Optional[str]) -> None:
        """Publish FILE's rows (CSV or JSON lines) to TOPIC, one message per row: the 'key' column
        becomes the key attribute, 'seq' numbers each key's messages 0, 1, ... (unless given),
        the other columns are the JSON payload. CSV cells that read as numbers or true/false become
        numbers or booleans; an empty cell is null. At most 64 MB and 1,000,000 rows; the topic is
        created when missing."""
        if subscription is not None and not _SUBSCRIPTION_NAME.fullmatch(subscription):
            raise UserError(f"--subscription {subscription[:80]!r}: 3 to 255 letters, digits and -_.~+%, "
                            "starting with a letter")
        _warn_real_service()
        full, found = publish(topic_name, file, project, subscription, eos)
        ends = f", {len(found.keys)} end-of-stream" if eos else ""
        n_keys = len(found.keys)
        click.echo(f"published {len(found.messages) - (n_keys if eos else 0)} message(s) for {n_keys} "
                   f"key{'s' if n_keys != 1 else ''}{ends} to {full}")

    @topic.command(name="tail", short_help="Print TOPIC's messages as JSON lines.")
    @click.argument("topic_name", metavar="TOPIC")
    @project_option
    @click.option("--max", "max_messages", type=click.IntRange(min=0), default=0,
                  help="Stop after this many messages (0: no limit).")
    @click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None, metavar="S",
                  help="Stop when no message came for S seconds (default: wait until Ctrl-C).")
    @handle_errors
    def tail_cmd(topic_name: str, project: _t.Optional[str], max_messages: int, timeout: _t.Optional[float]) -> None:
        """Print TOPIC's messages as JSON lines ({"attributes": ..., "data": ...}) through a
        subscription of its own, deleted when it stops. Only messages published after it started
        are seen: start it before the run publishes."""
        _warn_real_service()
        printed: list[int] = [0]

        def echo(line: str) -> None:
            click.echo(line)
            printed[0] += 1

        try:
            tail(topic_name, project, max_messages, timeout, echo)
        except KeyboardInterrupt:
            click.echo(f"stopped (interrupted) after {printed[0]} message(s); its subscription is deleted", err=True)
            sys.exit(130)
        click.echo(f"{printed[0]} message(s)", err=True)

    return topic


__all__ = ["Message", "Messages", "cell", "describe_message", "messages_of", "publish", "tail", "topic_group"]
