"""Small things a new user meets (issue 17): did-you-mean hints that do not mislead, Beam's
runner spellings, help texts that agree with README, one warning's wording, plurals."""

from __future__ import annotations

import logging
from pathlib import Path
import re
import subprocess
import types
import typing as _t

import click
import pytest

from conftest import ROOT, cli_command
from plugboard_beam.cli.main import runner_name
from plugboard_beam.lowering.beam import StageDoFn

HELLO = str(ROOT / "specs" / "hello" / "my-model.yaml")


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cli_command(), *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def words(text: str) -> str:
    return re.sub(r"\s+", " ", text)


@pytest.mark.parametrize(("arg", "hint"), [("step", None), ("iter", "iters"), ("initial_value", "initial_values"),
                                           ("parameter", "parameters")])
def test_a_did_you_mean_names_only_a_likely_argument(tmp_path: Path, arg: str, hint: _t.Optional[str]) -> None:
    proc = cli("process", "validate", HELLO, "-p", f"component-a.{arg}=3", cwd=tmp_path)
    assert proc.returncode == 2 and f"unknown argument {arg!r}" in proc.stderr, proc.stderr
    if hint is None:
        assert "did you mean" not in proc.stderr, proc.stderr
    else:
        assert f"(did you mean {hint!r}?)" in proc.stderr, proc.stderr


def test_beam_runner_spellings_are_aliases(tmp_path: Path) -> None:
    assert runner_name("DirectRunner") == "direct" and runner_name("DataflowRunner") == "dataflow"
    assert runner_name("dataflowrunner") == "dataflow" and runner_name("Local") == "local"
    with pytest.raises(click.BadParameter, match="did you mean 'direct'"):
        runner_name("DirectRuner")
    # the alias reaches the Dataflow runner: its own option check answers, not "not a runner"
    proc = cli("process", "run", HELLO, "--runner", "DataflowRunner", "--stages", "nonsense", cwd=tmp_path)
    assert proc.returncode == 2 and "not a runner" not in proc.stderr and "nonsense" in proc.stderr, proc.stderr
    proc = cli("process", "run", HELLO, "--runner", "DataflowRunner", "--direct_num_workers", "2", cwd=tmp_path)
    assert proc.returncode == 2 and "not a runner" not in proc.stderr, proc.stderr
    assert "dataflow" in proc.stderr.lower(), proc.stderr


def test_plugboard_import_paths_get_the_plugboard_beam_one(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text('''
plugboard:
  process:
    args:
      components:
      - type: plugboard.library.ListSource
        args: {name: src, fields: [x], rows: [{x: 1}]}
      - type: plugboard.library.NoSuchThing
        args: {name: other}
''')
    proc = cli("process", "validate", "m.yaml", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert not [ln for ln in lines if "component 'src'" in ln], proc.stderr  # read as plugboard_beam's (issue 16.8)
    other = next(ln for ln in lines if "component 'other'" in ln)
    assert "m.yaml:8:" in other and "'plugboard.library.NoSuchThing' is read as 'plugboard_beam.library.NoSuchThing'" \
        in other and "has no component 'NoSuchThing'" in other, proc.stderr
    fixed = (tmp_path / "m.yaml").read_text().replace("plugboard.library.ListSource",
                                                      "plugboard_beam.library.ListSource")
    (tmp_path / "m.yaml").write_text(fixed.split("      - type: plugboard.library.NoSuchThing")[0])
    proc = cli("process", "validate", "m.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_help_and_readme_agree_on_feedback_topic_and_record(tmp_path: Path) -> None:
    help_text = words(cli("process", "run", "--help", cwd=tmp_path).stdout)
    readme = words((ROOT / "README.md").read_text())
    for phrase in ("pbb-<model>-<run id>-feedback", "created when missing and never deleted"):
        assert phrase in help_text and phrase in readme, phrase
    assert "refused on --runner local and with --streaming" in help_text
    proc = cli("process", "run", HELLO, "--runner", "local", "--record", str(tmp_path / "rec"), cwd=tmp_path)
    assert proc.returncode == 2 and "--record" in proc.stderr and "--runner local" in proc.stderr, proc.stderr
    assert not (tmp_path / "rec").exists() and not (tmp_path / "b.txt").exists()


def test_validate_counts_in_the_right_number(tmp_path: Path) -> None:
    proc = cli("process", "validate", str(ROOT / "tests" / "events_models" / "alarms.yaml"), cwd=tmp_path)
    assert proc.returncode == 0 and "(2 components, 0 connectors, 1 event edge, 0 loops)" in proc.stdout, proc.stderr
    proc = cli("process", "validate", HELLO, cwd=tmp_path)
    assert "(3 components, 2 connectors, 0 loops)" in proc.stdout, proc.stderr
    (tmp_path / "one.yaml").write_text('''
plugboard:
  process:
    args:
      components:
      - {type: plugboard_beam.library.ListSource, args: {name: src, fields: [x], rows: [{x: 1}]}}
''')
    proc = cli("process", "validate", "one.yaml", cwd=tmp_path)
    assert "(1 component, 0 connectors, 0 loops)" in proc.stdout, proc.stderr


class _Unpicklable:
    def dump(self) -> bytes:
        raise TypeError("cannot pickle '_io.TextIOWrapper' object")


def test_the_unpicklable_state_warning_claims_no_other_keys(caplog: pytest.LogCaptureFixture) -> None:
    written: list[bytes] = []
    fake = types.SimpleNamespace(unpicklable_warned=False, stage=types.SimpleNamespace(name="s0"), live={},
                                 pickle_runs=True)
    state = types.SimpleNamespace(write=written.append)
    with caplog.at_level(logging.WARNING, logger="plugboard_beam"):
        StageDoFn._save(_t.cast(StageDoFn, fake), "k1", 0, _t.cast(_t.Any, _Unpicklable()), state)
        StageDoFn._save(_t.cast(StageDoFn, fake), "k2", 0, _t.cast(_t.Any, _Unpicklable()), state)
    (record,) = [r for r in caplog.records if r.name.startswith("plugboard_beam")]
    message = record.getMessage()
    assert "key 'k1'" in message and "and others" not in message and "k2" not in message
    assert "once per stage and worker" in message and written == [(1).to_bytes(8, "little")] * 2
