"""Running one key of a model from start to end: init, step until done, then the failure
protocol's one ending (``failure.finish``: drain after a failure, destroy always)."""

from __future__ import annotations

import typing as _t

from plugboard_beam.exceptions import StepError
from plugboard_beam.runtime.engine import Engine
from plugboard_beam.runtime.failure import finish


def run_to_end(engine: Engine, on_progress: _t.Optional[_t.Callable[[Engine], None]] = None) -> None:
    """Init every component, step until all have ended, destroy every component.

    ``destroy()`` runs on every component even when one fails or the run is interrupted
    (``KeyboardInterrupt``); the first failure is raised (a ``StepError`` naming component,
    key and step) with the later ones as its ``also``.
    """
    try:
        engine.init()
        engine.run(on_progress)
    except StepError as err:
        errors = finish(engine, err)
        err.also = errors[1:]
        raise
    except BaseException:
        finish(engine)
        raise
    errors = finish(engine)
    if errors:
        errors[0].also = errors[1:]
        raise errors[0]
