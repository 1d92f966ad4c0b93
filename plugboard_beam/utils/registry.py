"""``ClassRegistry``: classes by import path and by unambiguous class name (as plugboard's)."""

from __future__ import annotations

import typing as _t

from plugboard_beam.exceptions import RegistryError


class ClassRegistry[T]:
    """A registry of classes. Each subclass keeps its own: ``add(cls)`` registers ``cls`` under
    ``module.QualName`` and under ``QualName`` while that alias names only one class; ``get(key)``
    returns it or raises ``RegistryError``."""

    _classes: _t.ClassVar[dict[_t.Hashable, type[_t.Any]]] = {}
    _duplicate_aliases: _t.ClassVar[set[str]] = set()

    def __init_subclass__(cls, **kwargs: _t.Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._classes = {}
        cls._duplicate_aliases = set()

    @classmethod
    def add(cls, klass: type[T], key: _t.Optional[_t.Hashable] = None) -> None:
        """Register ``klass`` under ``key`` (default: its import path) and its class name."""
        key = key or f"{klass.__module__}.{klass.__qualname__}"
        alias = klass.__qualname__
        if alias in cls._classes and cls._classes[alias] is not klass:
            cls._duplicate_aliases.add(alias)  # two classes share the name: only full paths work
            cls._classes.pop(alias)
        cls._classes[key] = klass
        if alias not in cls._duplicate_aliases and alias != key:
            cls._classes[alias] = klass

    @classmethod
    def get(cls, key: _t.Hashable) -> type[T]:
        """The class registered under ``key``; ``RegistryError`` if there is none."""
        try:
            return _t.cast(type[T], cls._classes[key])
        except KeyError:
            raise RegistryError(f"Unrecognised class: {key}") from None

    @classmethod
    def build(cls, key: _t.Hashable, *args: _t.Any, **kwargs: _t.Any) -> T:
        """An instance of the class registered under ``key``."""
        return cls.get(key)(*args, **kwargs)
