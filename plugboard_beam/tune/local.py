"""The default executor: a batch's trials one after the other in this process, with the step
engine (what ``--runner local`` does for keys, without its data-reader and Beam set-up)."""

from __future__ import annotations

import typing as _t

from plugboard_beam.exceptions import StepError
from plugboard_beam.runtime.engine import Engine
from plugboard_beam.runtime.failure import Failure, construct
from plugboard_beam.runtime.finals import final_values
from plugboard_beam.runtime.session import run_to_end
from plugboard_beam.spec.errors import ModelError
from plugboard_beam.spec.load import LoadedModel
from plugboard_beam.spec.scenarios import Scenario
from plugboard_beam.tune.study import KeyOutcome, invalid_overrides


class InProcessExecutor:
    """Runs each trial of a batch to its end here; a trial that fails fails alone."""

    def __call__(self, model: LoadedModel, scenarios: list[Scenario], fields: tuple[str, ...]
                 ) -> dict[str, KeyOutcome]:
        out: dict[str, KeyOutcome] = {}
        for sc in scenarios:
            components: dict[str, _t.Any] = {}
            errors: list[StepError] = []
            try:
                inst = model.resolve(sc.overrides)
            except ModelError as err:
                out[sc.key] = invalid_overrides(err)
                continue
            try:
                components = construct(inst, sc.key)
                run_to_end(Engine(inst.graph, components, key=sc.key))
            except StepError as err:
                errors = [err, *err.also]
            final = final_values(sc.key, components, fields, errors)
            if final["constraint"] is not None:
                out[sc.key] = KeyOutcome(values=final["values"], constraint=final["constraint"])
            elif errors:
                out[sc.key] = KeyOutcome(failure=Failure.of(errors[0], errors[1:]).message)
            else:
                out[sc.key] = KeyOutcome(values=final["values"])
        return out
