"""Events on every engine: the vendored public event cases through the CLI per engine, many
keys from scenarios, --record rows, the Dataflow dry run, and validate/diagram/compile."""

from __future__ import annotations

import json
import os
from pathlib import Path
import shlex
import shutil
import subprocess
import sys
import textwrap

import pyarrow.parquet as pq
import pytest

from conftest import checker, cli_command

HERE = Path(__file__).resolve().parent
CASES = HERE / "conformance" / "events"



ENGINES = {
    "local": "--runner local",
    "direct": "",
    "direct-unfused": "--stages component",
    "direct-multiprocess": "--stages component --direct_num_workers 2 --direct_running_mode multi_processing",
}


def cli(cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(cwd))
    return subprocess.run([*cli_command(), "process", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def case(tmp_path: Path, name: str) -> Path:
    dst = tmp_path / name
    shutil.copytree(CASES / name, dst)
    return dst


@pytest.mark.slow
@pytest.mark.parametrize("engine", list(ENGINES))
def test_public_event_cases(engine: str) -> None:
    cmd = [sys.executable, str(checker()), "--cli", shlex.join(cli_command()), "--cases", str(CASES),
           "--no-invalid", f"--run-args={ENGINES[engine]}", "--timeout", "240"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 passed, 0 failed" in proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["--runner local", "--stages component"])
def test_many_keys_from_scenarios_each_like_its_own_run(tmp_path: Path, engine: str) -> None:
    work = case(tmp_path, "ev_mixed")
    keys = {f"k{i:02d}": 10 + i for i in range(12)}
    (work / "scen.csv").write_text("key,clock.n,mixed.path\n"
                                   + "".join(f"{k},{n},./mixed_{k}.txt\n" for k, n in keys.items()))
    rec = tmp_path / "rec"
    args = ["run", "model.yaml", "--scenarios", "scen.csv", *engine.split()]
    if "local" not in engine:
        args += ["--record", str(rec)]
    proc = cli(work, *args)
    assert proc.returncode == 0, proc.stderr
    for k, n in keys.items():
        one = case(tmp_path / k, "ev_mixed")
        proc = cli(one, "run", "model.yaml", "--runner", "local", "-p", f"clock.n={n}")
        assert proc.returncode == 0, proc.stderr
        assert (work / f"mixed_{k}.txt").read_text() == (one / "mixed.txt").read_text()
    if "local" not in engine:
        rows = pq.read_table(rec).to_pylist()
        events = [r for r in rows if r["kind"] == "event" and r["key"] == "k00"]
        # clock n=10: marks at t=1, 6; alarms at t=2, 6
        assert sorted((r["source"], r["target"], r["event_type"], r["step"], json.loads(r["value"])["step"])
                      for r in events) == [
            ("clock", "mixed", "mark", 1, 1), ("clock", "mixed", "mark", 6, 6),
            ("detector", "mixed", "alarm", 2, 2), ("detector", "mixed", "alarm", 6, 6)]
        assert {r["kind"] for r in rows} == {"field", "event"}


@pytest.mark.slow
def test_dataflow_dry_run_builds_an_event_model(tmp_path: Path) -> None:
    work = case(tmp_path, "ev_stop")
    proc = cli(work, "run", "model.yaml", "--runner", "dataflow", "--dry-run", "--job-dir", "job",
               "--project", "my-project", "--region", "europe-west1", "--temp_location", "gs://my-bucket/tmp",
               "--stages", "component")
    assert proc.returncode == 0, proc.stderr
    summary = (work / "job" / "summary.txt").read_text()
    assert "S0[counter]" in summary and "S1[listener]" in summary


def test_validate_diagram_compile_show_event_edges(tmp_path: Path) -> None:
    work = case(tmp_path, "ev_mixed")
    proc = cli(work, "validate", "model.yaml")
    assert proc.returncode == 0 and "2 connectors, 2 event edges" in proc.stdout, proc.stderr
    proc = cli(work, "diagram", "model.yaml")
    assert 'clock -. "event: mark" .-> mixed' in proc.stdout
    assert 'detector -. "event: alarm" .-> mixed' in proc.stdout
    proc = cli(work, "compile", "--stages", "component", "model.yaml")
    assert ("clock =mark=> mixed: same tick (upstream through fields); crosses stages S0[clock] -> S2[mixed]"
            in proc.stdout)
    assert "detector =alarm=> mixed: one step later; crosses stages S1[detector] -> S2[mixed]" in proc.stdout


def test_validate_reports_event_problems_with_yaml_lines(tmp_path: Path) -> None:
    (tmp_path / "bad_ev.py").write_text(textwrap.dedent('''
        import typing as _t
        from plugboard_beam.component import Component, IOController as IO
        from plugboard_beam.events import Event

        class Ping(Event):
            type: _t.ClassVar[str] = "ping"
            data: dict

        class Pong(Event):
            type: _t.ClassVar[str] = "pong"
            data: dict

        class Src(Component):
            io = IO(outputs=["t"])

        class Lonely(Component):
            io = IO(inputs=["t"], input_events=[Ping])

            @Pong.handler
            def on_pong(self, event: Pong) -> None:
                pass
        '''))
    (tmp_path / "model.yaml").write_text(textwrap.dedent('''\
        plugboard:
          process:
            args:
              components:
              - {type: bad_ev.Src, args: {name: src}}
              - {type: bad_ev.Lonely, args: {name: lonely}}
              connectors:
              - {source: src.t, target: lonely.t}
        '''))
    proc = cli(tmp_path, "validate", "model.yaml")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = proc.stderr
    assert "model.yaml:6: component 'lonely' (Lonely): input event 'ping' is not emitted by any component" in err
    assert "model.yaml:6: component 'lonely' (Lonely): handler on_pong() is for event type 'pong'" in err
    assert "Traceback" not in err


def test_failing_handler_fails_one_key_only(tmp_path: Path) -> None:
    work = case(tmp_path, "ev_mixed")
    (work / "boom.py").write_text(textwrap.dedent('''
        from ev_mixed import Mixed, Alarm

        class Boom(Mixed):
            def __init__(self, bad: bool = False, **kw):
                super().__init__(**kw)
                self._bad = bad

            @Alarm.handler
            async def on_alarm(self, event):
                if self._bad and event.data.step == 6:
                    raise ValueError("alarm 6")
                await super().on_alarm(event)
        '''))
    text = (work / "model.yaml").read_text().replace("ev_mixed.Mixed", "boom.Boom")
    (work / "model.yaml").write_text(text)
    (work / "scen.csv").write_text("key,mixed.bad,mixed.path\ngood,false,./good.txt\nbad,true,./bad.txt\n")
    proc = cli(work, "run", "model.yaml", "--runner", "local", "--scenarios", "scen.csv")
    assert proc.returncode == 1
    assert "component 'mixed' (key 'bad') failed in handler on_alarm() of event 'alarm'" in proc.stderr
    assert "before step 7" in proc.stderr and "alarm 6" in proc.stderr
    assert (work / "good.txt").read_text() == (CASES / "ev_mixed" / "expected" / "mixed.txt").read_text()
    assert "status=failed" in (work / "bad.txt").read_text()
