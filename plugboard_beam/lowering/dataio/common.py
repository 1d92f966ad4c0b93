"""What the data I/O modules share: output tags and building one component of a model (to read
its arguments)."""

from __future__ import annotations

import logging
import typing as _t

from plugboard_beam.exceptions import UserError
from plugboard_beam.spec.load import LoadedModel

log = logging.getLogger("plugboard_beam")

KEYS = "keys"
ERRORS = "errors"
RECORD = "record"


def build_one(model: LoadedModel, name: str) -> _t.Any:
    spec = model.component_specs()[name]
    kwargs: dict[str, _t.Any] = dict(spec.args.extra_args())
    kwargs["name"] = name
    try:
        return model.classes[name](**kwargs)
    except (ValueError, TypeError) as exc:  # an argument the constructor refuses: the user's to fix
        raise UserError(f"component '{name}' ({model.classes[name].__name__}): the constructor raised "
                        f"{type(exc).__name__}: {exc}") from None
