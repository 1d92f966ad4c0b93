"""tools/plugboard_parity.py: the rename, the JUnit reading and the count (no download here)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
import sys
import types

import pytest

from conftest import ROOT


def _tool() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("plugboard_parity", ROOT / "tools" / "plugboard_parity.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["plugboard_parity"] = module
    spec.loader.exec_module(module)
    return module


pp = _tool()


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("from plugboard.component import Component", "from plugboard_beam.component import Component"),
        ("import plugboard\n", "import plugboard_beam\n"),
        ("from plugboard import exceptions", "from plugboard_beam import exceptions"),
        ("import plugboard as pb", "import plugboard_beam as pb"),
        ('patch("plugboard.process.process.validate_process")',
         'patch("plugboard_beam.process.process.validate_process")'),
        ('type="plugboard.library.FileWriter"', 'type="plugboard_beam.library.FileWriter"'),
        ("from plugboard_schemas.connector import ConnectorSpec",
         "from plugboard_beam.schemas.connector import ConnectorSpec"),
        ("from plugboard_schemas import ConfigSpec", "from plugboard_beam.schemas import ConfigSpec"),
        # not the import prefix: attributes, mapping keys, other names
        ("process_spec = spec.plugboard.process", "process_spec = spec.plugboard.process"),
        ('{"plugboard": {"process": x}}', '{"plugboard": {"process": x}}'),
        ("plugboard_beam.component", "plugboard_beam.component"),
        ("PLUGBOARD_JOB_ID", "PLUGBOARD_JOB_ID"),
        ("my_plugboard.thing", "my_plugboard.thing"),
    ],
)
def test_rename_source(before: str, after: str) -> None:
    assert pp.rename_source(before) == after


def test_prepare_renames_python_only(tmp_path: Path) -> None:
    sdist = tmp_path / "plugboard-0.9.0"
    (sdist / "tests" / "data").mkdir(parents=True)
    (sdist / "tests" / "test_a.py").write_text("from plugboard.process import LocalProcess\n")
    (sdist / "tests" / "data" / "m.yaml").write_text("type: plugboard.process.LocalProcess\n")
    (sdist / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\nasyncio_mode = "auto"\nmarkers = ["smoke: s", "tuner: t"]\n'
    )
    dest = tmp_path / "work"
    pp.prepare(sdist, dest, rename=True)
    assert (dest / "tests" / "test_a.py").read_text() == "from plugboard_beam.process import LocalProcess\n"
    assert (dest / "tests" / "data" / "m.yaml").read_text() == "type: plugboard.process.LocalProcess\n"
    assert (dest / "pytest.ini").read_text() == "[pytest]\nasyncio_mode = auto\nmarkers =\n    smoke: s\n    tuner: t\n"
    pp.prepare(sdist, tmp_path / "ref", rename=False)
    assert (tmp_path / "ref" / "tests" / "test_a.py").read_text() == "from plugboard.process import LocalProcess\n"


JUNIT_HERE = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="tests.unit.test_a" name="test_one" />
<testcase classname="tests.unit.test_a" name="test_two"><failure message="x">x</failure></testcase>
<testcase classname="tests.unit.test_a.TestK" name="test_three[AsyncioConnector]" />
<testcase classname="tests.unit.test_a.TestK" name="test_three[ZMQConnector]" />
<testcase classname="tests.unit.test_a.TestK" name="test_three[AsyncioConnector]">
<error message="teardown">t</error></testcase>
<testcase classname="" name="tests.unit.test_b"><error message="collection failure">tests/unit/test_b.py:3: in &lt;module&gt;
E   ImportError: cannot import name 'Nope' from 'plugboard_beam.x'</error></testcase>
</testsuite></testsuites>"""

JUNIT_REF = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="tests.unit.test_a" name="test_one" />
<testcase classname="tests.unit.test_a" name="test_two" />
<testcase classname="tests.unit.test_a.TestK" name="test_three[AsyncioConnector]" />
<testcase classname="tests.unit.test_a.TestK" name="test_three[ZMQConnector]" />
<testcase classname="tests.unit.test_b" name="test_four" />
<testcase classname="tests.unit.test_b" name="test_five"><skipped message="s" /></testcase>
</testsuite></testsuites>"""


def test_load_junit_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "here.xml").write_text(JUNIT_HERE)
    (tmp_path / "ref.xml").write_text(JUNIT_REF)
    here = pp.load_junit([tmp_path / "here.xml"])
    ref = pp.load_junit([tmp_path / "ref.xml"])
    assert here.tests == {
        "tests/unit/test_a.py::test_one": "pass",
        "tests/unit/test_a.py::test_two": "fail",
        # a teardown error after a pass makes the test fail
        "tests/unit/test_a.py::TestK.test_three[AsyncioConnector]": "fail",
        "tests/unit/test_a.py::TestK.test_three[ZMQConnector]": "pass",
    }
    assert here.broken_files == {"tests/unit/test_b.py"}
    assert here.why == {"tests/unit/test_b.py": "ImportError: cannot import name 'Nope' from 'plugboard_beam.x'"}
    assert ref.tests["tests/unit/test_b.py::test_five"] == "skip"
    share = pp.report(here, ref)
    out = capsys.readouterr().out
    # 4 tests pass on plugboard once the ZMQ one is left out; 1 of them passes here
    assert share == pytest.approx(1 / 4)
    assert "of the 4 tests that pass on plugboard 0.9.0, 1 pass here: 25.0%" in out
    assert "left out: 1 test(s): ZMQ transport" in out
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.startswith("tests/")}
    assert lines["tests/unit/test_a.py"] == ["1", "3", "3"]
    assert lines["tests/unit/test_b.py"][:3] == ["0", "1", "2"]
    assert "did not collect here" in out
    assert "did not collect here: tests/unit/test_b.py: ImportError: cannot import name 'Nope'" in out


def test_excluded_patterns_are_explained() -> None:
    assert pp.excluded("tests/integration/test_process_with_components_run.py::test_x[RayConnector]")
    assert pp.excluded("tests/unit/test_cli.py::test_cli_version") is not None
    assert pp.excluded("tests/unit/test_cli.py::test_parse_param_override") is None
    assert pp.excluded("tests/unit/test_random.py::test_gen_rand_str") is None


def test_only_refuses_paths_outside_tests() -> None:
    with pytest.raises(SystemExit):
        pp.main(["--only", "../../etc/passwd", "--report-only"])


JUNIT_DOTTED = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="tests.integration.test_s" name="test_default[plugboard.process.LocalProcess-plugboard.state.X]" />
<testcase classname="tests.integration.test_s" name="test_plugboard_name[a]" />
</testsuite></testsuites>"""


def test_reference_ids_renamed_in_parameters(tmp_path: Path) -> None:
    # a test parametrised with dotted paths has the renamed id in the renamed copy: plugboard's
    # run is read with the same rename so that the two ids meet (the test name itself is kept)
    (tmp_path / "ref.xml").write_text(JUNIT_DOTTED)
    ref = pp.load_junit([tmp_path / "ref.xml"], rename=True)
    assert set(ref.tests) == {
        "tests/integration/test_s.py::test_default[plugboard_beam.process.LocalProcess-plugboard_beam.state.X]",
        "tests/integration/test_s.py::test_plugboard_name[a]",
    }
    assert "tests/integration/test_s.py::test_default[plugboard.process.LocalProcess-plugboard.state.X]" in \
        pp.load_junit([tmp_path / "ref.xml"]).tests
