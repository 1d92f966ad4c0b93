"""The cycle collector during a run.

A run allocates a key's objects and frees them when the key ends (``Engine.release``), but what
is alive for a whole run (the modules of Beam and its clients, the model, the pipeline: ~200,000
objects once Beam is imported) is walked by every full collection. A DirectRunner run of 10,000
keys x 10 steps triggers one, and it walked all of them (measured with ``gc.callbacks``).
"""

from __future__ import annotations

import contextlib
import gc
import typing as _t

#: objects frozen when this module was first imported: the interpreter's own (CPython 3.12
#: freezes some at start-up). A count above this at a run's start is a freeze of the process's
#: own, or of an enclosing run (a freeze made before plugboard_beam was imported counts as the
#: interpreter's, and is unfrozen with the run's)
_STARTUP_FREEZE = gc.get_freeze_count()


@contextlib.contextmanager
def frozen_heap() -> _t.Iterator[None]:
    """Leave every object alive now out of the collector's walks until the block ends
    (``gc.freeze``): objects made inside are collected as usual, and the ones frozen become
    collectable again afterwards (``gc.unfreeze``). Where more than the interpreter's own
    objects are frozen already (the process froze some, or this block is inside another), nothing
    is done, so that freeze stays as it is."""
    if gc.get_freeze_count() > _STARTUP_FREEZE:
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
