"""What a run was asked for: the options every lowering and runner reads (plain data)."""

from __future__ import annotations

from dataclasses import dataclass
import typing as _t

from plugboard_beam.runtime.engine import Engine
from plugboard_beam.spec.scenarios import Scenario

ProgressFn = _t.Callable[[str, Engine], None]


@dataclass
class RunOptions:
    """Options every runner understands."""

    scenarios: _t.Optional[_t.Sequence[Scenario]] = None
    record: _t.Optional[str] = None
    partition: str = "fused"
    pipeline_args: _t.Sequence[str] = ()
    progress: _t.Optional[ProgressFn] = None
    #: streaming: sources are Pub/Sub subscriptions; loops go through a feedback topic or stay fused
    streaming: bool = False
    loops: str = "feedback"
    #: streaming: the feedback topic of cut loop edges (default: one per edge, named from model and edge)
    feedback_topic: _t.Optional[str] = None
    #: streaming on the DirectRunner: where the run's intake journal and ended keys are kept (a
    #: folder, gs:// or a database URL; see ``streaming/checkpoint.py``)
    checkpoint: _t.Optional[str] = None
    #: streaming, keys from the messages: the cap on keys open at once (None: the default) and the
    #: seconds an ended key is remembered (None: the default); see ``streaming/keystate.py``
    max_open_keys: _t.Optional[int] = None
    forget_ended_keys: _t.Optional[float] = None
    #: Dataflow: build the job offline into ``job_dir`` instead of submitting it
    dry_run: bool = False
    job_dir: str = "dataflow-job"
    #: a YAML file of pipeline options (``project: ...``); command-line flags win
    profile: _t.Optional[str] = None
    #: batch on the DirectRunner: a keyed run (data readers with ``key_column``) whose data has more
    #: rows runs in waves of keys of at most this many rows (0: all at once); see ``dataio.Wave``
    rows_per_wave: int = 500_000
    #: the run options given explicitly on the command line (flag names, e.g. ``--loops``): a
    #: runner refuses those it does not honour (``Runner.accepts``)
    given: frozenset[str] = frozenset()
    #: ``component.field`` names each key reports when it ends (``RunReport.finals``; tuning objectives)
    final_fields: tuple[str, ...] = ()
    #: the run's job id (``Job_`` + letters/digits, plugboard's format): ``--job-id``, else the
    #: model's ``state: args: job_id``, else generated (``resolve_job_id``); for logs and state
    job_id: _t.Optional[str] = None
