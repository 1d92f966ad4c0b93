"""``Component``: the base class users subclass (plugboard 0.9.0 compatible)."""

from __future__ import annotations

import typing as _t

from plugboard_beam.component.io_controller import IOController
from plugboard_beam.exceptions import IOSetupError

#: Constructor keywords every component accepts (``ComponentArgsDict``).
BASE_ARGS: frozenset[str] = frozenset({"name", "initial_values", "parameters", "state", "constraints", "resources"})


class Component:
    """Base class of every component in a process model.

    Subclasses declare ``io = IO(inputs=[...], outputs=[...])`` and implement ``step`` (and
    optionally ``init`` and ``destroy``); each may be ``async def`` or plain ``def``. Input
    fields are read and output fields written as plain attributes (``self.in_1``,
    ``self.out_1 = ...``). Reading a public attribute that was never set gives ``None``.
    """

    io: IOController = IOController()

    def __init__(
        self,
        *,
        name: str,
        initial_values: _t.Optional[dict[str, _t.Iterable[_t.Any]]] = None,
        parameters: _t.Optional[dict[str, _t.Any]] = None,
        state: _t.Any = None,
        constraints: _t.Optional[dict[str, _t.Any]] = None,
        resources: _t.Any = None,
    ) -> None:
        self.name = name
        self._initial_values = {k: list(v) for k, v in (initial_values or {}).items()}
        self._parameters = dict(parameters or {})
        self._constraints = dict(constraints or {})
        self._state = state
        self._resources = resources
        cls_io = type(self).io
        unknown = sorted(set(self._initial_values) - set(cls_io.inputs))
        if unknown:
            raise IOSetupError(
                f"component '{name}': initial_values for {unknown}, which are not inputs of "
                f"{type(self).__name__} (inputs: {list(cls_io.inputs)})"
            )
        self.io = IOController(
            inputs=cls_io.inputs,
            outputs=cls_io.outputs,
            initial_values=self._initial_values,
            input_events=cls_io.input_events,
            output_events=cls_io.output_events,
            namespace=name,
        )

    def __init_subclass__(cls, **kwargs: _t.Any) -> None:
        super().__init_subclass__(**kwargs)
        # Inherit fields declared by parent components (plugboard aggregates along the MRO).
        inputs: list[str] = []
        outputs: list[str] = []
        in_events: list[_t.Any] = []
        out_events: list[_t.Any] = []
        for klass in reversed(cls.__mro__):
            io = klass.__dict__.get("io")
            if isinstance(io, IOController):
                inputs += [f for f in io.inputs if f not in inputs]
                outputs += [f for f in io.outputs if f not in outputs]
                in_events += [e for e in io.input_events if e not in in_events]
                out_events += [e for e in io.output_events if e not in out_events]
        clash = sorted(set(inputs) & set(outputs))
        if clash:
            raise IOSetupError(f"{cls.__name__}: fields {clash} are declared as input and output")
        cls.io = IOController(inputs=inputs, outputs=outputs, input_events=in_events, output_events=out_events)

    @classmethod
    def io_for(cls, args: _t.Mapping[str, _t.Any]) -> IOController:
        """The fields of an instance built with ``args`` (for validation before construction).

        Most components declare fixed fields on the class; a component whose fields depend on
        its arguments (e.g. ``PubSubReader(fields=[...])``) overrides this.
        """
        return cls.io

    def __getattr__(self, key: str) -> _t.Any:
        # Only called when normal lookup fails: unset public fields read as None (as in plugboard).
        if not key.startswith("_"):
            return None
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{key}'")

    @property
    def id(self) -> str:
        """Unique id of the component within its process: its name."""
        return self.name

    @property
    def parameters(self) -> dict[str, _t.Any]:
        """The component's parameters."""
        return self._parameters

    @property
    def initial_values(self) -> dict[str, list[_t.Any]]:
        """Seeds of the input fields."""
        return self._initial_values

    async def init(self) -> None:
        """Called once before the first step."""

    async def step(self) -> None:
        """Called once per step; override it."""

    async def destroy(self) -> None:
        """Called once at the end, also after a failure."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def check_component_class(obj: object) -> _t.Optional[str]:
    """Why ``obj`` cannot be used as a component class, or ``None`` if it can."""
    if not isinstance(obj, type) or not issubclass(obj, Component):
        return "is not a Component subclass"
    if obj is Component:
        return "is the abstract Component base class"
    return None
