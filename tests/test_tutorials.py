"""Tutorial parity (issue 16): what plugboard 0.9.0's tutorials do, with our own models — one
model written as a Python ``LocalProcess`` script and as YAML gives the same output files in
Python, on ``--runner local`` and on the DirectRunner, its random source seeded; the Dataflow
tuning tests are in test_tune.py.
(``tools/plugboard_tutorials.py`` runs plugboard's own tutorials against plugboard 0.9.0.)"""

from __future__ import annotations

import asyncio
from pathlib import Path
import random
import textwrap
import typing as _t

from click.testing import CliRunner
import pytest

from plugboard_beam.cli.main import main
from plugboard_beam.connector import AsyncioConnector, ConnectorBuilder
from plugboard_beam.events import EventConnectorBuilder
from plugboard_beam.library import FileWriter
from plugboard_beam.process import LocalProcess
from plugboard_beam.schemas import ConnectorSpec
from tutorial_parts import RNG, Add, Classify, Draw, Keep, LatestBig, LatestSmall, Times

SEED = 11
N = 6

# tutorial 002: branching, a loop closed by an initial value, process parameters
FLOWS_YAML = """\
    plugboard:
      process:
        args:
          components:
          - {type: tutorial_parts.Draw, args: {name: draw, n: 6, low: 0, high: 10}}
          - {type: tutorial_parts.Times, args: {name: scale_a}}
          - {type: tutorial_parts.Times, args: {name: scale_b, parameters: {scale: 2.0}}}
          - {type: tutorial_parts.Add, args: {name: add}}
          - {type: tutorial_parts.Add, args: {name: acc}}
          - {type: tutorial_parts.Times, args: {name: half, scale: 0.5, initial_values: {a: [0]}}}
          - {type: tutorial_parts.Keep, args: {name: keep-in, path: in.txt}}
          - {type: tutorial_parts.Keep, args: {name: keep-out, path: out.txt}}
          - {type: tutorial_parts.Keep, args: {name: keep-cum, path: cum.txt}}
          connectors:
          - {source: draw.x, target: keep-in.v}
          - {source: draw.x, target: scale_a.a}
          - {source: draw.x, target: scale_b.a}
          - {source: scale_a.x, target: add.a}
          - {source: scale_b.x, target: add.b}
          - {source: add.x, target: keep-out.v}
          - {source: draw.x, target: acc.a}
          - {source: acc.x, target: half.a}
          - {source: half.x, target: acc.b}
          - {source: acc.x, target: keep-cum.v}
          parameters: {scale: 0.5}
        type: plugboard.process.LocalProcess
    """

# tutorial 005: events published by one component, collected by two, written by FileWriter
EVENTS_YAML = """\
    plugboard:
      process:
        args:
          components:
          - {type: tutorial_parts.Draw, args: {name: draw, n: 24}}
          - {type: tutorial_parts.Classify, args: {name: classify, low: 3, high: 7}}
          - {type: tutorial_parts.LatestSmall, args: {name: small}}
          - {type: tutorial_parts.LatestBig, args: {name: big}}
          - {type: plugboard_beam.library.FileWriter, args: {name: save-small, path: small.csv, field_names: [value]}}
          - {type: plugboard_beam.library.FileWriter, args: {name: save-big, path: big.csv, field_names: [value]}}
          connectors:
          - {source: draw.x, target: classify.x}
          - {source: small.value, target: save-small.value}
          - {source: big.value, target: save-big.value}
    """


def connect(source: str, target: str) -> AsyncioConnector:
    return AsyncioConnector(spec=ConnectorSpec(source=source, target=target))


def flows_script() -> None:
    """FLOWS_YAML as a tutorial's Python script."""
    process = LocalProcess(
        components=[Draw(name="draw", n=N, low=0, high=10), Times(name="scale_a"),
                    Times(name="scale_b", parameters={"scale": 2.0}), Add(name="add"), Add(name="acc"),
                    Times(name="half", scale=0.5, initial_values={"a": [0]}), Keep(name="keep-in", path="in.txt"),
                    Keep(name="keep-out", path="out.txt"), Keep(name="keep-cum", path="cum.txt")],
        connectors=[connect("draw.x", "keep-in.v"), connect("draw.x", "scale_a.a"), connect("draw.x", "scale_b.a"),
                    connect("scale_a.x", "add.a"), connect("scale_b.x", "add.b"), connect("add.x", "keep-out.v"),
                    connect("draw.x", "acc.a"), connect("acc.x", "half.a"), connect("half.x", "acc.b"),
                    connect("acc.x", "keep-cum.v")],
        parameters={"scale": 0.5},
    )
    asyncio.run(_run(process))


def events_script() -> None:
    """EVENTS_YAML as tutorial 005's script, with event connectors built for the components
    (tutorial 005 calls ``AsyncioConnector.builder().build_event_connectors``, the process API's)."""
    components = [Draw(name="draw", n=24), Classify(name="classify", low=3, high=7), LatestBig(name="big"),
                  LatestSmall(name="small"), FileWriter(name="save-big", path="big.csv", field_names=["value"]),
                  FileWriter(name="save-small", path="small.csv", field_names=["value"])]
    connectors = [connect("draw.x", "classify.x"), connect("big.value", "save-big.value"),
                  connect("small.value", "save-small.value")]
    events = list(EventConnectorBuilder(ConnectorBuilder(AsyncioConnector)).build(components).values())
    asyncio.run(_run(LocalProcess(components=components, connectors=[*connectors, *events])))


async def _run(process: LocalProcess) -> None:
    async with process:
        await process.run()


def run_as(how: str, folder: Path, yaml_text: str, script: _t.Callable[[], None],
           monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Run the model ``how`` (``script``, ``local`` or ``direct``) in a fresh ``folder``, seeded;
    the files it wrote."""
    folder.mkdir()
    monkeypatch.chdir(folder)
    RNG.seed(SEED)
    if how == "script":
        script()
    else:
        (folder / "model.yaml").write_text(textwrap.dedent(yaml_text))
        result = CliRunner().invoke(main, ["process", "run", "model.yaml", "--runner", how])
        assert result.exit_code == 0, result.output
    return {p.name: p.read_text() for p in sorted(folder.iterdir()) if p.name != "model.yaml"}


def expected_flows() -> dict[str, list[float]]:
    """What FLOWS_YAML writes, computed here: the draws, 0.5x + 2x, and x_i + 0.5 * acc_(i-1)."""
    rng = random.Random(SEED)
    xs = [rng.uniform(0, 10) for _ in range(N)]
    cum: list[float] = []
    for x in xs:
        cum.append(x + 0.5 * (cum[-1] if cum else 0))
    return {"in.txt": xs, "out.txt": [x * 0.5 + x * 2.0 for x in xs], "cum.txt": cum}


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split()]


@pytest.mark.parametrize("how", ["script", "local"])
def test_branching_loop_and_parameters_as_the_tutorial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       how: str) -> None:
    files = run_as(how, tmp_path / how, FLOWS_YAML, flows_script, monkeypatch)
    assert sorted(files) == ["cum.txt", "in.txt", "out.txt"]
    for name, values in expected_flows().items():
        assert _floats(files[name]) == pytest.approx(values, rel=1e-12), name


@pytest.mark.slow
def test_branching_loop_and_parameters_same_files_on_every_engine(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    runs = {how: run_as(how, tmp_path / how, FLOWS_YAML, flows_script, monkeypatch)
            for how in ("script", "local", "direct")}
    assert runs["direct"] == runs["local"] == runs["script"]


def _column(text: str) -> list[str]:
    return text.splitlines()[1:]


@pytest.mark.parametrize("how", ["script", "local"])
def test_events_as_the_tutorial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    files = run_as(how, tmp_path / how, EVENTS_YAML, events_script, monkeypatch)
    assert sorted(files) == ["big.csv", "small.csv"]
    rng = random.Random(SEED)
    xs = [rng.uniform(0, 10) for _ in range(24)]
    for name, keep in (("big.csv", lambda x: x >= 7), ("small.csv", lambda x: x <= 3)):
        rows = _column(files[name])
        assert files[name].splitlines()[0] == "value"
        seen = [float(v) for v in rows if v]
        # every value written is an event's value, in the order drawn, and the last one is written
        wanted = [x for x in xs if keep(x)]
        assert seen and set(seen) <= set(wanted), name
        assert [v for i, v in enumerate(seen) if i == 0 or v != seen[i - 1]] == wanted, name


@pytest.mark.slow
def test_events_same_files_on_every_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = {how: run_as(how, tmp_path / how, EVENTS_YAML, events_script, monkeypatch)
            for how in ("script", "local", "direct")}
    assert runs["direct"] == runs["local"] == runs["script"]
