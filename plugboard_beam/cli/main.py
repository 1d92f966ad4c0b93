"""``plugboard-beam``: validate, draw and run models.

User mistakes print one clear message and exit non-zero without a traceback (``--debug``,
anywhere on the command line, shows one): 2 for an invalid model or bad option, 1 for a
component that failed while running (its message says where in the user's code; ``--debug``
adds the traceback captured where it happened, on a Beam worker too).
"""

from __future__ import annotations

import dataclasses
import functools
import signal
import sys
import threading
import time
import types
import typing as _t

import click

from plugboard_beam.cli.logging_options import log_options, setup_logging
from plugboard_beam.exceptions import Interrupted, StepError, UserError
from plugboard_beam.runners.base import RunFailed
from plugboard_beam.runtime.context import RunTracker

EXIT_FAILED_RUN = 1
EXIT_USER_ERROR = 2
EXIT_INTERNAL = 3
#: exit codes of a run stopped by a signal (128 + signal number)
EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Signals:
    """SIGINT and SIGTERM raise ``KeyboardInterrupt`` in the main thread (so every runner stops
    the same way: ``destroy()`` on live components), and the first one is remembered for the
    exit code (130 or 143). Installed explicitly: a process started in the background inherits
    SIGINT ignored, and Python's default for SIGTERM is to die without cleaning up."""

    def __init__(self) -> None:
        self.received: _t.Optional[int] = None

    def install(self) -> None:
        """Install the handlers (main thread only; elsewhere, e.g. under a test runner's thread, no-op)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in EXIT_SIGNAL:
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: _t.Optional[types.FrameType]) -> None:
        first = self.received is None
        if first:
            self.received = signum
        raise KeyboardInterrupt(signal.Signals(signum).name)

    @property
    def exit_code(self) -> int:
        """130 for SIGINT (and a plain KeyboardInterrupt), 143 for SIGTERM."""
        return EXIT_SIGNAL.get(signal.Signals(self.received), 130) if self.received is not None else 130

    @property
    def name(self) -> str:
        """SIGINT or SIGTERM."""
        return signal.Signals(self.received).name if self.received is not None else "SIGINT"


def _signals() -> Signals:
    meta = click.get_current_context().find_root().meta
    sig: Signals = meta.setdefault("plugboard_beam.signals", Signals())
    return sig


def _fail(message: str, code: int) -> _t.NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def handle_errors(fn: _t.Callable[..., _t.Any]) -> _t.Callable[..., _t.Any]:
    """Turn our exceptions into messages and exit codes (tracebacks only with --debug)."""

    @functools.wraps(fn)
    def wrapper(*args: _t.Any, **kwargs: _t.Any) -> _t.Any:
        debug = bool(click.get_current_context().find_root().params.get("debug"))
        try:
            return fn(*args, **kwargs)
        except RunFailed as err:
            from plugboard_beam.runtime.failure import Failure

            traces = [Failure.coerce(f).tracebacks() for f in err.report.failures]
            _fail(f"{err}\n(destroy() was called on every component"
                  + (f")\n{_joined(traces)}" if debug else "; use --debug for the traceback)"),
                  EXIT_FAILED_RUN)
        except Interrupted as err:
            signals = _signals()
            _fail(f"{err} ({signals.name}){_failed_before(err.failures)}", signals.exit_code)
        except StepError as err:
            from plugboard_beam.runtime.failure import Failure

            also = getattr(err, "also", [])
            extra = "".join(f"\n  also: {e}" for e in also)
            trace = Failure.of(err, also).tracebacks()
            _fail(
                f"{err}{extra}\n(destroy() was called on every component"
                + (f")\n{_joined([trace])}" if debug else "; use --debug for the traceback)"),
                EXIT_FAILED_RUN,
            )
        except UserError as err:
            if debug:
                raise
            _fail(str(err), EXIT_USER_ERROR)
        except KeyboardInterrupt:
            signals = _signals()
            _fail(f"interrupted ({signals.name}); destroy() was called on every live component", signals.exit_code)
        except click.exceptions.Exit:
            raise
        except Exception as err:
            if debug:
                raise
            _fail(f"internal error: {type(err).__name__}: {err}\n(run with --debug for the traceback)", EXIT_INTERNAL)

    return wrapper


#: failures an interrupted run lists (the rest are counted)
SHOWN_FAILURES = 50


def _failed_before(failures: _t.Sequence[_t.Any]) -> str:
    """The failures of the keys that had failed before a run was stopped, one per key."""
    if not failures:
        return ""
    from plugboard_beam.runtime.failure import Failure, describe_failures, merge_by_key

    merged = merge_by_key(Failure.coerce(f) for f in failures)
    return f"\n{len(merged)} key(s) had failed before it stopped:" + describe_failures(merged, SHOWN_FAILURES)


def _joined(traces: _t.Iterable[str]) -> str:
    return "\n".join(t for t in traces if t) or "(none was captured: the failure did not come from a Python exception)"


def split_model(tokens: list[str]) -> tuple[str, list[str]]:
    """The model file among ``run``'s free tokens; the rest are Beam pipeline options.

    Beam options may come before or after the model (``--direct_num_workers 2 model.yaml``),
    and their values may be separate tokens, so the model is the (last) token naming a
    .yaml/.yml/.json file, or else the last token that is not an option.
    """
    named = [i for i, t in enumerate(tokens)
             if not t.startswith("-") and t.lower().endswith((".yaml", ".yml", ".json"))]
    if named:
        i = named[-1]
    elif tokens and not tokens[-1].startswith("-"):
        i = len(tokens) - 1
    else:
        raise UserError("give the model file: plugboard-beam process run MODEL.yaml [options]")
    return tokens[i], tokens[:i] + tokens[i + 1:]


def parse_params(params: _t.Sequence[str]) -> dict[str, _t.Any]:
    """``-p name=value`` pairs; values are parsed as (size- and alias-bounded) YAML."""
    from plugboard_beam.spec.yaml_lines import YamlSyntaxError, load_value

    out: dict[str, _t.Any] = {}
    for item in params:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UserError(f"--param {item[:80]!r}: expected NAME=VALUE, e.g. -p a.iters=5")
        try:
            out[name.strip()] = load_value(value)
        except YamlSyntaxError as exc:
            raise UserError(f"--param {name.strip()!r}: value is not valid YAML: {exc.problem.message}") from None
    return out


def step_timeouts(loaded: _t.Any, values: _t.Sequence[str]) -> dict[str, float]:
    """``--step-timeout [COMPONENT=]SECONDS`` as overrides ``{component.step_timeout: seconds}``:
    ``COMPONENT=SECONDS`` sets one component's limit, a bare ``SECONDS`` every component that has
    none (in YAML or by name here)."""
    import math

    from plugboard_beam.schemas import STEP_TIMEOUT_MAX

    names = [c.args.name for c in loaded.config.plugboard.process.args.components]
    default: _t.Optional[float] = None
    out: dict[str, float] = {}
    for item in values:
        name, sep, text = item.rpartition("=")
        try:
            seconds = float(text)
        except ValueError:
            seconds = math.nan
        if not (0 < seconds <= STEP_TIMEOUT_MAX):
            raise UserError(f"--step-timeout {item[:80]!r}: expected SECONDS or COMPONENT=SECONDS with "
                            f"0 < SECONDS <= {STEP_TIMEOUT_MAX:g}, e.g. --step-timeout 30 or --step-timeout pump=5")
        if not sep:
            default = seconds
        elif name not in names:
            import difflib

            close = difflib.get_close_matches(name, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UserError(f"--step-timeout {item[:80]!r}: the model has no component {name[:80]!r}{hint}")
        else:
            out[f"{name}.step_timeout"] = seconds
    if default is not None:
        for c in loaded.config.plugboard.process.args.components:
            if c.args.step_timeout is None and f"{c.args.name}.step_timeout" not in out:
                out[f"{c.args.name}.step_timeout"] = default
    return out


class _Root(click.Group):
    """The ``plugboard-beam`` group: ``--debug`` may be written anywhere on the command line
    (``process run m.yaml --debug`` too; before a ``--`` that ends the options)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        end = args.index("--") if "--" in args else len(args)
        if "--debug" in args[:end]:
            args = ["--debug"] + [a for a in args[:end] if a != "--debug"] + args[end:]
        return super().parse_args(ctx, args)


@click.group(cls=_Root, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks for errors (anywhere on the command line); for a "
                                            "component that failed, the traceback of its exception.")
@click.version_option(package_name="plugboard-beam")
def main(debug: bool) -> None:
    """plugboard-beam: plugboard models on your laptop and on Apache Beam / Dataflow."""
    _signals().install()


@main.group()
def process() -> None:
    """Validate, draw and run process models (plugboard YAML)."""


MODEL = click.argument("model", type=click.Path(dir_okay=False, path_type=str))


@process.command()
@MODEL
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="Override a component argument: comp.arg=VALUE, comp.initial_values.field=[..].",
)
@handle_errors
def validate(model: str, params: tuple[str, ...]) -> None:
    """Check MODEL without running it: every problem is listed with its line."""
    from plugboard_beam.spec import load_model

    loaded = load_model(model, parse_params(params))
    loaded.check_construct()
    g = loaded.graph
    n_events = len(g.event_edges)
    g = dataclasses.replace(g, edges=g.field_edges)  # loops of field connectors
    loops = sum(1 for scc in g.strongly_connected() if g.is_cyclic(scc))
    counts = [(len(g.nodes), "component"), (len(g.edges), "connector"), (n_events, "event edge"), (loops, "loop")]
    click.echo(f"{model}: valid ("
               + ", ".join(_plural(n, word) for n, word in counts if n or word != "event edge") + ")")


def _plural(n: int, word: str) -> str:
    """``1 loop``, ``2 loops``."""
    return f"{n} {word}{'' if n == 1 else 's'}"


@process.command()
@MODEL
@click.option("--url", is_flag=True, help="Also print a link to the diagram on the Mermaid Live Editor.")
@handle_errors
def diagram(model: str, url: bool) -> None:
    """Print MODEL as a Mermaid flowchart."""
    from plugboard_beam.diagram import MermaidDiagram, mermaid
    from plugboard_beam.spec import load_model

    text = mermaid(load_model(model).graph)
    click.echo(text, nl=False)
    if url:
        click.echo(MermaidDiagram(text).url)


FEEDBACK_TOPIC_HELP = ("Streaming: the Pub/Sub topic that every loop edge cut for streaming travels through. "
                       "Default: the run's own feedback topic pbb-<model>-<run id>-feedback, deleted when the run "
                       "ends; a topic named here is created when missing and never deleted.")
RUNNER_HELP = ("direct (or DirectRunner): Apache Beam's DirectRunner (default). local: in this process, no Beam "
               "(no --record). dataflow (or DataflowRunner): Google Cloud Dataflow.")


@process.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("tokens", nargs=-1, type=click.UNPROCESSED, metavar="MODEL [BEAM OPTIONS]")
@click.option("--runner", default="direct", show_default=True, help=RUNNER_HELP,
              callback=lambda ctx, param, value: runner_name(value))
@click.option("--scenarios", type=click.Path(dir_okay=False), default=None,
              help="YAML/JSON/CSV/Parquet file: one row per key, a 'key' column, overrides "
                   "like 'comp.arg' or 'comp.initial_values.field'.")
@click.option("--record", metavar="PATH", default=None,
              help="Write every connector message as Parquet (key, step, source, target, value) "
                   "under PATH (local folder or gs://). Batch runs on --runner direct or dataflow only: "
                   "refused on --runner local and with --streaming.")
@click.option("--stages", "partition", type=click.Choice(["fused", "component"]), default="fused",
              show_default=True, help="Beam stage partitioning: the whole model in one DoFn, or one "
                                      "DoFn per component (loops stay fused).")
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Override a component argument: comp.arg=VALUE, comp.initial_values.field=[..].")
@click.option("--progress/--no-progress", default=None,
              help="Show progress on stderr while the run runs (default: on): keys done / total, "
                   "component-steps/s, elapsed and time left; a bar on a terminal, a plain line every "
                   "--progress-every seconds otherwise. The summary at the end is always printed.")
@click.option("--progress-every", type=click.FloatRange(min=0.1), default=10.0, show_default=True, metavar="SECONDS",
              help="Off a terminal: seconds between plain progress lines.")
@click.option("--step-timeout", "step_timeout", multiple=True, metavar="[COMPONENT=]SECONDS",
              help="Time limit of each step (and init, event handler, destroy) of a component: a key whose "
                   "call takes longer fails, naming component, key and step; other keys go on. A bare "
                   "SECONDS applies to every component without a step_timeout in the YAML. Repeatable.")
@click.option("--rows-per-wave", type=click.IntRange(min=0), default=500_000, show_default=True,
              help="Batch, DirectRunner: a model with keyed data readers (key_column) whose data has more "
                   "rows runs its keys in waves of at most this many rows, so memory stays bounded; 0: "
                   "all keys at once.")
@click.option("--streaming", is_flag=True, help="Streaming pipeline: Pub/Sub sources run until they end "
                                               "(eos per key) or Ctrl-C.")
@click.option("--loops", type=click.Choice(["feedback", "fused"]), default="feedback", show_default=True,
              help="Streaming: route loops through a Pub/Sub feedback topic, or keep them in one stage.")
@click.option("--feedback-topic", default=None, metavar="TOPIC",
              help=FEEDBACK_TOPIC_HELP)
@click.option("--checkpoint", default=None, metavar="PATH",
              help="Streaming on the DirectRunner: keep an intake journal and the ended keys under PATH (a "
                   "folder, gs://... or a database URL); a message is acknowledged once journaled, and a "
                   "restart after a crash resumes every key.")
@click.option("--max-open-keys", type=click.IntRange(min=1), default=None, metavar="N",
              help="Streaming, keys from the messages: at most N keys open at once (default 50000); a "
                   "message of a new key beyond that is dead-lettered with the reason and counted.")
@click.option("--forget-ended-keys", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
              help="Streaming: how long an ended key is remembered so that late input for it is "
                   "dead-lettered (default 600); after that a message for the key starts it anew.")
@click.option("--job-id", default=None, metavar="JOB_ID",
              help="The run's job id (plugboard's: 'Job_' and at least 8 letters or digits), as seen in logs and "
                   "state. Default: the model's state: args: job_id, else a new one.")
@click.option("--dry-run", is_flag=True, help="Dataflow: build the job offline into --job-dir, submit nothing.")
@click.option("--job-dir", default="dataflow-job", show_default=True, help="Dataflow: where --dry-run writes.")
@click.option("--profile", type=click.Path(dir_okay=False), default=None,
              help="YAML file of pipeline options (project, region, temp_location, ...); flags win.")
@log_options
@click.pass_context
@handle_errors
def run(ctx: click.Context, tokens: tuple[str, ...], runner: str, scenarios: _t.Optional[str], record: _t.Optional[str],
        partition: str, params: tuple[str, ...], progress: _t.Optional[bool], progress_every: float,
        step_timeout: tuple[str, ...],
        rows_per_wave: int, streaming: bool, loops: str,
        feedback_topic: _t.Optional[str], checkpoint: _t.Optional[str],
        max_open_keys: _t.Optional[int], forget_ended_keys: _t.Optional[float], job_id: _t.Optional[str],
        dry_run: bool, job_dir: str, profile: _t.Optional[str], **log_params: _t.Any) -> None:
    """Run MODEL. Other --options are Beam pipeline options (e.g. --direct_num_workers 2)."""
    from plugboard_beam.cli.registry import get_runner
    from plugboard_beam.lowering.options import RunOptions
    from plugboard_beam.spec import load_model
    from plugboard_beam.spec.scenarios import load_scenarios

    model, pipeline_args = split_model(list(tokens) + list(ctx.args))
    misspelt(pipeline_args, [o for p in ctx.command.params for o in p.opts if o.startswith("--")])
    loaded = load_model(model, parse_params(params))
    if step_timeout:
        loaded = loaded.with_overrides(step_timeouts(loaded, step_timeout))
    from plugboard_beam.cli.job_id import resolve_job_id

    job = resolve_job_id(loaded, job_id)
    name = runner.lower()
    if streaming and name == "direct":
        name = "direct-streaming"
    # progress and the summary: the runners that run here (Dataflow runs elsewhere)
    tracker = RunTracker() if name != "dataflow" else None
    from plugboard_beam.cli.progress import Progress

    display = Progress.of_run(tracker, progress, every=progress_every) if tracker is not None else None
    log = setup_logging(ctx, line=display, job_id=job, failures_at_end=True)
    options = RunOptions(job_id=job,
        scenarios=load_scenarios(scenarios) if scenarios else None,
        record=record, partition=partition, pipeline_args=pipeline_args, tracker=tracker, rows_per_wave=rows_per_wave,
        streaming=streaming, loops=loops, feedback_topic=feedback_topic, checkpoint=checkpoint,
        max_open_keys=max_open_keys, forget_ended_keys=forget_ended_keys, dry_run=dry_run, job_dir=job_dir,
        profile=profile, given=given_flags(ctx), log=log,
    )
    from plugboard_beam.cli.summary import destinations, job_summary, stopped_summary, summary

    outputs = destinations(loaded, record, streaming=streaming)
    if tracker is None or display is None:  # Dataflow: the job runs elsewhere
        start = time.monotonic()
        remote = get_runner(name)
        try:
            report = remote.run(loaded, options)
        except RunFailed as err:
            click.echo(summary(err.report, time.monotonic() - start, outputs, failed_below=True), err=True)
            raise
        click.echo(summary(report, time.monotonic() - start, outputs) if getattr(remote, "waited", False)
                   else job_summary(report, outputs), err=True)
        return
    from plugboard_beam.logs import release_held

    try:
        with display:
            report = get_runner(name).run(loaded, options)
    except RunFailed as err:
        release_held(show=False)  # the error below lists every failure
        click.echo(summary(err.report, tracker.snapshot().elapsed, outputs, failed_below=True), err=True)
        raise
    except (Interrupted, KeyboardInterrupt):
        # (a streaming run keyed by its messages ends this way): what had ended by then
        release_held(show=not streaming)  # (a streaming run tells each failure as it comes)
        click.echo(stopped_summary(tracker, outputs), err=True)
        raise
    finally:
        release_held(show=not streaming)  # any other end: the failures held back are shown
    click.echo(summary(report, tracker.snapshot().elapsed, outputs), err=True)


#: ``process run`` parameters that are run options a runner may refuse, by flag
RUN_FLAGS = {"scenarios": "--scenarios", "record": "--record", "partition": "--stages", "progress": "--progress",
             "progress_every": "--progress",
             "rows_per_wave": "--rows-per-wave",
             "streaming": "--streaming", "loops": "--loops", "feedback_topic": "--feedback-topic",
             "checkpoint": "--checkpoint",
             "max_open_keys": "--max-open-keys", "forget_ended_keys": "--forget-ended-keys",
             "dry_run": "--dry-run", "job_dir": "--job-dir", "profile": "--profile"}


def given_flags(ctx: click.Context) -> frozenset[str]:
    """The run options given on the command line (not left at their defaults)."""
    from click.core import ParameterSource

    return frozenset(flag for name, flag in RUN_FLAGS.items()
                     if ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT))


#: Beam's own spellings of the runners (``--runner DataflowRunner``), lower-cased, as aliases
BEAM_RUNNER_NAMES = {"directrunner": "direct", "dataflowrunner": "dataflow"}


def runner_name(value: str) -> str:
    """``--runner``: a registered name or Beam's spelling of one (case-insensitive), or an error
    with a suggestion."""
    import difflib

    from plugboard_beam.cli.registry import runner_names

    names = [n for n in runner_names() if n != "direct-streaming"]
    name = value.lower()
    name = BEAM_RUNNER_NAMES.get(name, name)
    if name in names:
        return name
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise click.BadParameter(f"{value!r} is not a runner (choose {', '.join(names)}){hint}")


def misspelt(pipeline_args: _t.Sequence[str], ours: _t.Sequence[str]) -> None:
    """An unknown ``--option`` that is close to one of ``process run``'s own is a typo, not a
    Beam option: say which one was meant (Beam's own options get the same check later)."""
    import difflib

    names = [token[2:].split("=", 1)[0] for token in pipeline_args if token.startswith("--")]
    if not names:
        return  # (Beam's options are only learnt, importing Beam, when there are some to check)
    from plugboard_beam.dataflow.options import PLUGBOARD_OPTIONS, known_options

    beam = known_options() | set(PLUGBOARD_OPTIONS)
    for name in names:
        if name in beam:
            continue
        close = difflib.get_close_matches(f"--{name}", ours, n=1, cutoff=0.75)
        if close:
            raise UserError(f"unknown option --{name}: did you mean {close[0]}?")


@process.command(name="compile")
@MODEL
@click.option("--stages", "partition", type=click.Choice(["fused", "component"]), default="fused",
              show_default=True, help="Stage partitioning to show.")
@click.option("--streaming", is_flag=True, help="Show the streaming plan (Pub/Sub readers, feedback topics).")
@click.option("--loops", type=click.Choice(["feedback", "fused"]), default="feedback", show_default=True,
              help="Streaming: loops through a feedback topic, or fused in one stage.")
@handle_errors
def compile_(model: str, partition: str, streaming: bool, loops: str) -> None:
    """Print the Beam plan of MODEL: stages, fused loops, PCollections, shuffles."""
    from plugboard_beam.lowering.options import RunOptions
    from plugboard_beam.lowering.plan import make_plan
    from plugboard_beam.spec import load_model

    loaded = load_model(model)
    if streaming:
        from plugboard_beam.streaming.plan import streaming_plan

        plan = streaming_plan(loaded, RunOptions(partition=partition, loops=loops, streaming=True))
    else:
        plan = make_plan(loaded.graph, partition)
    click.echo(plan.describe())


def _add_topic_commands() -> None:
    from plugboard_beam.cli.topics import topic_group

    main.add_command(topic_group(handle_errors))


_add_topic_commands()


def _register() -> None:
    from plugboard_beam.cli.tune import tune

    process.add_command(tune)


_register()


def entry() -> None:
    """The ``plugboard-beam`` command: the CLI, then ``shutdown.exit_process`` (an exit without the
    interpreter's teardown, where Arrow can abort a finished run)."""
    from plugboard_beam.shutdown import exit_code, exit_process

    try:
        main()  # click ends with SystemExit
        code = 0
    except SystemExit as exc:
        code = exit_code(exc.code)
    exit_process(code)


if __name__ == "__main__":  # pragma: no cover
    entry()
