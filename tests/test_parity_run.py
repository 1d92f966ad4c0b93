"""plugboard 0.9.0 parity: a component's own ``run()`` (issue 16).

plugboard's process calls each component's ``run()``; a user may override it (count steps, stop
early, set flags in ``finally``). ``LocalProcess`` and ``--runner local`` drive such a ``run()``
(``runtime/user_run.py``); the Beam runners refuse it, naming the component."""

from __future__ import annotations

import textwrap
import typing as _t

from click.testing import CliRunner
import pytest

from plugboard_beam.cli.main import main
from plugboard_beam.component import Component, Status
from plugboard_beam.component import IOController as IO
from plugboard_beam.connector import AsyncioConnector
from plugboard_beam.exceptions import IOStreamClosedError, StepError
from plugboard_beam.library.data import DataWriter
from plugboard_beam.process import LocalProcess
from plugboard_beam.schemas import ConnectorSpec


def wired(components: list[Component], wires: list[tuple[str, str]]) -> LocalProcess:
    conns = [AsyncioConnector(spec=ConnectorSpec(source=s, target=t)) for s, t in wires]
    return LocalProcess(components=components, connectors=conns)


class Looping(Component):
    """A run() of its own: counts its steps, stops after ``max_steps`` (0: until the IO closes)
    and records how it ended."""

    io = IO(inputs=[], outputs=[])

    def __init__(self, *, max_steps: int = 0, **kw: _t.Any) -> None:
        super().__init__(**kw)
        self.max_steps = max_steps
        self.counted = 0
        self.finished = False
        self.how = ""

    async def step(self) -> None:
        self.counted += 1

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self.step()
                except IOStreamClosedError:
                    self.how = "closed"
                    break
                if self.max_steps and self.counted >= self.max_steps:
                    self.how = "max_steps"
                    break
        finally:
            self.finished = True


class Source(Looping):
    io = IO(outputs=["x"])

    def __init__(self, *, n: int, **kw: _t.Any) -> None:
        super().__init__(**kw)
        self.n = n

    async def step(self) -> None:
        if self.counted == self.n:
            await self.io.close()
            return
        await super().step()
        self.x = self.counted


class Double(Looping):
    io = IO(inputs=["a"], outputs=["y"])

    async def step(self) -> None:
        await super().step()
        self.y = 2 * self.a


class Collect(Component):
    io = IO(inputs=["v"])

    def __init__(self, **kw: _t.Any) -> None:
        super().__init__(**kw)
        self.got: list[_t.Any] = []

    async def step(self) -> None:
        self.got.append(self.v)


@pytest.mark.asyncio
async def test_overridden_run_is_driven_to_its_end() -> None:
    src, dbl, out = Source(name="src", n=4), Double(name="dbl"), Collect(name="out")
    process = wired([src, dbl, out], [("src.x", "dbl.a"), ("dbl.y", "out.v")])
    async with process:
        await process.run()
    assert out.got == [2, 4, 6, 8]
    # each run() went on until its step() raised IOStreamClosedError, and its finally ran
    assert (src.counted, src.how, src.finished) == (4, "closed", True)
    assert (dbl.counted, dbl.how, dbl.finished) == (4, "closed", True)
    assert src.status is Status.COMPLETED and dbl.status is Status.COMPLETED
    assert process.status is Status.COMPLETED


@pytest.mark.asyncio
async def test_run_that_returns_early_ends_the_component() -> None:
    src, dbl, out = Source(name="src", n=10), Double(name="dbl", max_steps=3), Collect(name="out")
    process = wired([src, dbl, out], [("src.x", "dbl.a"), ("dbl.y", "out.v")])
    async with process:
        await process.run()
    # the third step's outputs are sent, then the component ends (and so do its targets)
    assert out.got == [2, 4, 6]
    assert (dbl.counted, dbl.how, dbl.finished) == (3, "max_steps", True)
    assert dbl.status is Status.COMPLETED


class Sleepy(Looping):
    """A run() and a step that really wait on the event loop."""

    io = IO(outputs=["x"])

    async def step(self) -> None:
        import asyncio

        await asyncio.sleep(0.001)
        if self.counted == 3:
            await self.io.close()
            return
        await super().step()
        self.x = self.counted

    async def run(self) -> None:
        import asyncio

        await asyncio.sleep(0.001)
        await super().run()


@pytest.mark.asyncio
async def test_run_and_step_that_await_the_loop() -> None:
    src, out = Sleepy(name="src"), Collect(name="out")
    process = wired([src, out], [("src.x", "out.v")])
    async with process:
        await process.run()
    assert out.got == [1, 2, 3]
    assert src.finished and src.how == "closed"


class Failing(Looping):
    io = IO(inputs=["a"])

    async def step(self) -> None:
        await super().step()
        if self.a == 2:
            raise ValueError("bad value 2")


@pytest.mark.asyncio
async def test_step_failure_inside_own_run_is_a_step_error() -> None:
    src, bad = Source(name="src", n=5), Failing(name="bad")
    process = wired([src, bad], [("src.x", "bad.a")])
    await process.init()
    with pytest.raises(StepError) as info:
        await process.run()
    await process.destroy()
    assert info.value.component == "bad" and "bad value 2" in str(info.value)
    assert bad.status is Status.FAILED
    assert bad.finished  # its finally ran


def test_library_writer_run_is_not_a_user_run() -> None:
    from plugboard_beam.component.component import overrides_run

    assert overrides_run(DataWriter) is None
    assert overrides_run(Looping) == "Looping"
    assert overrides_run(Double) == "Looping"


def _model(tmp_path: _t.Any) -> None:
    (tmp_path / "own_run_parts.py").write_text(textwrap.dedent('''
        from plugboard_beam.component import Component, IOController as IO

        class Src(Component):
            io = IO(outputs=["x"])
            async def step(self):
                if getattr(self, "_sent", False):
                    await self.io.close()
                    return
                self.x, self._sent = 1, True

        class Mine(Component):
            io = IO(inputs=["a"])
            async def step(self):
                pass
            async def run(self):
                try:
                    while True:
                        await self.step()
                finally:
                    with open("ran.txt", "w") as f:
                        f.write(f"run ended, a={self.a}")
    '''))
    (tmp_path / "model.yaml").write_text(textwrap.dedent('''
        plugboard:
          process:
            args:
              components:
                - type: own_run_parts.Src
                  args: {name: src}
                - type: own_run_parts.Mine
                  args: {name: mine}
              connectors:
                - {source: src.x, target: mine.a}
    '''))


def test_beam_runner_refuses_own_run_naming_the_component(tmp_path: _t.Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _model(tmp_path)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["process", "run", "model.yaml", "--runner", "direct"])
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert "component 'mine' (Mine: run() defined by Mine)" in result.output
    assert "model.yaml:8: component 'mine'" in result.output  # the line of its "- type:"
    assert "component 'src'" not in result.output


def test_local_runner_runs_own_run(tmp_path: _t.Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _model(tmp_path)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["process", "run", "model.yaml", "--runner", "local"])
    assert result.exit_code == 0, result.output
    # its run() stepped once on a=1, then ended on IOStreamClosedError (uncaught: the run ends there)
    assert (tmp_path / "ran.txt").read_text() == "run ended, a=1"


# ------------------------------------------------------------ errors as plugboard's process raises them
class Refuses(Component):
    io = IO(outputs=["x"])

    async def step(self) -> None:
        from plugboard_beam.exceptions import ConstraintError

        raise ConstraintError("over the limit")


@pytest.mark.asyncio
async def test_run_failure_is_an_exception_group_of_the_components_errors_and_a_step_error() -> None:
    from plugboard_beam.exceptions import ConstraintError

    process = wired([Refuses(name="r"), Collect(name="out")], [("r.x", "out.v")])
    await process.init()
    with pytest.raises(ExceptionGroup) as info:
        await process.run()
    await process.destroy()
    group = info.value
    assert [type(e) for e in group.exceptions] == [ConstraintError]
    assert isinstance(group, StepError) and group.component == "r" and group.step == 0
    assert str(group).startswith("component 'r' failed in step 0")
    caught = []
    try:
        raise group
    except* ConstraintError as eg:
        caught = list(eg.exceptions)
    assert [str(e) for e in caught] == ["over the limit"]
    assert process.status is Status.FAILED


@pytest.mark.asyncio
async def test_component_without_super_init_is_a_validation_error_in_a_group() -> None:
    from plugboard_beam.exceptions import ValidationError

    class NoSuper(Component):
        io = IO(inputs=["a"])

        def __init__(self, **kw: _t.Any) -> None:
            pass

    process = wired([Source(name="src", n=1), NoSuper(name="ns")], [("src.x", "ns.a")])
    with pytest.raises(ExceptionGroup) as info:
        await process.init()
    assert [type(e) for e in info.value.exceptions] == [ValidationError]
    assert "NoSuper invalid: did you forget to call super().__init__" in str(info.value)


@pytest.mark.asyncio
async def test_unconnected_input_as_plugboard_words_it() -> None:
    from plugboard_beam.exceptions import ValidationError

    with pytest.raises(ValidationError, match=r"c\.a is not connected \(component 'c' has unconnected inputs"):
        await wired([Source(name="s", n=1), Double(name="c")], []).init()


# ------------------------------------------------------------ validation and job id as plugboard's process
@pytest.mark.asyncio
async def test_unconnected_inputs_are_reported_through_plugboards_validate_process() -> None:
    from unittest.mock import patch

    from plugboard_beam.exceptions import ValidationError

    lonely = Double(name="lonely")
    with pytest.raises(ValidationError, match="lonely.a is not connected"):
        await wired([lonely], []).init()
    # plugboard's tests patch plugboard.process.process.validate_process to init such processes
    with patch("plugboard_beam.process.process.validate_process", return_value=[]):
        process = wired([Double(name="lonely")], [])
        await process.init()
        assert process.components["lonely"].status is Status.INIT
        await process.destroy()
    # never started: an own run() is called by process.run() only (as plugboard's)
    assert not process.components["lonely"].finished


@pytest.mark.asyncio
async def test_input_filled_only_by_an_event_handler_is_refused_clearly() -> None:
    from unittest.mock import patch

    from plugboard_beam.events import Event
    from plugboard_beam.exceptions import ValidationError

    class Msg(Event):
        type: _t.ClassVar[str] = "p16f_msg"
        data: dict[str, _t.Any]

    class Fills(Component):
        io = IO(inputs=["m"], input_events=[Msg])

        @Msg.handler(populates_fields=["m"])
        async def on_msg(self, event: Msg) -> None:
            self.m = event.data

    # plugboard's validate_process accepts it (the handler fills m); the step engine cannot run it
    with patch("plugboard_beam.process.process.validate_process", return_value=[]):
        with pytest.raises(ValidationError, match=r"f\.m is not connected: its event handler fills it"):
            await wired([Fills(name="f")], []).init()


class JobAware(Component):
    io = IO(outputs=["x"])

    def __init__(self, **kw: _t.Any) -> None:
        super().__init__(**kw)
        self.seen: list[str] = []

    async def init(self) -> None:
        from plugboard_beam.utils import DI

        self.seen.append(DI.job_id.resolve_sync())

    async def step(self) -> None:
        await self.io.close()


@pytest.mark.asyncio
async def test_components_resolve_the_runs_job_id_from_di() -> None:
    from plugboard_beam.state import DictStateBackend

    comp = JobAware(name="j")
    process = LocalProcess(components=[comp], connectors=[], state=DictStateBackend(job_id="Job_p16fgiven1"))
    async with process:
        await process.run()
    assert comp.seen == ["Job_p16fgiven1"]
    fresh = LocalProcess(components=[comp], connectors=[], state=DictStateBackend())
    for _ in range(2):
        async with fresh:
            assert comp.seen[-1] == fresh.state.job_id
    assert len(set(comp.seen)) == 3


@pytest.mark.asyncio
async def test_an_engine_inside_a_components_own_run_is_not_pickled() -> None:
    import pickle

    src, dbl, out = Source(name="src", n=3), Double(name="dbl"), Collect(name="out")
    process = wired([src, dbl, out], [("src.x", "dbl.a"), ("dbl.y", "out.v")])
    await process.init()
    await process.step()
    with pytest.raises(TypeError, match=r"\['src', 'dbl'\] are inside their own run\(\)"):
        pickle.dumps(process._engine)
    await process.destroy()
    assert src.finished and dbl.finished  # destroy() closed the waiting run()s: their finally ran
