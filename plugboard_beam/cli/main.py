"""``plugboard-beam``: validate, draw and run models.

User mistakes print one clear message and exit non-zero without a traceback (``--debug``
shows one): 2 for an invalid model or bad option, 1 for a component that failed while running.
"""

from __future__ import annotations

import functools
import sys
import typing as _t

import click
import yaml

from plugboard_beam.cli.progress import Progress
from plugboard_beam.exceptions import StepError, UserError

EXIT_FAILED_RUN = 1
EXIT_USER_ERROR = 2
EXIT_INTERNAL = 3


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
        except StepError as err:
            if debug:
                raise
            also = getattr(err, "also", [])
            extra = "".join(f"\n  also: {e}" for e in also)
            _fail(
                f"{err}{extra}\n(destroy() was called on every component; use --debug for the traceback)",
                EXIT_FAILED_RUN,
            )
        except UserError as err:
            if debug:
                raise
            _fail(str(err), EXIT_USER_ERROR)
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except click.exceptions.Exit:
            raise
        except Exception as err:
            if debug:
                raise
            _fail(f"internal error: {type(err).__name__}: {err}\n(run with --debug for the traceback)", EXIT_INTERNAL)

    return wrapper


def parse_params(params: _t.Sequence[str]) -> dict[str, _t.Any]:
    """``-p name=value`` pairs; values are parsed as YAML."""
    out: dict[str, _t.Any] = {}
    for item in params:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UserError(f"--param {item!r}: expected NAME=VALUE, e.g. -p a.iters=5")
        try:
            out[name.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise UserError(f"--param {item!r}: value is not valid YAML: {exc}") from None
    return out


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(package_name="plugboard-beam")
def main(debug: bool) -> None:
    """plugboard-beam: plugboard models on your laptop and on Apache Beam / Dataflow."""


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
    g = loaded.graph
    loops = sum(1 for scc in g.strongly_connected() if g.is_cyclic(scc))
    click.echo(
        f"{model}: valid ({len(g.nodes)} components, {len(g.edges)} connectors, "
        f"{loops} loop{'s' if loops != 1 else ''})"
    )


@process.command()
@MODEL
@handle_errors
def diagram(model: str) -> None:
    """Print MODEL as a Mermaid flowchart."""
    from plugboard_beam.diagram import mermaid
    from plugboard_beam.spec import load_model

    click.echo(mermaid(load_model(model).graph), nl=False)


RUNNERS = ("local",)


@process.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@MODEL
@click.option(
    "--runner",
    type=click.Choice(RUNNERS, case_sensitive=False),
    default="local",
    show_default=True,
    help="local: in this process.",
)
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="Override a component argument: comp.arg=VALUE, comp.initial_values.field=[..].",
)
@click.option(
    "--progress/--no-progress", default=None, help="Show steps per component (default: when stderr is a terminal)."
)
@click.pass_context
@handle_errors
def run(ctx: click.Context, model: str, runner: str, params: tuple[str, ...], progress: _t.Optional[bool]) -> None:
    """Run MODEL."""
    from plugboard_beam.lowering.local import run_local
    from plugboard_beam.spec import load_model

    if ctx.args:
        raise UserError(f"unknown option(s) for --runner {runner}: {' '.join(ctx.args)}")
    loaded = load_model(model, parse_params(params))
    bar = Progress(progress)
    try:
        run_local(loaded, on_progress=bar)
    finally:
        bar.done()


if __name__ == "__main__":  # pragma: no cover
    main()
