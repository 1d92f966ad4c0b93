"""The summary ``process run`` prints at the end of every run (terminal or not, failed or not).

::

    summary: 10 keys: 9 ok, 1 failed; elapsed 3.2 s
      steps: source=1000 scale=1000 sink=1000 (3000 component-steps)
      failures: 1
        key 'k3': component 'heater' failed in step 9 (counting from 0): ValueError: heater tripped
      outputs:
        file: out/levels-*.csv (FileWriter 'save')
        table: results at postgresql://user:***@db/runs (SQLWriter 'db')
        topic: projects/p/topics/out (PubSubWriter 'pub')
        recording: runs/rec (Parquet)

Connection strings are shown by ``sql_io.safe_url`` (no password).
"""

from __future__ import annotations

import typing as _t

from plugboard_beam.runtime.context import RunTracker
from plugboard_beam.runtime.failure import Failure
from plugboard_beam.spec.load import LoadedModel

#: failures shown in the summary (the others are counted; the error that follows lists them all)
SHOWN_FAILURES = 3


def summary(report: _t.Any, elapsed: float, outputs: _t.Sequence[str], failed_below: bool = False) -> str:
    """The summary of a run's ``RunReport``: keys ok / failed, steps per component, the first
    failures, elapsed, and where each output went (``outputs``, see ``destinations``).
    ``failed_below``: the run's error follows and lists every failure, so only their number is
    shown here (each failure is printed once)."""
    failures = [Failure.coerce(f) for f in report.failures]
    failed = len({f.key for f in failures})
    keys = max(report.keys, failed)
    lines = [f"summary: {keys} key{'s' if keys != 1 else ''}: {keys - failed} ok, {failed} failed; "
             f"elapsed {elapsed:.1f} s"]
    if report.steps:
        total = sum(report.steps.values())
        lines.append(f"  steps: {' '.join(f'{k}={v}' for k, v in report.steps.items())} ({total} component-steps)")
    lines += [f"  {note}" for note in getattr(report, "notes", ())]
    if failures and failed_below:
        lines.append(f"  failures: {len(failures)} (each one below)")
    elif failures:
        lines.append(f"  failures: {len(failures)}")
        lines += [f"    {f.describe()}".replace("\n", "\n    ") for f in failures[:SHOWN_FAILURES]]
        if len(failures) > SHOWN_FAILURES:
            lines.append(f"    ... and {len(failures) - SHOWN_FAILURES} more")
    lines.append("  outputs:" if outputs else "  outputs: no library writer (file, SQL, Pub/Sub) in the model")
    lines += [f"    {o}" for o in outputs]
    return "\n".join(lines)


def job_summary(report: _t.Any, outputs: _t.Sequence[str]) -> str:
    """The summary of a Dataflow run that did not wait for its job (``--dry-run``, ``--no_wait``,
    a template): nothing has run yet, so it says how many keys the job has, what became of it
    (``report.notes``) and where its outputs will go."""
    keys = report.keys
    lines = [f"summary: {keys} key{'s' if keys != 1 else ''} in a Dataflow job; none has run here"]
    lines += [f"  {note}" for note in report.notes]
    lines.append("  outputs (the job's):" if outputs else
                 "  outputs: no library writer (file, SQL, Pub/Sub) in the model")
    lines += [f"    {o}" for o in outputs]
    return "\n".join(lines)


def stopped_summary(tracker: RunTracker, outputs: _t.Sequence[str]) -> str:
    """The summary of a run stopped before its end (Ctrl-C; a streaming run keyed by its
    messages), from what its tracker counted: the keys that had ended and their steps (the
    failures were reported as they came)."""
    snap = tracker.snapshot()
    lines = [f"summary (stopped): {snap.keys_done} key{'s' if snap.keys_done != 1 else ''} had ended: "
             f"{snap.keys_done - snap.keys_failed} ok, {snap.keys_failed} failed; elapsed {snap.elapsed:.1f} s"]
    if tracker.done_steps:
        lines.append(f"  steps of the ended keys: {' '.join(f'{k}={v}' for k, v in tracker.done_steps.items())}")
    lines.append("  outputs:" if outputs else "  outputs: no library writer (file, SQL, Pub/Sub) in the model")
    lines += [f"    {o}" for o in outputs]
    return "\n".join(lines)


def destinations(model: LoadedModel, record: _t.Optional[str] = None, streaming: bool = False) -> list[str]:
    """Where the model's writers (and ``--record``) send their output, one line each. A path
    with ``{key}`` (one file per key) is shown as a glob; a streaming FileWriter writes one file
    set per window."""
    from plugboard_beam.library.data import DataWriter
    from plugboard_beam.library.file_io import FileWriter
    from plugboard_beam.library.pubsub import PubSubWriter
    from plugboard_beam.library.records import JsonLinesWriter
    from plugboard_beam.library.sql_io import SQLWriter, safe_url

    out: list[str] = []
    for name, spec in model.component_specs().items():
        cls = model.classes.get(name)
        if cls is None:
            continue
        args = spec.args.extra_args()
        label = f"({cls.__name__} '{name}')"
        if issubclass(cls, FileWriter) or issubclass(cls, JsonLinesWriter):
            path = str(args.get("path", ""))
            shown = path.replace("{key}", "*")
            if streaming and issubclass(cls, FileWriter):
                stem, dot, ext = shown.rpartition("/")[2].partition(".")
                folder = shown.rpartition("/")[0]
                shown = f"{folder + '/' if folder else ''}{stem}-*{dot}{ext} (one file set per window)"
            out.append(f"file: {shown} {label}")
        elif issubclass(cls, SQLWriter):
            url = safe_url(str(args.get("connection_string", "")))
            out.append(f"table: {args.get('table')} at {url} {label}")
        elif issubclass(cls, PubSubWriter):
            out.append(f"topic: {args.get('topic')} {label}")
        elif issubclass(cls, DataWriter):
            out.append(f"{cls.__name__}: {label}")
    if record:
        out.append(f"recording: {record} (Parquet)")
    return out


__all__ = ["SHOWN_FAILURES", "destinations", "job_summary", "stopped_summary", "summary"]
