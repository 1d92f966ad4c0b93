"""The local lowering: every key of the model in this process, one after the other."""

from __future__ import annotations

import typing as _t

from plugboard_beam.runtime.engine import Engine
from plugboard_beam.runtime.session import run_to_end
from plugboard_beam.spec.load import LoadedModel


def run_local(
    model: LoadedModel,
    keys: _t.Sequence[tuple[str, LoadedModel]] = (),
    on_progress: _t.Optional[_t.Callable[[str, Engine], None]] = None,
) -> dict[str, dict[str, int]]:
    """Run the model (or one instance per ``(key, model-with-overrides)``); return steps per key."""
    instances = list(keys) or [("", model)]
    steps: dict[str, dict[str, int]] = {}
    for key, instance in instances:
        engine = Engine(instance.graph, instance.build_components(key), key=key)
        report = (lambda e, k=key: on_progress(k, e)) if on_progress else None
        run_to_end(engine, report)
        steps[key] = engine.steps()
    return steps
