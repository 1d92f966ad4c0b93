"""Where ``LocalProcess`` asks plugboard's ``validate_process`` (plugboard 0.9.0 has it at
``plugboard.process.process.validate_process``; its tests patch it there to init processes
that are not fully wired)."""

from __future__ import annotations

import typing as _t

from plugboard_beam.schemas import validate_process


def process_errors(process: _t.Any) -> list[str]:
    """``validate_process(process.dict())``: plugboard's topology checks of ``process``."""
    return validate_process(process.dict())


__all__ = ["process_errors", "validate_process"]
