"""Problems found in a model, each naming the model element and its YAML line."""

from __future__ import annotations

from dataclasses import dataclass
import typing as _t

from plugboard_beam.exceptions import UserError, ValidationError


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a model."""

    message: str
    line: _t.Optional[int] = None
    element: str = ""

    def format(self, filename: str = "") -> str:
        """``file:line: element: message``."""
        where = ":".join(p for p in (filename, str(self.line) if self.line else "") if p)
        head = f"{where}: " if where else ""
        if self.line and not filename:
            head = f"line {self.line}: "
        elem = f"{self.element}: " if self.element else ""
        return f"{head}{elem}{self.message}"


class ModelError(UserError, ValidationError):
    """A model failed validation; carries every problem found, not just the first."""

    def __init__(self, problems: _t.Sequence[Problem], filename: str = "", what: str = "model") -> None:
        self.problems = list(problems)
        self.filename = filename
        #: what the file is ("model", "scenarios file"), for the header
        self.what = what
        super().__init__(self.describe())

    def describe(self) -> str:
        """One line per problem, under a header saying how many."""
        n = len(self.problems)
        head = f"{self.filename or self.what} is not a valid {self.what} ({n} problem{'s' if n != 1 else ''}):"
        body = "\n".join(f"  - {p.format(self._short())}" for p in self.problems)
        return f"{head}\n{body}"

    def _short(self) -> str:
        return self.filename.rsplit("/", 1)[-1] if self.filename else ""
