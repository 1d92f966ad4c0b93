"""Bounded waits: a component's step time limit (``step_timeout`` in YAML, ``--step-timeout`` on
the command line). A step that blocks (``time.sleep``, ``await asyncio.sleep``, a busy loop)
fails its key after the limit, naming component, key and step, through the one failure
protocol (drain, then destroy); other keys go on."""

from __future__ import annotations

from pathlib import Path
import subprocess
import threading
import time
import typing as _t

import pytest

from conftest import cli_command
from plugboard_beam.exceptions import StepError
from plugboard_beam.runtime.driver import Driver
from plugboard_beam.runtime.engine import Engine
from plugboard_beam.runtime.session import run_to_end
from plugboard_beam.runtime.timelimit import StepTimeout
from plugboard_beam.spec import load_model
from plugboard_beam.spec.errors import ModelError
from stuck_parts import SOURCE, model


def write_model(root: Path, **kw: _t.Any) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "stuck_parts_mod.py").write_text(SOURCE)
    path = root / "model.yaml"
    path.write_text(model(str(root), **kw))
    return path


def run_key(path: Path, key: str, overrides: dict[str, _t.Any] | None = None) -> _t.Optional[StepError]:
    loaded = load_model(path, overrides or {})
    engine = Engine(loaded.graph, loaded.build_components(key), key=key)
    try:
        run_to_end(engine)
    except StepError as err:
        return err
    return None


def timed_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "plugboard-beam-timed-step" and t.is_alive()]


@pytest.mark.parametrize("how", ["sleep", "async", "busy"])
def test_a_stuck_step_fails_its_key_after_the_limit(tmp_path: Path, how: str) -> None:
    path = write_model(tmp_path, how=how, timeout="0.5")
    t0 = time.monotonic()
    err = run_key(path, "bad")
    took = time.monotonic() - t0
    assert err is not None and took < 20, took
    assert (err.component, err.key, err.step, err.phase) == ("stuck", "bad", 2, "step")
    assert "step took longer than 0.5 s" in str(err) and "'stuck'" in str(err) and "'bad'" in str(err)
    assert isinstance(err.__cause__, StepTimeout)
    # drain then destroy: what 'stuck' sent before it hung reached 'keep', which was destroyed
    assert (tmp_path / "out-bad.txt").read_text().split() == ["1", "2", "destroyed"]
    # another key of the same model goes on and ends normally
    assert run_key(path, "good", {"stuck.stuck_at": -1}) is None
    assert (tmp_path / "out-good.txt").read_text().split() == ["1", "2", "3", "4", "5", "destroyed"]


def test_a_busy_abandoned_step_is_stopped(tmp_path: Path) -> None:
    driver = Driver()
    spins = [0]

    def spin() -> None:
        while True:
            spins[0] += 1

    with pytest.raises(StepTimeout, match=r"took longer than 0\.2 s"):
        driver.call_limited(spin, 0.2)
    time.sleep(0.5)
    seen = spins[0]
    time.sleep(0.5)
    assert spins[0] == seen  # the abandoned busy loop was ended, not left spinning
    assert driver.call_limited(lambda: 42, 5) == 42  # a fresh worker serves later calls
    driver.close()


def test_limited_calls_keep_results_errors_and_one_event_loop() -> None:
    import asyncio

    driver = Driver()
    loops = []

    async def coro() -> int:
        loops.append(asyncio.get_running_loop())
        await asyncio.sleep(0.01)  # really suspends: runs on the worker's loop
        return 7

    assert driver.call_limited(coro, 5) == 7
    assert driver.call_limited(coro, 5) == 7
    assert loops[0] is loops[1]
    with pytest.raises(ZeroDivisionError):
        driver.call_limited(lambda: 1 / 0, 5)
    worker = driver._timed._worker  # type: ignore[union-attr]
    assert worker is not None and worker.thread.is_alive()
    driver.close()  # ends the worker thread
    assert not worker.thread.is_alive()


def test_no_limit_runs_on_the_engines_thread(tmp_path: Path) -> None:
    path = write_model(tmp_path, stuck_at=-1)
    seen: set[str] = set()
    loaded = load_model(path)
    comps = loaded.build_components("k")
    step = comps["stuck"].step

    async def watched() -> None:
        seen.add(threading.current_thread().name)
        await step()

    comps["stuck"].step = watched  # type: ignore[method-assign]
    run_to_end(Engine(loaded.graph, comps, key="k"))
    assert seen == {threading.current_thread().name}
    limited = load_model(path, {"stuck.step_timeout": 5})
    comps = limited.build_components("k")
    step = comps["stuck"].step
    seen.clear()
    comps["stuck"].step = watched  # type: ignore[method-assign]
    run_to_end(Engine(limited.graph, comps, key="k"))
    assert seen == {"plugboard-beam-timed-step"}


@pytest.mark.parametrize("value", ["-1", "0", "abc", ".nan", "1e9"])
def test_a_bad_step_timeout_is_a_model_error(tmp_path: Path, value: str) -> None:
    path = write_model(tmp_path, timeout=value)
    with pytest.raises(ModelError, match="step_timeout"):
        load_model(path)


def test_step_timeout_is_not_a_constructor_argument(tmp_path: Path) -> None:
    # Stuck's constructor takes **kw and passes them to Component, which would refuse it
    path = write_model(tmp_path, stuck_at=-1, timeout="2.5")
    loaded = load_model(path)
    assert loaded.graph.node("stuck").step_timeout == 2.5
    assert loaded.graph.node("count").step_timeout is None
    assert run_key(path, "k") is None


def cli(tmp_path: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cli_command(), "process", "run", *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=timeout)


def scenarios(tmp_path: Path) -> Path:
    path = tmp_path / "keys.yaml"
    path.write_text("- key: a\n  stuck.stuck_at: -1\n- key: bad\n- key: c\n  stuck.stuck_at: -1\n")
    return path


@pytest.mark.parametrize("flag", ["1", "stuck=1"])
def test_cli_step_timeout_fails_the_stuck_key_and_others_finish(tmp_path: Path, flag: str) -> None:
    path = write_model(tmp_path, how="sleep")
    t0 = time.monotonic()
    res = cli(tmp_path, str(path), "--runner", "local", "--scenarios", str(scenarios(tmp_path)),
              "--step-timeout", flag)
    took = time.monotonic() - t0
    assert res.returncode == 1, res.stderr
    assert took < 60, took
    assert "component 'stuck' (key 'bad') failed in step 2" in res.stderr
    assert "step took longer than 1 s" in res.stderr
    assert "Traceback" not in res.stderr
    for key in ("a", "c"):
        assert (tmp_path / f"out-{key}.txt").read_text().split() == ["1", "2", "3", "4", "5", "destroyed"]
    assert (tmp_path / "out-bad.txt").read_text().split() == ["1", "2", "destroyed"]


@pytest.mark.parametrize("flag, says", [("nope=3", "no component 'nope'"), ("stuk=3", "did you mean 'stuck'"),
                                        ("-2", "0 < SECONDS"), ("soon", "expected SECONDS")])
def test_cli_bad_step_timeout_is_one_clear_message(tmp_path: Path, flag: str, says: str) -> None:
    path = write_model(tmp_path, stuck_at=-1)
    res = cli(tmp_path, str(path), "--runner", "local", "--step-timeout", flag)
    assert res.returncode == 2, res.stderr
    assert says in res.stderr and "Traceback" not in res.stderr


def test_yaml_step_timeout_wins_over_the_cli_default(tmp_path: Path) -> None:
    path = write_model(tmp_path, how="sleep", timeout="1")
    t0 = time.monotonic()
    res = cli(tmp_path, str(path), "--runner", "local", "--step-timeout", "600")
    assert res.returncode == 1 and time.monotonic() - t0 < 60, res.stderr
    assert "step took longer than 1 s" in res.stderr


@pytest.mark.slow
def test_beam_batch_step_timeout_fails_only_the_stuck_key(tmp_path: Path) -> None:
    path = write_model(tmp_path, how="busy")
    res = cli(tmp_path, str(path), "--runner", "direct", "--scenarios", str(scenarios(tmp_path)),
              "--step-timeout", "stuck=2", timeout=300)
    assert res.returncode == 1, res.stderr
    assert "component 'stuck' (key 'bad') failed in step 2" in res.stderr
    assert "step took longer than 2 s" in res.stderr and "Traceback" not in res.stderr
    for key in ("a", "c"):
        assert (tmp_path / f"out-{key}.txt").read_text().split() == ["1", "2", "3", "4", "5", "destroyed"]
    assert (tmp_path / "out-bad.txt").read_text().split() == ["1", "2", "destroyed"]


@pytest.mark.slow
def test_streaming_step_timeout_fails_only_the_stuck_key(tmp_path: Path) -> None:
    from plugboard_beam.testing.emulator import Emulator
    from test_streaming import PROJECT, env_for

    path = write_model(tmp_path, how="sleep")
    with Emulator(project=PROJECT) as emu:
        t0 = time.monotonic()
        res = subprocess.run([*cli_command(), "process", "run", str(path), "--streaming", "--scenarios",
                              str(scenarios(tmp_path)), "--step-timeout", "stuck=3"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env_for(emu))
        took = time.monotonic() - t0
    assert res.returncode == 1, res.stderr
    assert "component 'stuck' (key 'bad') failed in step 2" in res.stderr
    assert "step took longer than 3 s" in res.stderr and "Traceback" not in res.stderr
    for key in ("a", "c"):
        assert (tmp_path / f"out-{key}.txt").read_text().split() == ["1", "2", "3", "4", "5", "destroyed"]
    assert (tmp_path / "out-bad.txt").read_text().split() == ["1", "2", "destroyed"]
    assert took < 240, took


def test_closing_a_driver_whose_loop_is_stuck_on_another_thread_does_not_raise() -> None:
    """Ctrl-C while an ``await asyncio.sleep(3600)`` step runs: the interrupted run destroys its
    components and closes the drivers; the loop still runs on the stuck thread (it used to raise
    'Cannot close a running event loop', an internal error)."""
    import asyncio

    driver = Driver()
    started = threading.Event()

    async def stuck() -> None:
        started.set()
        await asyncio.sleep(3600)

    def engine_thread() -> None:
        with driver:
            driver.call(stuck)

    threading.Thread(target=engine_thread, daemon=True).start()
    assert started.wait(10)
    deadline = time.monotonic() + 10
    while not driver.loop.is_running() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert driver.loop.is_running()
    driver.close()  # does not raise
