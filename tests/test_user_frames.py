"""A failure names the user's own file, line and code on every engine (the frame is captured
where the exception happens: a Beam worker, a streaming stage), and ``--debug`` anywhere on the
command line shows the traceback captured there."""

from __future__ import annotations

import asyncio
import importlib.util
import os
from pathlib import Path
import pickle
import subprocess
import typing as _t

import pytest

from conftest import cli_command
from failing_parts import SOURCE
from plugboard_beam.exceptions import StepError, UserFrame, user_frame
from plugboard_beam.runtime.failure import Failure
from test_failures import model_dir

RAISE = 'raise RuntimeError(f"broke at {self.x}")'
#: the line of fparts.py (written from SOURCE) that raises in Fragile.step
RAISE_LINE = SOURCE.splitlines().index(f"            {RAISE}") + 1
AT = f"at fparts.py:{RAISE_LINE} in step: {RAISE}"

HELPERS = '''
import json


def check(value):
    if value > 2:
        json.loads("{not json")  # the standard library raises: the frame shown is this line
    return value


class Thing:
    def step(self):
        return check(self.value)

    def __init__(self, value):
        self.value = value
'''


def load(path: Path, name: str) -> _t.Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def raised(fn: _t.Callable[[], object]) -> BaseException:
    try:
        fn()
    except Exception as exc:
        return exc
    raise AssertionError("did not raise")


def test_the_frame_is_the_users_innermost_line_not_the_standard_library(tmp_path: Path) -> None:
    (tmp_path / "helpers.py").write_text(HELPERS)
    mod = load(tmp_path / "helpers.py", "helpers_frames")
    exc = raised(lambda: mod.Thing(3).step())
    frame = user_frame(exc)
    assert frame == UserFrame(str(tmp_path / "helpers.py"), 7, "check",
                              'json.loads("{not json")  # the standard library raises: the frame shown is this line')
    err = StepError("thing", "k", 4, "step", exc)
    assert err.frame == frame and "helpers.py\", line 7, in check" in err.traceback
    assert str(err).splitlines()[1].strip() == f"at {tmp_path / 'helpers.py'}:7 in check: {frame.code}"
    # Through pickling (Beam workers) and the JSON failure row (errors output, control topic).
    again = pickle.loads(pickle.dumps(err))
    assert (again.frame, again.traceback, str(again)) == (err.frame, err.traceback, str(err))
    failure = Failure.of(again)
    assert Failure.from_json(failure.to_json()) == failure
    assert failure.describe() == str(err) and failure.tracebacks().endswith("JSONDecodeError: Expecting property "
                                                                           "name enclosed in double quotes: line 1 "
                                                                           "column 2 (char 1)")


def test_no_frame_when_the_failure_has_no_user_code() -> None:
    assert user_frame(ValueError("never raised")) is None
    exc = raised(lambda: pickle.dumps(lambda: 0))  # raised inside the standard library only
    assert user_frame(exc) is not None  # ... called from this test file, which is user code
    err = StepError("c", "k", 0, "emit", TypeError("made, not raised"))
    assert err.frame is None and err.traceback == "" and "\n" not in str(err)
    assert Failure.of(err).describe() == err.message


def test_an_installed_components_method_counts_as_user_code(tmp_path: Path) -> None:
    """On Dataflow the user's modules are installed as a wheel (site-packages): a component's
    method there is still the user's code; a plain function there is a library's."""
    folder = tmp_path / "site-packages"
    folder.mkdir()
    (folder / "wheel_parts.py").write_text('''
from plugboard_beam.component import Component, IOController as IO


def library_check(x):
    raise ValueError(f"bad {x}")


class Heater(Component):
    io = IO(inputs=["x"])

    def step(self):
        library_check(self.x)
''')
    mod = load(folder / "wheel_parts.py", "wheel_parts")
    heater = mod.Heater(name="heater")
    heater.x = 1
    frame = user_frame(raised(heater.step))
    assert frame is not None and (frame.function, frame.line, frame.code) == ("step", 13, "library_check(self.x)")


@pytest.mark.parametrize("frame", [[], {"file": 3, "line": 1, "function": "f"}, {"file": "f", "line": "1"},
                                   {"file": "f", "line": -1}, {"file": "f", "line": 1, "code": "x" * 301}])
def test_malformed_frames_in_a_failure_row_are_refused(frame: object) -> None:
    row = {"key": "k", "component": "c", "step": 0, "phase": "step", "error_type": "E", "reason": "r",
           "frame": frame}
    with pytest.raises(ValueError, match="frame"):
        Failure.from_dict(row)


def test_local_process_names_the_line(tmp_path: Path) -> None:
    root = model_dir(tmp_path / "m", fail_at=3)
    mod = load(root / "fparts.py", "fparts_local_process")
    comps = [mod.Emit(name="e", n=5), mod.Fragile(name="frag", fail_at=3)]
    from plugboard_beam.connector import AsyncioConnector
    from plugboard_beam.process import LocalProcess
    from plugboard_beam.schemas import ConnectorSpec

    process = LocalProcess(components=comps, connectors=[
        AsyncioConnector(spec=ConnectorSpec(source="e.x", target="frag.x"))])

    async def main() -> None:
        async with process:
            await process.run()

    with pytest.raises(StepError) as info:
        asyncio.run(main())
    assert info.value.frame is not None and info.value.frame.file == str(root / "fparts.py")
    assert str(info.value).splitlines()[1].strip().endswith(f"fparts.py:{RAISE_LINE} in step: {RAISE}")


def run_cli(root: Path, *args: str, env: _t.Optional[dict[str, str]] = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cli_command(), *args], cwd=root, capture_output=True, text=True, timeout=600, env=env)


def check_message(proc: subprocess.CompletedProcess[str], debug: bool) -> None:
    assert proc.returncode == 1, proc.stderr
    lines = [ln.strip() for ln in proc.stderr.splitlines()]
    failed = lines.index("component 'frag' failed in step 2 (counting from 0): RuntimeError: broke at 3")
    assert lines[failed + 1] == AT, proc.stderr
    if debug:  # the traceback captured where it happened, through the user's line
        assert f'fparts.py", line {RAISE_LINE}, in step' in proc.stderr and "RuntimeError: broke at 3" in proc.stderr
    else:
        assert "Traceback" not in proc.stderr and "use --debug for the traceback" in proc.stderr


def test_local_runner_names_the_line_and_debug_after_the_subcommand_shows_the_traceback(tmp_path: Path) -> None:
    root = model_dir(tmp_path / "m", fail_at=3)
    check_message(run_cli(root, "process", "run", "m.yaml", "--runner", "local"), debug=False)
    check_message(run_cli(root, "process", "run", "m.yaml", "--runner", "local", "--debug"), debug=True)
    check_message(run_cli(root, "process", "--debug", "run", "--runner", "local", "m.yaml"), debug=True)


def test_debug_after_double_dash_is_not_ours(tmp_path: Path) -> None:
    proc = run_cli(tmp_path, "process", "validate", "--", "--debug")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("stages", ["fused", "component"])
def test_beam_workers_carry_the_line(tmp_path: Path, stages: str) -> None:
    root = model_dir(tmp_path / "m", fail_at=3)
    check_message(run_cli(root, "process", "run", "m.yaml", "--stages", stages), debug=False)
    check_message(run_cli(root, "process", "run", "m.yaml", "--stages", stages, "--debug",
                          "--direct_num_workers", "2", "--direct_running_mode", "multi_processing"), debug=True)


@pytest.mark.slow
def test_streaming_carries_the_line_through_the_control_topic(tmp_path: Path) -> None:
    from plugboard_beam.testing.emulator import Emulator

    root = model_dir(tmp_path / "m", fail_at=3)
    with Emulator(project="frames-test") as emu:
        env = {**os.environ, "PUBSUB_EMULATOR_HOST": emu.host, "PUBSUB_PROJECT_ID": "frames-test"}
        check_message(run_cli(root, "--debug", "process", "run", "m.yaml", "--streaming", env=env), debug=True)
