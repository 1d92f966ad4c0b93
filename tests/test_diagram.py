"""``plugboard_beam.diagram``: plugboard 0.9.0's ``MermaidDiagram`` / ``markdown_diagram`` text,
line for line, its Mermaid Live link, and the CLI's ``process diagram --url``."""

from __future__ import annotations

import base64
import json
from pathlib import Path
import subprocess
import typing as _t
from urllib.parse import quote_plus
import zlib

from conftest import cli_command
from plugboard_beam.component import Component
from plugboard_beam.component import IOController as IO
from plugboard_beam.connector import AsyncioConnector
from plugboard_beam.diagram import Diagram, MermaidDiagram, markdown_diagram
from plugboard_beam.events import Event, StopEvent
from plugboard_beam.process import LocalProcess
from plugboard_beam.schemas import ConnectorSpec


class Alarm(Event):
    type: _t.ClassVar[str] = "alarm"


class Reset(Event):
    type: _t.ClassVar[str] = "reset"


class Source(Component):
    io = IO(outputs=["x", "y"], output_events=[Alarm, StopEvent])

    async def step(self) -> None:
        pass


class Mixer(Component):
    io = IO(inputs=["x", "y"], outputs=["z"], input_events=[Alarm, Reset])

    async def step(self) -> None:
        pass


class Sink(Component):
    io = IO(inputs=["z"])

    async def step(self) -> None:
        pass


#: what plugboard 0.9.0 prints for the same process (system events such as StopEvent left out)
PLUGBOARD_TEXT = """flowchart LR
  src@{ shape: rounded, label: Source<br>**src** } --> mix@{ shape: rounded, label: Mixer<br>**mix** }
  src@{ shape: rounded, label: Source<br>**src** } --> mix@{ shape: rounded, label: Mixer<br>**mix** }
  mix@{ shape: rounded, label: Mixer<br>**mix** } --> out@{ shape: rounded, label: Sink<br>**out** }
  alarm@{ shape: hex, label: Alarm } -.-> mix@{ shape: rounded, label: Mixer<br>**mix** }
  reset@{ shape: hex, label: Reset } -.-> mix@{ shape: rounded, label: Mixer<br>**mix** }
  src@{ shape: rounded, label: Source<br>**src** } -.-> alarm@{ shape: hex, label: Alarm }"""


def _process() -> LocalProcess:
    comps = [Source(name="src"), Mixer(name="mix"), Sink(name="out")]
    conns = [AsyncioConnector(spec=ConnectorSpec(source=s, target=t))
             for s, t in (("src.x", "mix.x"), ("src.y", "mix.y"), ("mix.z", "out.z"))]
    return LocalProcess(components=comps, connectors=conns)


def test_mermaid_text_is_plugboards() -> None:
    diagram = MermaidDiagram.from_process(_process())
    assert isinstance(diagram, Diagram)
    assert diagram.diagram == PLUGBOARD_TEXT
    assert str(diagram) == PLUGBOARD_TEXT
    assert markdown_diagram(_process()) == f"```mermaid\n{PLUGBOARD_TEXT}\n```"


def test_mermaid_live_link_decodes_to_the_diagram() -> None:
    url = MermaidDiagram.from_process(_process()).url
    assert url.startswith("https://mermaid.live/edit#pako:")
    pako = url.split("pako:", 1)[1]
    assert quote_plus(pako) == pako  # nothing to escape (no '=' padding)
    state = json.loads(zlib.decompress(base64.urlsafe_b64decode(pako + "=" * (-len(pako) % 4))))
    assert state == {"code": PLUGBOARD_TEXT, "mermaid": {"theme": "default"}}


def test_cli_diagram_url(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text("""
plugboard:
  process:
    args:
      components:
      - {type: plugboard_beam.library.file_io.FileReader, args: {name: r, path: in.csv, field_names: [a]}}
      - {type: plugboard_beam.library.file_io.FileWriter, args: {name: w, path: out.csv, field_names: [a]}}
      connectors:
      - {source: r.a, target: w.a}
""")
    proc = subprocess.run([*cli_command(), "process", "diagram", "m.yaml", "--url"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    text, _, link = proc.stdout.rstrip("\n").rpartition("\n")
    assert text.startswith("flowchart LR") and 'r -- "a" --> w' in text
    pako = link.split("pako:", 1)[1]
    state = json.loads(zlib.decompress(base64.urlsafe_b64decode(pako + "=" * (-len(pako) % 4))))
    assert state["code"] == text + "\n"
