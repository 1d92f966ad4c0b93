"""Moving a plugboard 0.9.0 model over: plugboard's import paths, its process types and the
transports Beam replaces.

- ``type: plugboard.X`` in a model file imports ``plugboard_beam.X`` (``spec.load`` says so once
  per file); ``plugboard.process.LocalProcess`` / ``RayProcess`` are accepted as written.
- ``RayProcess`` runs on Beam: Beam places and parallelises the components, the role Ray has in
  plugboard. Its ``connector_builder: plugboard.connector.RayConnector`` is accepted with it
  for the same reason.
- plugboard's other transports (ZMQ, Ray, RabbitMQ, Redis connectors and channels) are not
  here: naming one in a model file is an error that says what to use instead (in Python,
  ``plugboard_beam.connector`` has the names, and constructing one is refused likewise).
"""

from __future__ import annotations

import typing as _t

PLUGBOARD_PREFIX = "plugboard."
OUR_PREFIX = "plugboard_beam."

#: process types (either prefix, plugboard's long module paths too) -> the name kept in the spec
_PROCESS_TYPES = {
    f"{prefix}process.{mod}{cls}": f"{prefix}process.{cls}"
    for prefix in (PLUGBOARD_PREFIX, OUR_PREFIX)
    for cls, mods in (("LocalProcess", ("", "local_process.")), ("RayProcess", ("", "ray_process.")))
    for mod in mods
}

_INSTEAD_CONNECTOR = ("the runner moves the data between components: leave 'connector_builder' out "
                      "(or use AsyncioConnector in Python) and choose the engine with --runner "
                      "(local, direct, dataflow; streaming for Pub/Sub)")
_INSTEAD_RAY = ("Beam places and parallelises the components: use LocalProcess, or RayProcess in a "
                "model file (it runs on Beam), and choose the engine with --runner (direct or dataflow)")
_INSTEAD_BROKER = ("Beam moves the data between components; to exchange messages with other systems "
                   "use plugboard_beam.library's PubSubReader / PubSubWriter (--runner streaming)")

#: plugboard's transport classes that Beam replaces -> what to use instead
REPLACED_TRANSPORTS: dict[str, str] = {
    "ZMQConnector": _INSTEAD_CONNECTOR,
    "ZMQChannel": _INSTEAD_CONNECTOR,
    "ZMQProxy": _INSTEAD_CONNECTOR,
    "RayConnector": _INSTEAD_RAY,
    "RayChannel": _INSTEAD_RAY,
    "RabbitMQConnector": _INSTEAD_BROKER,
    "RabbitMQChannel": _INSTEAD_BROKER,
    "RedisConnector": _INSTEAD_BROKER,
    "RedisChannel": _INSTEAD_BROKER,
}


def replaced_message(name: str, where: str = "") -> str:
    """Why the transport ``name`` is not here and what to use instead."""
    return (f"{name}{' (' + where + ')' if where else ''} is one of plugboard's transports, which "
            f"plugboard_beam does not have: {REPLACED_TRANSPORTS[name]}")


class ReplacedTransportError(ValueError):
    """A plugboard transport that Beam replaces was named in a spec."""

    def __init__(self, name: str, where: str = "") -> None:
        self.transport = name
        super().__init__(replaced_message(name, where))


def replaced_transport(type_path: str) -> _t.Optional[str]:
    """The class name if ``type_path`` (``x.y.ZMQConnector`` or a bare name) is a replaced
    transport, else None."""
    name = type_path.rpartition(".")[2]
    return name if name in REPLACED_TRANSPORTS else None


def ours(type_path: str) -> str:
    """``plugboard.X`` -> ``plugboard_beam.X``; anything else unchanged."""
    if type_path.startswith(PLUGBOARD_PREFIX):
        return OUR_PREFIX + type_path[len(PLUGBOARD_PREFIX):]
    return type_path


def normalise_process_type(value: str) -> str:
    """A process ``type`` as kept in the spec; ``ValueError`` for anything but plugboard's
    ``LocalProcess`` / ``RayProcess``."""
    known = _PROCESS_TYPES.get(value.strip())
    if known is None:
        raise ValueError(f"unknown process type {value!r}: use plugboard_beam.process.LocalProcess "
                         "(or plugboard's LocalProcess / RayProcess; the engine is chosen with --runner)")
    return known


def check_connector_builder(process_type: str, builder_type: str) -> None:
    """``ValueError`` for a ``connector_builder`` Beam cannot honour: a replaced transport, other
    than ``RayConnector`` for a ``RayProcess``; or a class that is not a connector."""
    name = replaced_transport(builder_type)
    if name == "RayConnector" and process_type.endswith(".RayProcess"):
        return
    if name is not None:
        raise ReplacedTransportError(name, "connector_builder")
    if builder_type.rpartition(".")[2] != "AsyncioConnector":
        raise ValueError(f"connector_builder {builder_type!r}: only AsyncioConnector (the default) is accepted; "
                         + _INSTEAD_CONNECTOR)


__all__ = ["REPLACED_TRANSPORTS", "ReplacedTransportError", "check_connector_builder",
           "normalise_process_type", "ours", "replaced_message", "replaced_transport"]
