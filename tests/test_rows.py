"""Failure and final-value rows of a batch pipeline (``lowering/rows.py``): on the DirectRunner
each bundle writes its rows straight to a file of its own (Beam's ``WriteToText`` was ~0.3 s of a
run's ~0.45 s fixed cost); Dataflow keeps ``WriteToText``. A reader globbing the prefix sees every
row once and never a partial file."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import apache_beam as beam
import pytest

from plugboard_beam.lowering.rows import LocalRows, _WriteRows, rows_sink


def _read(prefix: str) -> list[str]:
    rows: list[str] = []
    for path in sorted(glob.glob(prefix + "*")):
        with open(path, encoding="utf-8") as f:
            rows += [line.rstrip("\n") for line in f]
    return rows


@pytest.mark.parametrize("per_file", [1, 7, 4096])
def test_every_row_is_written_once_in_complete_files(tmp_path: Path, per_file: int) -> None:
    prefix = str(tmp_path / "errors-00000")
    rows = [f'{{"key": "k{i}", "reason": "line\\\\n {i}"}}' for i in range(50)]
    with beam.Pipeline(runner="DirectRunner") as p:
        _ = p | beam.Create(rows) | LocalRows(prefix, per_file=per_file)
    assert sorted(_read(prefix)) == sorted(rows)
    files = os.listdir(tmp_path)
    assert all(name.startswith("errors-00000-") and name.endswith(".jsonl") for name in files), files
    assert len(files) >= (50 + per_file - 1) // per_file  # at most per_file rows held a file


def test_no_rows_no_file(tmp_path: Path) -> None:
    prefix = str(tmp_path / "finals-00000")
    with beam.Pipeline(runner="DirectRunner") as p:
        _ = p | beam.Create([], reshuffle=False).with_output_types(str) | LocalRows(prefix)
    assert os.listdir(tmp_path) == []


def test_a_file_appears_only_once_complete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bundle that dies while writing leaves only a hidden partial file, which the prefix's
    glob does not match (its rows were never reported, as with a bundle that never finished)."""
    prefix = str(tmp_path / "errors-00000")
    writer = _WriteRows(prefix, per_file=10)
    writer.start_bundle()
    writer.process('{"key": "a"}')

    def die(src: str, dst: str) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", die)
    with pytest.raises(OSError, match="disk gone"):
        writer.finish_bundle()
    assert glob.glob(prefix + "*") == []
    assert [n for n in os.listdir(tmp_path) if n.endswith(".partial")]


def test_dataflow_keeps_write_to_text() -> None:
    assert isinstance(rows_sink("gs://b/errors", local=False), beam.io.WriteToText)
    assert isinstance(rows_sink("/tmp/errors", local=True), LocalRows)
