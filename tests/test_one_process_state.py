"""A stage run kept between a key's elements (issue 19): where every bundle runs in one process
(the DirectRunner in memory), the live run is the truth and Beam state holds its version only;
elsewhere (multi-process workers, Dataflow) the run is pickled into Beam state after every
element."""

from __future__ import annotations

from pathlib import Path
import types
import typing as _t

import pytest

from plugboard_beam.cli.registry import get_runner
from plugboard_beam.exceptions import StepError
from plugboard_beam.lowering.beam import StageDoFn
from plugboard_beam.lowering.options import RunOptions
from plugboard_beam.spec import load_model
from plugboard_beam.spec.scenarios import Scenario

PARTS = '''
import typing as _t
from plugboard_beam.component import Component, IOController as IO

GETSTATE = []

class Counted(Component):
    """Passes x on; counts how often the engine pickles it (its __getstate__)."""
    io = IO(inputs=["x"], outputs=["y"])

    def __init__(self, **kwargs: _t.Any) -> None:
        super().__init__(**kwargs)
        self.n = 0

    async def step(self) -> None:
        self.n += 1
        self.y = self.x + self.n

    def __getstate__(self) -> dict:
        GETSTATE.append(self.name)
        return super().__getstate__()
'''

MODEL = """
plugboard:
  process:
    args:
      components:
      - {type: bench_parts.Source, args: {name: source, steps: 3000}}
      - {type: ops_parts.Counted, args: {name: mid}}
      - {type: bench_parts.Total, args: {name: total}}
      connectors:
      - {source: source.x, target: mid.x}
      - {source: mid.y, target: total.x}
"""

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "ops_parts.py").write_text(PARTS)
    (tmp_path / "m.yaml").write_text(MODEL)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks" / "models"))
    return tmp_path / "m.yaml"


def test_in_memory_direct_runner_keeps_runs_live_without_pickling(model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ops_parts  # type: ignore[import-not-found]

    saves: list[bytes] = []
    real_save = StageDoFn._save

    def spy(self: StageDoFn, key: str, version: int, run: _t.Any, state: _t.Any) -> None:
        real_save(self, key, version, run, _t.cast(_t.Any, types.SimpleNamespace(
            write=lambda blob: (saves.append(blob), state.write(blob)))))

    monkeypatch.setattr(StageDoFn, "_save", spy)
    scenarios = [Scenario(f"k{i}", {"source.steps": 3000 + i}) for i in range(3)]
    opts = dict(scenarios=scenarios, final_fields=("total.total", "total.count", "mid.n"))
    direct = get_runner("direct").run(load_model(model), RunOptions(partition="component", **opts))
    local = get_runner("local").run(load_model(model), RunOptions(**opts))
    assert not direct.failures and direct.finals == local.finals
    assert direct.finals["k2"]["values"]["mid.n"] == 3002
    # keys were kept between elements (3,000 steps cross stages in several chunks) ...
    assert len(saves) >= 6
    # ... as their versions only, and no component was ever pickled
    assert {len(blob) for blob in saves} == {8}
    assert ops_parts.GETSTATE == []


class _Run:
    def __init__(self) -> None:
        self.dumped = 0

    def dump(self) -> bytes:
        self.dumped += 1
        return b"pickled"


@pytest.mark.parametrize("pickle_runs", [True, False])
def test_save_pickles_only_where_another_process_may_load(pickle_runs: bool) -> None:
    written: list[bytes] = []
    fake = types.SimpleNamespace(pickle_runs=pickle_runs, live={}, unpicklable_warned=False)
    run = _Run()
    StageDoFn._save(_t.cast(StageDoFn, fake), "k1", 4, _t.cast(_t.Any, run),
                    types.SimpleNamespace(write=written.append))
    version = (5).to_bytes(8, "little")
    assert written == [version + b"pickled" if pickle_runs else version]
    assert run.dumped == (1 if pickle_runs else 0)
    assert fake.live == {"k1": (5, run)}


def test_a_run_missing_from_memory_fails_its_key_with_a_clear_reason() -> None:
    fake = types.SimpleNamespace(pickle_runs=False, live={}, use_live=True,
                                 stage=types.SimpleNamespace(name="s1", members=("mid",)))
    with pytest.raises(StepError) as info:
        StageDoFn._load(_t.cast(StageDoFn, fake), "k9", (3).to_bytes(8, "little"))
    err = info.value
    assert err.component == "mid" and err.key == "k9"
    assert "was kept in this process only" in str(err) and "pickled" not in str(err)

