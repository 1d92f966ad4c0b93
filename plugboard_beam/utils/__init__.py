"""plugboard 0.9.0's ``plugboard.utils`` names that user and test code reaches for: ``DI`` (the
dependency-injection container, for ``settings`` and ``job_id``), ``Settings``,
``ClassRegistry`` and ``gen_rand_str``; ``utils.entities`` has ``EntityIdGen`` (job ids)."""

from plugboard_beam.utils.di import DI
from plugboard_beam.utils.entities import EntityIdGen
from plugboard_beam.utils.random import gen_rand_str
from plugboard_beam.utils.registry import ClassRegistry
from plugboard_beam.utils.settings import Settings

__all__ = ["DI", "ClassRegistry", "EntityIdGen", "Settings", "gen_rand_str"]
