"""The hook between DataflowRunner and a lowering: ``builder(pipeline, model, request)``.

A builder adds the model's transforms to a Beam pipeline and returns one line per stage for
the dry-run summary (or None). ``DataflowRunner`` picks ``"batch"`` or, with ``--streaming``,
``"streaming"``. The batch builder is Beam lowering's ``build``. A streaming lowering plugs in
either by ``register_builder("streaming", fn)`` or by exposing ``build_pipeline`` with this
signature in ``plugboard_beam.streaming`` (imported on first use). The dry run finds Pub/Sub
reads/writes and feedback topics in the pipeline proto by URN, so nothing more is needed for
them to be summarised.
"""

from __future__ import annotations

from dataclasses import dataclass
import importlib
import typing as _t

from plugboard_beam.exceptions import UserError
from plugboard_beam.spec.load import LoadedModel

if _t.TYPE_CHECKING:
    from plugboard_beam.lowering.options import RunOptions


@dataclass(frozen=True)
class BuildRequest:
    """Everything a builder may need besides the pipeline and the model."""

    #: (key, overrides) per model instance
    instances: tuple[tuple[str, dict[str, _t.Any]], ...]
    #: the ``process run`` options (record, partition, streaming, loops, ...)
    options: RunOptions
    #: Beam's PipelineOptions of the job
    beam_options: _t.Any
    #: where workers write per-key failures (JSON lines); read back once a batch job ends
    errors_prefix: str
    project: str
    region: str
    job_name: str
    temp_location: str
    #: streaming: the Secret Manager secret version of the feedback/control key (``--control_secret``)
    control_secret: _t.Optional[str] = None
    #: with ``options.final_fields`` (tuning): where workers write each key's final values
    finals_prefix: str = ""


PipelineBuilder = _t.Callable[[_t.Any, LoadedModel, BuildRequest], _t.Optional[_t.Sequence[str]]]

_BUILDERS: dict[str, PipelineBuilder] = {}
#: builders imported on first use: kind -> (module, attribute)
_LAZY: dict[str, tuple[str, str]] = {"streaming": ("plugboard_beam.streaming", "build_pipeline")}


def build_batch(pipeline: _t.Any, model: LoadedModel, request: BuildRequest) -> list[str]:
    """The batch lowering (``plugboard_beam.lowering.beam.build``); one line per stage."""
    from plugboard_beam.lowering.beam import build
    from plugboard_beam.lowering.plan import make_plan

    plan = make_plan(model.graph, request.options.partition)
    build(pipeline, model, plan, list(request.instances), request.options.record, request.errors_prefix,
          final_fields=request.options.final_fields, finals_prefix=request.finals_prefix)
    return plan.stage_lines()


def register_builder(kind: str, builder: PipelineBuilder) -> None:
    """Make ``builder`` the one DataflowRunner uses for ``kind`` (``"batch"`` or ``"streaming"``)."""
    _BUILDERS[kind] = builder


def get_builder(kind: str) -> PipelineBuilder:
    """The builder for ``kind``; UserError when none is available."""
    if kind in _BUILDERS:
        return _BUILDERS[kind]
    if kind == "batch":
        return build_batch
    module_name, attr = _LAZY.get(kind, ("", ""))
    builder = None
    if module_name:
        try:
            builder = getattr(importlib.import_module(module_name), attr, None)
        except ModuleNotFoundError as exc:
            if not (exc.name and module_name.startswith(exc.name)):
                raise
    if builder is None:
        raise UserError(f"--streaming on Dataflow needs a streaming lowering ({module_name}.{attr}), "
                        "which this installation does not have; run without --streaming for a batch job")
    _BUILDERS[kind] = builder
    return _t.cast(PipelineBuilder, builder)


__all__: _t.Sequence[str] = ["BuildRequest", "PipelineBuilder", "build_batch", "get_builder", "register_builder"]
