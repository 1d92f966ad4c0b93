"""The runner registry: ``--runner`` names to runner classes (imported on first use)."""

from __future__ import annotations

import importlib

from plugboard_beam.runners.base import Runner

#: name -> (module, class)
_RUNNERS: dict[str, tuple[str, str]] = {
    "local": ("plugboard_beam.runners.local", "LocalRunner"),
    "direct": ("plugboard_beam.runners.direct", "BeamRunner"),
    "dataflow": ("plugboard_beam.runners.dataflow", "DataflowRunner"),
    "direct-streaming": ("plugboard_beam.runners.streaming", "StreamingRunner"),
}


def runner_names() -> list[str]:
    """Every registered runner name."""
    return list(_RUNNERS)


def get_runner(name: str) -> Runner:
    """A new runner for ``name`` (one of ``runner_names()``)."""
    module, cls = _RUNNERS[name]
    runner: Runner = getattr(importlib.import_module(module), cls)()
    return runner
