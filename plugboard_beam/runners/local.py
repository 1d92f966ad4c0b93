"""``--runner local``: every key in this process with the step engine, no Beam."""

from __future__ import annotations

import typing as _t

from plugboard_beam.exceptions import Interrupted, StepError, UserError
from plugboard_beam.library.data import KeyedRows
from plugboard_beam.lowering.options import RunOptions
from plugboard_beam.runners.base import BASE_FLAGS, Instances, Runner, RunReport
from plugboard_beam.runtime.context import work
from plugboard_beam.runtime.driver import Driver, LoopPool
from plugboard_beam.runtime.engine import Engine
from plugboard_beam.runtime.failure import Failure, construct
from plugboard_beam.runtime.finals import final_values
from plugboard_beam.runtime.session import run_to_end
from plugboard_beam.spec.load import LoadedModel
from plugboard_beam.spec.scenarios import Scenario
from plugboard_beam.state.runs import KeyReporter


class LocalRunner(Runner):
    """Every key in this process, one after the other."""

    name = "local"
    runs_own_run = True
    writes_state = True

    def accepts(self, options: RunOptions) -> frozenset[str]:
        return BASE_FLAGS | {"--progress"}

    def default_scenarios(self, model: LoadedModel) -> _t.Optional[list[Scenario]]:
        """A model with keyed data readers (``key_column``) runs one key per key in its data."""
        from plugboard_beam.library.data import DataError
        from plugboard_beam.lowering.dataio.counts import data_keys

        try:
            keys = data_keys(model)
        except DataError as exc:
            raise UserError(str(exc)) from None
        return None if keys is None else [Scenario(k, {}) for k in keys]

    def check(self, model: LoadedModel, options: RunOptions) -> None:
        if options.pipeline_args:
            raise UserError(f"unknown option(s) for --runner local: {' '.join(options.pipeline_args)}")
        if options.record:
            raise UserError("--record writes Parquet through Beam: use --runner direct")

    def execute(self, model: LoadedModel, insts: Instances, options: RunOptions) -> RunReport:
        _refuse_shared_files(model, insts)
        shared = _keyed_tables(model, insts)
        report = RunReport()
        keys = KeyReporter(self.state) if self.state is not None else None
        loops = LoopPool()  # one event loop for the keys in turn, not one per key
        try:
            self._run_keys(insts, shared, options, report, keys, loops)
        finally:
            loops.close()
        return report

    def _run_keys(self, insts: Instances, shared: dict[str, KeyedRows], options: RunOptions,
                  report: RunReport, keys: _t.Optional[KeyReporter], loops: LoopPool) -> None:
        tracker = options.tracker
        ended = 0
        for sc, inst in insts:
            key = sc.key
            components: dict[str, _t.Any] = {}
            errors: list[StepError] = []
            done: dict[str, int] = {}
            engine: _t.Optional[Engine] = None
            if keys is not None:
                keys.started(key)
            try:
                components = construct(inst, key)
                for name, rows in shared.items():
                    components[name].__dict__["_plugboard_beam_rows"] = rows
                engine = Engine(inst.graph, components, key=key, driver=Driver(loops),
                                job_id=options.log.job_id if options.log else None)
                if tracker is not None:
                    tracker.live(self.name, key, engine)  # its steps are read by the display
                try:
                    run_to_end(engine)
                finally:
                    done = work(engine)
                    for name, n in done.items():
                        report.steps[name] = report.steps.get(name, 0) + n
            except KeyboardInterrupt:
                # (``run_to_end`` destroyed the key's components; the keys that had failed are told)
                raise Interrupted(f"stopped in key {key[:80]!r} ({ended} of {len(insts)} key(s) had ended); "
                                  "destroy() was called on its components", report.failures) from None
            except StepError as err:
                report.failures.append(Failure.of(err, err.also))
                errors = [err, *err.also]
            if tracker is not None:
                tracker.ended(self.name, key, done, bool(errors))
            if keys is not None:
                keys.ended(key, {n: c.status for n, c in components.items()}, errors)
            if options.final_fields:
                report.finals[key] = final_values(key, components, options.final_fields, errors)
            if engine is not None:
                engine.release()  # the key's objects freed now, not by the cycle collector
            ended += 1


def _refuse_shared_files(model: LoadedModel, insts: Instances) -> None:
    """Several keys and a FileWriter whose path has no ``{key}``: the Beam runners write one
    table with a ``key`` column (a sink); here every key would overwrite the same file."""
    if len(insts) < 2:
        return
    from plugboard_beam.lowering.dataio.found import keyed_reads, sink_writes

    overridden = {name for sc, _ in insts for name in sc.overrides}
    shared = [s.name for s in sink_writes(model, len(insts), overridden, bool(keyed_reads(model)))
              if s.kind == "file"]
    if shared:
        raise UserError(
            f"{len(insts)} keys would each overwrite the file of {', '.join(repr(n) for n in shared)} on "
            "--runner local: put {key} in its path (one file per key), or use --runner direct, which writes "
            "one table with a 'key' column")


def _keyed_tables(model: LoadedModel, insts: Instances) -> dict[str, KeyedRows]:
    """The keyed readers' tables, each read once for all keys (``KeyedRows``), by reader name: a
    key's reader takes its rows from there instead of reading the whole source again (which made
    a run of N keys read its table N times). Not for one key, nor for a reader whose arguments
    scenarios set per key; a source that cannot be read is left to each key's reader, which
    fails naming it."""
    if len(insts) < 2:
        return {}
    from plugboard_beam.library.data import DataError, DataReader

    overridden = {name.split(".", 1)[0] for sc, _ in insts for name in sc.overrides}
    names = [name for name, klass in model.classes.items()
             if issubclass(klass, DataReader) and hasattr(klass, "keyed_rows") and name not in overridden]
    if not names:
        return {}
    sc, inst = insts[0]
    try:
        components = construct(inst, sc.key)
    except StepError:
        return {}  # a constructor that raises fails every key, named, when it runs
    tables: dict[str, KeyedRows] = {}
    for name in names:
        reader = components[name]
        if reader.key_column is None:
            continue
        try:
            tables[name] = reader.keyed_rows()
        except DataError:
            continue
    return tables

