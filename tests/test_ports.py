"""The engine's ports (issue 19): values cross to another stage without a Python call each.
``OutPort.put`` is its buffer's own ``append`` (the buffer stays the same list; ``take`` copies it
out), and ``InPort.put_all`` / ``Channel.put_all`` take a chunk at once. Each must give what
putting the values one by one gave."""

from __future__ import annotations

import typing as _t

import pytest

from plugboard_beam.graph.model import Edge
from plugboard_beam.runtime.engine import Channel, Field, InPort, OutPort


def _edge(eid: int, kind: str = "field") -> Edge:
    return Edge(id=eid, source="a", source_field="x", target="b", target_field="x", kind=kind)


def test_an_out_port_buffers_with_its_lists_append_and_take_copies_it_out() -> None:
    out = OutPort(_edge(0))
    put: _t.Callable[[_t.Any], None] = out.put  # bound once, as the engine binds its deliveries
    for v in (1, 2, 3):
        put(v)
    first = out.take()
    assert first == (0, [1, 2, 3], False)
    put(4)  # the same bound put still fills the port after a take
    out.close()
    second = out.take()
    assert second == (3, [4], True)
    assert first[1] == [1, 2, 3]  # a taken list is not the buffer (not cleared by later takes)
    assert out.take() == (4, [], True)


@pytest.mark.parametrize("ports", [1, 2])
def test_put_all_gives_what_puts_one_by_one_gave(ports: int) -> None:
    """A field fed by one connector takes the chunk at once; one fed by several (fan-in) merges as
    ``put`` does: values in (source step, connector order)."""

    def field_with(n: int) -> tuple[Field, list[InPort]]:
        fld = Field("x", ["seed"])
        made = [InPort(_edge(i), fld, _t.cast(_t.Any, None), n == 1) for i in range(n)]
        fld.ports.extend(made)
        return fld, made

    chunks = [[10, 11, 12], [20, 21]][:ports]
    one_by_one, by_put = field_with(ports)
    at_once, by_put_all = field_with(ports)
    for port, values in zip(by_put, chunks, strict=True):
        for v in values:
            port.put(v)
    for port, values in zip(by_put_all, chunks, strict=True):
        port.put_all(values)
    assert list(at_once.buf) == list(one_by_one.buf)
    assert list(at_once.buf)[:3] == (["seed", 10, 11] if ports == 1 else ["seed", 10, 20])


def test_a_channel_takes_a_chunk_of_batches_at_once() -> None:
    ch = Channel(Edge(id=0, source="a", source_field="", target="b", target_field="", kind="event", lag=1))
    ch.put_all([["e1"], [], ["e2", "e3"]])
    assert list(ch.buf) == [(), ["e1"], [], ["e2", "e3"]]  # the lag's empty batch first
