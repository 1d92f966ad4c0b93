"""``ComponentRegistry``: every ``Component`` subclass by import path and by class name."""

from __future__ import annotations

import typing as _t

from plugboard_beam.utils.registry import ClassRegistry

if _t.TYPE_CHECKING:
    pass


class ComponentRegistry(ClassRegistry["Component"]):
    """Component classes, registered as they are defined (plugboard's ``ComponentRegistry``):
    ``ComponentRegistry.get("my_module.MyComponent")``, or ``get("MyComponent")`` while only one
    registered class has that name; a function component (``@component``) also by its function's
    name. Unknown names raise ``RegistryError``."""
