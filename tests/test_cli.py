"""The command line: exit codes, messages without tracebacks, progress, diagram."""

from __future__ import annotations

from pathlib import Path
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT, cli_command


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cli_command(), *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_run_hello_and_validate(tmp_path: Path) -> None:
    model = ROOT / "specs" / "hello" / "my-model.yaml"
    proc = cli("process", "run", "--runner", "local", str(model), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "b.txt").read_text().split() == [str(2 * i) for i in range(10)]
    proc = cli("process", "validate", str(model), cwd=tmp_path)
    assert proc.returncode == 0 and "valid (3 components, 2 connectors, 0 loops)" in proc.stdout


def test_diagram_shows_loops(case_copy) -> None:  # type: ignore[no-untyped-def]
    case = case_copy("circular")
    proc = cli("process", "diagram", "model.yaml", cwd=case)
    assert proc.returncode == 0
    assert proc.stdout.startswith("flowchart LR")
    assert 'b -. "out_1 → in_2 (seed [-1])" .-> c' in proc.stdout


def test_component_failure_exits_1_destroys_and_flushes(tmp_path: Path) -> None:
    (tmp_path / "parts.py").write_text('''
from plugboard_beam.component import Component, IOController as IO

class Emit(Component):
    io = IO(outputs=["x"])
    def __init__(self, **kw):
        super().__init__(**kw)
        self._i = 0
    async def step(self):
        self._i += 1
        if self._i > 10:
            await self.io.close()
        self.x = self._i

class Explode(Component):
    io = IO(inputs=["x"], outputs=["y"])
    async def step(self):
        if self.x == 4:
            raise RuntimeError("boom at four")
        self.y = self.x

class Writer(Component):
    io = IO(inputs=["y"])
    def __init__(self, path, **kw):
        super().__init__(**kw)
        self._path = path
    async def init(self):
        self._f = open(self._path, "w")
    async def step(self):
        self._f.write(f"{self.y}\\n")
    async def destroy(self):
        self._f.write("closed\\n")
        self._f.close()
''')
    (tmp_path / "model.yaml").write_text('''
plugboard:
  process:
    args:
      components:
      - {type: parts.Emit, args: {name: e}}
      - {type: parts.Explode, args: {name: bomb}}
      - {type: parts.Writer, args: {name: w, path: out.txt}}
      connectors:
      - {source: e.x, target: bomb.x}
      - {source: bomb.y, target: w.y}
''')
    proc = cli("process", "run", "--runner", "local", "model.yaml", cwd=tmp_path)
    assert proc.returncode == 1
    assert "component 'bomb' failed in step 3" in proc.stderr and "boom at four" in proc.stderr
    assert "Traceback" not in proc.stderr
    # Everything the failing component produced before failing reached the writer, and its
    # destroy() ran (file closed and flushed).
    assert (tmp_path / "out.txt").read_text().split() == ["1", "2", "3", "closed"]
    debug = cli("--debug", "process", "run", "--runner", "local", "model.yaml", cwd=tmp_path)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_bad_options_and_params(tmp_path: Path) -> None:
    model = str(ROOT / "specs" / "hello" / "my-model.yaml")
    proc = cli("process", "run", model, "--runner", "local", "-p", "nonsense", cwd=tmp_path)
    assert proc.returncode == 2 and "expected NAME=VALUE" in proc.stderr
    proc = cli("process", "run", model, "--runner", "local", "-p", "component-a.iters=3", cwd=tmp_path)
    assert proc.returncode == 0
    assert (tmp_path / "b.txt").read_text().split() == ["0", "2", "4"]
    proc = cli("process", "run", model, "--runner", "nowhere", cwd=tmp_path)
    assert proc.returncode == 2 and "nowhere" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("process", "validate", str(tmp_path / "missing.yaml"), cwd=tmp_path)
    assert proc.returncode == 2 and "does not exist" in proc.stderr


def test_a_run_off_a_terminal_ends_with_its_summary(tmp_path: Path) -> None:
    model = str(ROOT / "specs" / "hello" / "my-model.yaml")
    proc = cli("process", "run", "--runner", "local", "--progress", model, cwd=tmp_path)
    assert proc.returncode == 0
    # a short run (under --progress-every) prints no progress line, but always its summary
    quiet = cli("process", "run", "--runner", "local", "--no-progress", model, cwd=tmp_path)
    for p in (proc, quiet):
        assert p.stderr.startswith("summary: 1 key: 1 ok, 0 failed; elapsed "), p.stderr
        # hello_world.B writes its file itself: not a library writer
        assert "outputs: no library writer (file, SQL, Pub/Sub) in the model" in p.stderr


def test_validate_checks_argument_types_and_constructors(tmp_path: Path) -> None:
    model = ROOT / "specs" / "hello" / "my-model.yaml"
    proc = cli("process", "validate", str(model), "-p", "component-a.iters=ten", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "my-model.yaml:9:" in proc.stderr and "component 'component-a'" in proc.stderr
    assert "argument 'iters' (set by override 'component-a.iters') = 'ten' is not a valid int" in proc.stderr
    proc = cli("process", "validate", str(model), "-p", "component-a.itres=3", cwd=tmp_path)
    assert proc.returncode == 2 and "did you mean 'iters'?" in proc.stderr
    work = tmp_path / "m"
    work.mkdir()
    (work / "hello_world.py").write_text((model.parent / "hello_world.py").read_text())
    (work / "m.yaml").write_text(model.read_text().replace("iters: 10", 'iters: "ten"'))
    proc = cli("process", "validate", "m.yaml", cwd=work)
    assert proc.returncode == 2 and "m.yaml:9: component 'component-a' (hello_world.A)" in proc.stderr
    # A constructor that raises on its arguments: named, with its line, by validate (exit 2).
    (work / "hello_world.py").write_text((model.parent / "hello_world.py").read_text().replace(
        "        self._iters = iters\n",
        "        self._iters = iters\n        if iters < 0:\n            raise ValueError('iters must be >= 0')\n"))
    (work / "m.yaml").write_text(model.read_text().replace("iters: 10", "iters: -1"))
    proc = cli("process", "validate", "m.yaml", cwd=work)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "m.yaml:6: component 'component-a' (hello_world.A): the constructor raised ValueError: iters must be >= 0" \
        in proc.stderr


def test_alias_bombs_are_refused_quickly_by_the_cli(tmp_path: Path) -> None:
    import time

    from test_spec import BOMB

    (tmp_path / "bomb.yaml").write_text(BOMB)
    aliases = BOMB.splitlines()[:-1]
    (tmp_path / "sc.yaml").write_text("- key: k\n" + "".join(f"  {line}\n" for line in aliases)
                                      + "  component-a.iters: *i\n")
    model = str(ROOT / "specs" / "hello" / "my-model.yaml")
    for args in (["process", "validate", "bomb.yaml"],
                 ["process", "run", "--runner", "local", model, "--scenarios", "sc.yaml"],
                 ["process", "validate", model, "-p", "component-a.iters=" + "\n".join(aliases).replace('"', "")]):
        start = time.monotonic()
        proc = cli(*args, cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert "alias" in proc.stderr and "Traceback" not in proc.stderr
        assert time.monotonic() - start < 15  # CLI start-up included; the check itself is < 1 s


@pytest.mark.slow
def test_every_option_takes_effect_or_is_refused_naming_its_runner(tmp_path: Path) -> None:
    model = str(ROOT / "specs" / "hello" / "my-model.yaml")
    cases = [
        (["--runner", "local", "--streaming", "--dry-run", "--loops", "fused", "--feedback-topic", "x"],
         ["no effect on --runner local", "--streaming is an option of --runner direct or --runner dataflow",
          "--dry-run is an option of --runner dataflow", "--loops is an option of streaming runs",
          "--feedback-topic is an option of streaming runs"]),
        (["--runner", "local", "--stages", "component"], ["--stages is an option of the Beam runners"]),
        (["--loops", "fused"], ["no effect on --runner direct", "--loops is an option of streaming runs"]),
        (["--job-dir", "j"], ["--job-dir is an option of --runner dataflow"]),
        (["--no_wait"], ["--no_wait: Dataflow option(s) (--runner dataflow)"]),
        (["--region", "us-central1"], ["--region: Dataflow option(s) (--runner dataflow)", "--runner direct"]),
        (["--runer", "local"], ["unknown option --runer: did you mean --runner?"]),
        (["--direct_num_worker", "2"], ["--direct_num_worker (did you mean --direct_num_workers?)"]),
        (["--runner", "locl"], ["'locl' is not a runner", "did you mean 'local'?"]),
    ]
    for args, words in cases:
        proc = cli("process", "run", model, *args, cwd=tmp_path)
        assert proc.returncode == 2, (args, proc.stderr)
        assert all(w in proc.stderr for w in words), (args, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert not (tmp_path / "b.txt").exists()  # refused before anything ran


@pytest.mark.slow
def test_hello_prints_no_beam_warnings_even_with_debug_logging(tmp_path: Path) -> None:
    model = str(ROOT / "specs" / "hello" / "my-model.yaml")
    for debug in ([], ["--debug"]):
        for stages in ("fused", "component"):
            proc = cli(*debug, "process", "run", model, "--stages", stages, cwd=tmp_path)
            assert proc.returncode == 0, proc.stderr
            assert "WARNING" not in proc.stderr and "warning:" not in proc.stderr, (debug, stages, proc.stderr)
            assert "deterministic" not in proc.stderr
        assert (tmp_path / "b.txt").read_text().split() == [str(2 * i) for i in range(10)]


@pytest.mark.slow
def test_runner_modules_import_alone_without_cycles() -> None:
    """Each runner module (and the registry) imports first, in a fresh interpreter."""
    import sys

    modules = ["plugboard_beam.runners.base", "plugboard_beam.runners.local", "plugboard_beam.runners.direct",
               "plugboard_beam.runners.streaming", "plugboard_beam.runners.dataflow", "plugboard_beam.cli.registry",
               "plugboard_beam.runtime.failure", "plugboard_beam.lowering.beam", "plugboard_beam.process"]
    for module in modules:
        proc = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, (module, proc.stderr)


def test_the_command_exits_without_interpreter_teardown(tmp_path: Path) -> None:
    """``plugboard-beam`` runs Python's exit handlers, then exits with the command's code without
    the interpreter's teardown, where Arrow's thread pools can abort a finished run (exit -6,
    ``terminate called without an active exception``): an object finalized only by that
    teardown is never finalized, an atexit handler still runs."""
    script = tmp_path / "probe.py"
    script.write_text(textwrap.dedent("""
        import atexit, os, sys
        from plugboard_beam.cli import main
        atexit.register(lambda: os.write(2, b"atexit-ran "))
        class Teardown:
            def __del__(self):
                os.write(2, b"teardown-ran ")
        kept = Teardown()  # a module global: finalized only by the interpreter's teardown
        sys.argv = ["plugboard-beam", *sys.argv[1:]]
        main()
    """))
    ok = subprocess.run([sys.executable, str(script), "--version"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "atexit-ran" in ok.stderr and "teardown-ran" not in ok.stderr, ok
    assert "plugboard-beam" in ok.stdout
    bad = subprocess.run([sys.executable, str(script), "process", "run", str(tmp_path / "missing.yaml")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "does not exist" in bad.stderr and "teardown-ran" not in bad.stderr, bad
