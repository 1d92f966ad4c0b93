"""Simple in-memory and file components: replay rows, write JSON lines.

``ListSource`` replays rows given as an argument (handy with ``--scenarios``: one list per key);
``JsonLinesWriter`` writes what ``PubSubWriter`` would publish, one strict JSON object per step, so a
batch run and a streaming run of the same model can be compared line by line.
"""

from __future__ import annotations

import typing as _t

from plugboard_beam.component.component import Component
from plugboard_beam.component.io_controller import IOController
from plugboard_beam.library._common import field_names
from plugboard_beam.library.json_limits import NotJSON, dumps_strict
from plugboard_beam.schemas import ComponentArgsDict


class ListSource(Component):
    """A source stepping once per row of ``rows`` (a mapping per row, or a value when there is
    one field), then closing."""

    io = IOController()

    def __init__(self, fields: list[str], rows: list[_t.Any], **kwargs: _t.Unpack[ComponentArgsDict]) -> None:
        super().__init__(**kwargs)
        self.fields = field_names({"fields": fields})
        self.io = IOController(outputs=self.fields, namespace=self.name)
        self._rows = list(rows)
        self._i = 0

    @classmethod
    def io_for(cls, args: _t.Mapping[str, _t.Any]) -> IOController:
        return IOController(outputs=field_names(args))

    def step(self) -> None:  # type: ignore[override]
        if self._i >= len(self._rows):
            self.io.close_sync()
            return
        row = self._rows[self._i]
        self._i += 1
        if isinstance(row, dict):
            for f in self.fields:
                setattr(self, f, row.get(f))
        else:
            setattr(self, self.fields[0], row)


class JsonLinesWriter(Component):
    """Writes ``{field: value, ...}`` per step as JSON lines to ``path``."""

    io = IOController()

    def __init__(self, path: str, fields: list[str], **kwargs: _t.Unpack[ComponentArgsDict]) -> None:
        super().__init__(**kwargs)
        self.fields = field_names({"fields": fields})
        self.io = IOController(inputs=self.fields, initial_values=self.initial_values, namespace=self.name)
        self.path = path

    @classmethod
    def io_for(cls, args: _t.Mapping[str, _t.Any]) -> IOController:
        return IOController(inputs=field_names(args))

    def step(self) -> None:  # type: ignore[override]
        if "_lines" not in self.__dict__:
            self._lines: list[str] = []
        try:  # strict JSON, as PubSubWriter publishes it (NaN and infinities fail the key)
            self._lines.append(dumps_strict({f: getattr(self, f) for f in self.fields}))
        except NotJSON as exc:
            raise ValueError(f"the line is not strict JSON: {exc}") from None

    def destroy(self) -> None:  # type: ignore[override]
        with open(self.path, "w") as f:
            f.writelines(line + "\n" for line in self.__dict__.get("_lines", []))
