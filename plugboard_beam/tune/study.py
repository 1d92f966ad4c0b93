"""The study loop: Optuna proposes a batch of trials (ask), the batch runs as keys of one run
(each trial a scenario: its parameters as overrides), the objectives come back as each key's
final values and are told to Optuna; repeat until ``num_samples`` trials have finished.

Beam-free: how a batch runs is an ``Executor`` (``tune.local.InProcessExecutor``, the default,
runs it in this process; ``runners.trials.RunnerExecutor`` on a runner, e.g. as one Beam pipeline).
"""

from __future__ import annotations

from dataclasses import dataclass, field
import importlib
import inspect
import logging
import math
import typing as _t

from plugboard_beam.exceptions import UserError
from plugboard_beam.runtime.finals import is_number
from plugboard_beam.schemas.tune import (
    Direction,
    FloatParameterSpec,
    IntParameterSpec,
    ObjectiveSpec,
    OptunaSpec,
    ParameterSpec,
    check_modes,
)
from plugboard_beam.spec.errors import ModelError
from plugboard_beam.spec.load import LoadedModel, look_first_in
from plugboard_beam.spec.scenarios import Scenario

if _t.TYPE_CHECKING:
    import optuna

log = logging.getLogger("plugboard_beam")

COMPLETE = "complete"
INFEASIBLE = "infeasible"
FAILED = "failed"
#: trials asked before a run stopped, found again when a study is resumed
INTERRUPTED = "interrupted"
#: the default batch of a learning sampler: TPE's random start-up trials
DEFAULT_BATCH = 10


@dataclass(frozen=True)
class KeyOutcome:
    """What one key (trial) of a batch gave: its final values, or how it failed."""

    values: dict[str, _t.Any] = field(default_factory=dict)
    #: a ``ConstraintError`` stopped it: ``{"objective_value", "component", "step", "reason"}``
    constraint: _t.Optional[dict[str, _t.Any]] = None
    #: a failure that is not a constraint: one line (component, key, step, reason)
    failure: str = ""


class Executor(_t.Protocol):
    """Runs a batch of trials as keys of one run. A trial whose overrides do not fit the model
    (``ModelError``, e.g. a custom space suggesting text for a number) fails alone
    (``invalid_overrides``)."""

    def __call__(self, model: LoadedModel, scenarios: list[Scenario], fields: tuple[str, ...]
                 ) -> dict[str, KeyOutcome]: ...


@dataclass(frozen=True)
class TrialResult:
    """One trial, as a plugboard user reads a Ray ``Result``: ``config`` (parameter full name ->
    value) and ``metrics`` (objective full name -> value); ``state`` is ``complete``,
    ``infeasible`` (a ``ConstraintError``: objectives at ``objective_value`` or -inf/+inf),
    ``failed`` or ``interrupted``."""

    number: int
    key: str
    config: dict[str, _t.Any]
    metrics: dict[str, float]
    state: str
    failure: str = ""

    @property
    def ok(self) -> bool:
        """Whether Optuna was told values (complete or infeasible)."""
        return self.state in (COMPLETE, INFEASIBLE)


class ResultGrid(_t.Sequence[TrialResult]):
    """Every trial of a study, in order (Ray's ``ResultGrid``, as far as plugboard users read it)."""

    def __init__(self, results: _t.Sequence[TrialResult]) -> None:
        self._results = list(results)

    @_t.overload
    def __getitem__(self, i: int) -> TrialResult: ...

    @_t.overload
    def __getitem__(self, i: slice) -> _t.Sequence[TrialResult]: ...

    def __getitem__(self, i: _t.Union[int, slice]) -> _t.Union[TrialResult, _t.Sequence[TrialResult]]:
        return self._results[i]

    def __len__(self) -> int:
        return len(self._results)

    def get_best_result(self, metric: str, mode: Direction) -> TrialResult:
        """The trial with the best ``metric`` (failed trials left out)."""
        scored = [r for r in self._results if r.ok and is_number(r.metrics.get(metric))]
        if not scored:
            raise UserError("no trial finished with a value of the objective: see the failed trials above")
        pick = max if mode == "max" else min
        return pick(scored, key=lambda r: r.metrics[metric])

    def rows(self) -> list[dict[str, _t.Any]]:
        """One flat row per trial: number, key, state, the parameters, the objectives, failure."""
        params = sorted({k for r in self._results for k in r.config})
        metrics = sorted({k for r in self._results for k in r.metrics})
        return [{"trial": r.number, "key": r.key, "state": r.state,
                 **{p: r.config.get(p) for p in params}, **{m: r.metrics.get(m) for m in metrics},
                 "failure": r.failure} for r in self._results]

    def get_dataframe(self) -> _t.Any:
        """The rows as a pandas DataFrame (pandas must be installed)."""
        import pandas as pd

        return pd.DataFrame(self.rows())


#: called after each trial is told: (the trial, the best trial so far or None, trials done, total)
OnTrial = _t.Callable[[TrialResult, _t.Optional[TrialResult], int, int], None]


class Tuner:
    """Optimises a model's arguments with Optuna (plugboard 0.9.0's ``Tuner``); every batch of
    trials runs as the keys of one run."""

    def __init__(
        self,
        *,
        objective: _t.Union[ObjectiveSpec, list[ObjectiveSpec]],
        parameters: _t.Sequence[ParameterSpec],
        num_samples: int,
        mode: _t.Union[Direction, list[Direction]] = "max",
        max_concurrent: _t.Optional[int] = None,
        algorithm: _t.Optional[OptunaSpec] = None,
    ) -> None:
        try:
            check_modes(objective, mode)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        if not parameters:
            raise UserError("give at least one parameter to tune")
        if num_samples < 1 or (max_concurrent is not None and max_concurrent < 1):
            raise UserError("num_samples and max_concurrent are positive integers")
        self.objectives: list[ObjectiveSpec] = list(objective) if isinstance(objective, list) else [objective]
        self.modes: list[Direction] = list(mode) if isinstance(mode, list) else [mode]
        self.parameters = list(parameters)
        self.num_samples = num_samples
        self.max_concurrent = max_concurrent
        self.algorithm = algorithm or OptunaSpec()
        self._grid: _t.Optional[ResultGrid] = None
        self._pareto: list[TrialResult] = []

    # ----------------------------------------------------------------- results
    @property
    def is_multi_objective(self) -> bool:
        """More than one objective."""
        return len(self.objectives) > 1

    @property
    def result_grid(self) -> ResultGrid:
        """Every trial of the last ``run`` (with those of earlier runs of a resumed study)."""
        if self._grid is None:
            raise ValueError("No result grid available. Run the optimisation job first.")
        return self._grid

    @property
    def pareto_front(self) -> list[TrialResult]:
        """Multi-objective: the trials no other trial beats on every objective."""
        return list(self._pareto)

    def metric_names(self) -> list[str]:
        """The objectives' full names (keys of ``metrics``)."""
        return [o.full_name for o in self.objectives]

    # --------------------------------------------------------------------- run
    def run(self, spec: _t.Any, *, executor: _t.Optional[Executor] = None, seed: _t.Optional[int] = None,
            on_trial: _t.Optional[OnTrial] = None) -> _t.Union[TrialResult, list[TrialResult]]:
        """Run the study on ``spec`` (a ``ProcessSpec``, a model file path or a loaded model); return
        the best trial (one per objective for several objectives, as plugboard does). ``executor``
        runs each batch (default: every key in this process); ``seed`` makes the study repeatable
        (default: ``algorithm.seed``). Ctrl-C stops after telling the running batch as failed:
        the trials so far are in ``result_grid`` (and in the study's storage)."""
        import optuna

        from plugboard_beam.tune.setup import as_model, check_against_model

        model = as_model(spec)
        check_against_model(model, self.objectives, self.parameters)
        if executor is None:
            from plugboard_beam.tune.local import InProcessExecutor

            executor = InProcessExecutor()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        seed = self.algorithm.seed if seed is None else seed
        study = self._study(model, seed)
        space = self._space(model)
        names = {p.full_name: p for p in self.parameters}
        fields = tuple(f"{o.object_name}.{o.field_name}" for o in self.objectives)
        done = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
        if done and seed is not None:
            # a resumed study: the same seed would draw the first trials' values again
            study.sampler = optuna.samplers.TPESampler(seed=seed + len(done))
        for point in self.algorithm.points_to_evaluate or []:
            if not done:
                study.enqueue_trial(point)
        batch_size = self.max_concurrent or DEFAULT_BATCH
        total = self.num_samples
        count = len(done)
        best: _t.Optional[TrialResult] = None
        for t in done:
            best = self._better(best, self._result(t))
        first = len(study.get_trials(deepcopy=False))  # the number of this run's first trial
        try:
            while count < total:
                asked: list[optuna.Trial] = []
                for _ in range(min(batch_size, total - count)):
                    asked.append(study.ask(None if space else self._distributions()))
                configs = [self._config(trial, space, model) for trial in asked]
                outcomes = self._run_batch(model, executor, asked, configs, names, fields)
                for trial, config, outcome in zip(asked, configs, outcomes, strict=True):
                    result = self._tell(study, trial, config, outcome)
                    count += 1
                    best = self._better(best, result)
                    if on_trial is not None:
                        on_trial(result, best, count, total)
        except BaseException:  # Ctrl-C (or a crash): keep what finished
            # the running batch (and a trial being asked): told failed, so a resumed study skips them
            for t in study.get_trials(deepcopy=False)[first:]:
                if t.state == optuna.trial.TrialState.RUNNING:
                    study.tell(t.number, state=optuna.trial.TrialState.FAIL)
            self._finish(study)
            raise
        self._finish(study)
        grid = self.result_grid
        if self.is_multi_objective:
            return [grid.get_best_result(m, d) for m, d in zip(self.metric_names(), self.modes, strict=True)]
        return grid.get_best_result(self.metric_names()[0], self.modes[0])

    def first_batch(self, spec: _t.Any, *, seed: _t.Optional[int] = None
                    ) -> tuple[LoadedModel, list[Scenario], tuple[str, ...]]:
        """The first batch of a new study on ``spec``, asked but not run (a Dataflow dry run
        builds its job): the model, the batch's trials as scenarios (keys), and the objective
        fields each key reports. The study is in memory: ``algorithm.storage`` is not touched."""
        import optuna

        from plugboard_beam.tune.setup import as_model, check_against_model

        model = as_model(spec)
        check_against_model(model, self.objectives, self.parameters)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = self._study(model, self.algorithm.seed if seed is None else seed, stored=False)
        space = self._space(model)
        for point in self.algorithm.points_to_evaluate or []:
            study.enqueue_trial(point)
        asked = [study.ask(None if space else self._distributions())
                 for _ in range(min(self.max_concurrent or DEFAULT_BATCH, self.num_samples))]
        configs = [self._config(trial, space, model) for trial in asked]
        fields = tuple(f"{o.object_name}.{o.field_name}" for o in self.objectives)
        return model, self._scenarios(model, asked, configs), fields

    def _study(self, model: LoadedModel, seed: _t.Optional[int], stored: bool = True) -> optuna.Study:
        """The study (loaded from ``algorithm.storage`` when it is there already; in memory
        unless ``stored``)."""
        import optuna

        algo = self.algorithm if stored else self.algorithm.model_copy(update={"storage": None})
        sampler = optuna.samplers.TPESampler(seed=seed)
        directions: list[_t.Literal["minimize", "maximize"]] = [
            "maximize" if m == "max" else "minimize" for m in self.modes]
        name = algo.study_name or (f"plugboard-beam-{model.graph.name}" if algo.storage else None)
        try:
            study = optuna.create_study(storage=algo.storage, sampler=sampler, study_name=name,
                                        directions=directions, load_if_exists=True)
        except ValueError as exc:  # e.g. the stored study has other directions
            raise UserError(f"Optuna study {name!r} in {algo.storage}: {exc}") from None
        except Exception as exc:
            if algo.storage and type(exc).__module__.startswith(("sqlalchemy", "optuna")):
                raise UserError(f"Optuna storage {algo.storage!r}: {type(exc).__name__}: "
                                f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
            raise
        return study

    def _distributions(self) -> dict[str, _t.Any]:
        import optuna.distributions as d

        out: dict[str, _t.Any] = {}
        for p in self.parameters:
            if isinstance(p, FloatParameterSpec):
                out[p.full_name] = d.FloatDistribution(p.lower, p.upper, log=p.type == "ray.tune.loguniform")
            elif isinstance(p, IntParameterSpec):
                out[p.full_name] = d.IntDistribution(p.lower, p.upper - 1)
            else:
                out[p.full_name] = d.CategoricalDistribution(_choices(p.categories))
        return out

    def _space(self, model: LoadedModel) -> _t.Optional[_t.Callable[[_t.Any], _t.Any]]:
        """The custom search space function (``algorithm.space``), or None."""
        if not self.algorithm.space:
            return None
        fn = load_space(self.algorithm.space, str(model.base_dir))
        if "spec" in inspect.signature(fn).parameters:
            process = model.config.plugboard.process
            return lambda trial: fn(trial, spec=process)
        return fn

    def _config(self, trial: optuna.Trial, space: _t.Optional[_t.Callable[[_t.Any], _t.Any]],
                model: LoadedModel) -> dict[str, _t.Any]:
        if space is None:
            return dict(trial.params)
        extra = space(trial)
        config = dict(trial.params)
        if isinstance(extra, dict):
            config.update(extra)
        return config

    def _run_batch(self, model: LoadedModel, executor: Executor, asked: list[optuna.Trial],
                   configs: list[dict[str, _t.Any]], names: dict[str, ParameterSpec],
                   fields: tuple[str, ...]) -> list[KeyOutcome]:
        outcomes: dict[str, KeyOutcome] = {}
        scenarios = self._scenarios(model, asked, configs)
        if scenarios:
            outcomes.update(executor(model, scenarios, fields))
        return [outcomes.get(trial_key(t.number), KeyOutcome(failure="the run did not report this trial"))
                for t in asked]

    @staticmethod
    def _scenarios(model: LoadedModel, asked: list[optuna.Trial], configs: list[dict[str, _t.Any]]
                   ) -> list[Scenario]:
        """One key per trial, its parameters as overrides."""
        components = {n.name for n in model.graph.nodes}
        scenarios: list[Scenario] = []
        for trial, config in zip(asked, configs, strict=True):
            overrides = {name: value for name, value in config.items()
                         if name.startswith("component.") or name.split(".", 1)[0] in components}
            scenarios.append(Scenario(trial_key(trial.number), overrides, f"trial {trial.number}"))
        return scenarios

    def _tell(self, study: optuna.Study, trial: optuna.Trial, config: dict[str, _t.Any],
              outcome: KeyOutcome) -> TrialResult:
        import optuna

        key = trial_key(trial.number)
        names = self.metric_names()
        fields = [f"{o.object_name}.{o.field_name}" for o in self.objectives]
        if outcome.constraint is not None:
            given: _t.Any = outcome.constraint.get("objective_value")
            values = [_penalty(m) if given is None else float(given) for m in self.modes]
            state, failure = INFEASIBLE, f"constraint: component '{outcome.constraint.get('component')}' at step " \
                                         f"{outcome.constraint.get('step')}: {outcome.constraint.get('reason')}"
        elif outcome.failure:
            state, failure, values = FAILED, outcome.failure, []
        else:
            raw: list[_t.Any] = [outcome.values.get(f) for f in fields]
            bad = [(f, v) for f, v in zip(fields, raw, strict=True) if not is_number(v)]
            if bad:
                f, v = bad[0]
                state, values = FAILED, []
                failure = f"objective {f} is {v!r} at the end of the run, not a number"
            else:
                state, failure, values = COMPLETE, "", [float(v) for v in raw]
        trial.set_user_attr("key", key)
        trial.set_user_attr("state", state)
        if failure:
            trial.set_user_attr("failure", failure)
        trial.set_user_attr("config", {k: _plain(v) for k, v in config.items()})
        if state == FAILED:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, values if len(values) > 1 else values[0])
        return TrialResult(trial.number, key, config, dict(zip(names, values, strict=False)), state, failure)

    def _result(self, t: optuna.trial.FrozenTrial) -> TrialResult:
        """A stored trial as a result."""
        import optuna

        config = dict(t.user_attrs.get("config") or t.params)
        # a trial told failed without a state of ours was running when the study stopped
        state = str(t.user_attrs.get("state") or (COMPLETE if t.state == optuna.trial.TrialState.COMPLETE
                                                   else INTERRUPTED))
        values = list(t.values or [])
        return TrialResult(t.number, str(t.user_attrs.get("key", trial_key(t.number))), config,
                           dict(zip(self.metric_names(), values, strict=False)), state,
                           str(t.user_attrs.get("failure", "")))

    def _better(self, best: _t.Optional[TrialResult], result: TrialResult) -> _t.Optional[TrialResult]:
        """Progress: the better of two trials on the first objective."""
        name = self.metric_names()[0]
        if not result.ok or not is_number(result.metrics.get(name)):
            return best
        if best is None:
            return result
        a, b = result.metrics[name], best.metrics[name]
        return result if (a > b if self.modes[0] == "max" else a < b) else best

    def _finish(self, study: optuna.Study) -> None:
        trials = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
        self._grid = ResultGrid([self._result(t) for t in trials])
        if self.is_multi_objective:
            front = {t.number for t in study.best_trials}
            self._pareto = [r for r in self._grid if r.number in front]


def invalid_overrides(err: ModelError) -> KeyOutcome:
    """The outcome of a trial whose parameters the model refuses."""
    return KeyOutcome(failure="; ".join(p.message for p in err.problems))


def _penalty(mode: Direction) -> float:
    """The objective of an infeasible trial with no ``objective_value``: the worst there is."""
    return -math.inf if mode == "max" else math.inf


def trial_key(number: int) -> str:
    """The key a trial runs as."""
    return f"trial-{number:05d}"


def _choices(categories: _t.Sequence[_t.Any]) -> tuple[_t.Any, ...]:
    return tuple(c if c is None or isinstance(c, (bool, int, float, str)) else _plain(c) for c in categories)


def _plain(value: _t.Any) -> _t.Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return repr(value)


def load_space(path: str, base_dir: str) -> _t.Callable[..., _t.Any]:
    """Import the custom search space function ``module.function`` (looked up first in the
    model's folder); ``LookupError`` saying why it does not import."""
    module_name, _, attr = path.rpartition(".")
    if not module_name:
        raise LookupError(f"space {path!r}: give the import path, e.g. 'my_module.{path}'")
    look_first_in(base_dir)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise LookupError(f"space {path!r}: importing {module_name!r} failed: {type(exc).__name__}: {exc}") from None
    fn = getattr(module, attr, None)
    if fn is None or not callable(fn):
        raise LookupError(f"space {path!r}: module {module_name!r} has no function {attr!r}")
    return _t.cast(_t.Callable[..., _t.Any], fn)
