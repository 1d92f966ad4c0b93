"""Components: the building blocks of a model (``Component``, ``IOController`` a.k.a. ``IO``)."""

from plugboard_beam.component.component import Component, ComponentRegistry, EventIO, Status
from plugboard_beam.component.decorator import ComponentDecoratorHelper, component
from plugboard_beam.component.io_controller import IOController

IO = IOController

__all__ = [
    "Component", "ComponentDecoratorHelper", "ComponentRegistry", "EventIO", "IO", "IOController", "Status",
    "component",
]
