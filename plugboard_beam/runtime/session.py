"""Running one key of a model from start to end: init, step until done, destroy (always)."""

from __future__ import annotations

import typing as _t

from plugboard_beam.exceptions import StepError
from plugboard_beam.runtime.engine import Engine


def run_to_end(engine: Engine, on_progress: _t.Optional[_t.Callable[[Engine], None]] = None) -> None:
    """Init every component, step until all have ended, destroy every component.

    ``destroy()`` runs on every component even when one fails; the first failure is raised
    (a ``StepError`` naming component, key and step), later ones are attached as ``also``.
    """
    try:
        engine.init()
        engine.run(on_progress)
    except StepError as err:
        also = engine.drain([err.component]) if engine.initialised else []
        err.also = also + engine.destroy()  # type: ignore[attr-defined]
        raise
    except BaseException:
        engine.destroy()
        raise
    finally:
        engine.driver.close()
    errors = engine.destroy()
    if errors:
        errors[0].also = errors[1:]  # type: ignore[attr-defined]
        raise errors[0]
