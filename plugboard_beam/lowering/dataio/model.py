"""``DataIO``: the keyed reads and sink writes of one model, and ``lower``, the hook of
``lowering.beam.build``."""

from __future__ import annotations

from dataclasses import dataclass, field
import typing as _t

import apache_beam as beam

from plugboard_beam.exceptions import UserError
from plugboard_beam.lowering.dataio.common import ERRORS, KEYS, RECORD
from plugboard_beam.lowering.dataio.found import KeyedRead, SinkWrite, keyed_reads, sink_writes
from plugboard_beam.lowering.dataio.reads import _KeyChunks, _rows
from plugboard_beam.lowering.dataio.sinks import _InsertRows, _ShardBatch, _write_shard
from plugboard_beam.lowering.dataio.waves import ALL_KEYS, Wave
from plugboard_beam.lowering.plan import Plan, Stage, chunk_tag, make_plan, writer_tag
from plugboard_beam.spec.load import LoadedModel


@dataclass(frozen=True)
class DataIO:
    """The keyed reads and sink writes of one model, and the plan with the reads outside."""

    plan: Plan
    reads: tuple[KeyedRead, ...]
    sinks: tuple[SinkWrite, ...]
    #: the keys this pipeline reads (all, or one wave of them)
    wave: Wave = ALL_KEYS
    #: PCollections of error rows (JSON lines) from reads and sinks; ``lower`` hands this very list
    #: to ``build``, which adds the stages' errors and writes them all
    error_rows: list[_t.Any] = field(default_factory=list)

    @classmethod
    def of(cls, model: LoadedModel, plan: Plan, n_instances: int,
           overridden: _t.Collection[str] = (), wave: Wave = ALL_KEYS) -> DataIO:
        """Find the keyed readers and the writers to turn into sinks. ``overridden``: the
        arguments scenarios override (``component.arg``); a keyed reader's are refused (it reads
        one table for all keys), a writer's keep it writing per key."""
        reads = keyed_reads(model)
        sinks = sink_writes(model, n_instances, overridden, bool(reads))
        for r in reads:
            bad = sorted(o for o in overridden if o.split(".", 1)[0] == r.name)
            if bad:
                raise UserError(f"scenarios override {', '.join(bad)}, but '{r.name}' has key_column: it reads "
                                "one table for every key, so its arguments cannot differ per key")
        if reads:
            external = (*plan.external, *(r.name for r in reads))
            plan = make_plan(plan.graph, plan.partition, external=external, cut=plan.cut)
        return cls(plan, tuple(reads), tuple(sinks), wave)

    # ------------------------------------------------------------------------ reads
    def read(self, pipeline: beam.Pipeline,
             record: bool = False) -> tuple[dict[int, _t.Any], _t.Any, list[_t.Any], list[_t.Any]]:
        """Add the keyed reads: (edge id -> chunk PCollection, the keys found in the data (None
        without keyed reads: the scenarios' keys are the keys), error rows, record tables: with
        ``record``, the rows each reader sends, as a component in a stage records what it sends)."""
        edges: dict[int, _t.Any] = {}
        errors = self.error_rows
        records: list[_t.Any] = []
        found = []
        keys = None
        graph = self.plan.graph
        for r in self.reads:
            out_edges = [e for e in graph.edges if e.source == r.name]
            rows = _rows(pipeline, r, self.wave)
            tags = [chunk_tag(e) for e in out_edges]
            grouped = (rows["rows"] | f"Group {r.name} by key" >> beam.GroupByKey()
                       | f"Chunks of {r.name}" >> beam.ParDo(_KeyChunks(r, out_edges, record)).with_outputs(
                           *tags, KEYS, RECORD, ERRORS))
            for e in out_edges:
                edges[e.id] = grouped[chunk_tag(e)]
            found.append(grouped[KEYS])
            errors += [rows[ERRORS], grouped[ERRORS]]
            if record:
                records.append(grouped[RECORD])
        if found:
            keys = (tuple(found) | "Keys from data" >> beam.Flatten()
                    | "Distinct keys" >> beam.Distinct())
        return edges, keys, errors, records

    # ----------------------------------------------------------------------- writes
    def writers(self, stage: Stage) -> tuple[str, ...]:
        """The sink writers run by ``stage`` (their rows leave it on ``writer_tag``)."""
        return tuple(s.name for s in self.sinks if s.name in stage.members)

    def tags(self, stage: Stage) -> tuple[str, ...]:
        """Output tags ``stage`` needs for its sink writers."""
        return tuple(writer_tag(n) for n in self.writers(stage))

    def write(self, stage: Stage, outs: _t.Any) -> None:
        """Add the sinks of ``stage``'s writers."""
        for s in self.sinks:
            if s.name not in stage.members:
                continue
            batches = outs[writer_tag(s.name)]  # lists of one key's (key, step, values) rows
            if s.kind == "sql":
                failed = batches | f"Insert {s.name}" >> beam.ParDo(_InsertRows(s))
            else:
                sharded = batches | f"Shard {s.name}" >> beam.ParDo(_ShardBatch(s)).with_outputs(ERRORS, main="rows")
                failed = (sharded["rows"] | f"Group {s.name} shards" >> beam.GroupByKey()
                          | f"Write {s.name}" >> beam.FlatMap(_write_shard, s, self.wave))
                self.error_rows.append(sharded[ERRORS])
            self.error_rows.append(failed)


def lower(
    pipeline: beam.Pipeline, model: LoadedModel, plan: Plan, instances: _t.Sequence[tuple[str, _t.Any]],
    wave: Wave = ALL_KEYS, record: bool = False,
) -> tuple[DataIO, dict[int, _t.Any], _t.Any, list[_t.Any], list[_t.Any]]:
    """The hook of ``lowering.beam.build``: the data I/O of the model, the chunk PCollections of
    keyed reads by edge id, the keys found in keyed data to start stages with (None without
    keyed reads), error rows to report, and (with
    ``record``) the record tables of keyed reads. ``wave``: the keys whose rows keyed reads keep
    (all by default)."""
    overridden = {name for _, o in instances for name in (o or {})}
    io = DataIO.of(model, plan, len(instances), overridden, wave)
    edges, keys, errors, records = io.read(pipeline, record)
    return io, edges, keys, errors, records
