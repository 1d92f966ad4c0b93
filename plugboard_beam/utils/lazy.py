"""A package's public names imported from their modules when first asked for (PEP 562)."""

from __future__ import annotations

import importlib
import sys
import typing as _t


def lazy_names(package: str, module_of: _t.Mapping[str, str]) -> _t.Callable[[str], _t.Any]:
    """The module ``__getattr__`` of ``package``: ``name`` comes from ``package.<module_of[name]>``
    the first time it is asked for, and is kept on the package from then on; any other name is an
    ``AttributeError`` (so ``from package import missing`` is an ``ImportError``, as usual)."""

    def __getattr__(name: str) -> _t.Any:
        module = module_of.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)  # found directly from now on
        return value

    return __getattr__
