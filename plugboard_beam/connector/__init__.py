"""Connectors of the Python API (plugboard 0.9.0 compatible).

With plugboard_beam a connector is a declaration: the engine (local or Beam) decides how its
values travel. ``AsyncioConnector`` is kept so plugboard code runs unchanged.
"""

from __future__ import annotations

import typing as _t

from plugboard_beam.schemas import ConnectorSpec


class Connector:
    """A connection between an output field and an input field."""

    def __init__(self, spec: ConnectorSpec, *args: _t.Any, **kwargs: _t.Any) -> None:
        self.spec = spec

    @property
    def id(self) -> str:
        """``source..target``."""
        return self.spec.id

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec.source.id} -> {self.spec.target.id})"


class AsyncioConnector(Connector):
    """The in-process connector of plugboard; here the same as ``Connector``."""


class ConnectorBuilder:
    """Builds connectors of one class from specs (plugboard 0.9.0 compatible)."""

    def __init__(self, connector_cls: type[Connector] = AsyncioConnector, **kwargs: _t.Any) -> None:
        self.connector_cls = connector_cls
        self.kwargs = kwargs

    def build(self, spec: ConnectorSpec) -> Connector:
        """A connector for ``spec``."""
        return self.connector_cls(spec, **self.kwargs)


__all__ = ["AsyncioConnector", "Connector", "ConnectorBuilder", "ConnectorSpec"]
