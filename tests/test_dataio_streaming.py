"""The tank twin in both modes: replayed in batch from a Parquet history (specs/tank-replay) and
fed live through Pub/Sub (specs/tank, --streaming, the emulator) give the same levels per asset."""

from __future__ import annotations

import json
from pathlib import Path
import re
import shutil
import subprocess
import typing as _t

import pyarrow.dataset as ds
import pytest
import yaml

from conftest import ROOT, cli_command
from test_dataio_keyed import replay_folder
from test_streaming import PROJECT, clients, drain, emulator, env_for, make_sub  # noqa: F401 - the emulator fixture


@pytest.mark.slow
def test_replay_from_parquet_equals_streaming_through_pubsub(emulator: _t.Any, tmp_path: Path) -> None:  # noqa: F811
    folder, readings = replay_folder(tmp_path, assets=6, rows=7)
    proc = subprocess.run([*cli_command(), "process", "run", "replay.yaml"], cwd=folder, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    batch: dict[str, list[float]] = {}
    for row in sorted(ds.dataset(str(folder / "out"), format="parquet").to_table().to_pylist(),
                      key=lambda r: (r["key"], r["step"])):
        batch.setdefault(row["key"], []).append(row["level"])

    work = tmp_path / "tank"
    shutil.copytree(ROOT / "specs" / "tank", work)
    topic, _ = make_sub("tank-inflow", "tank-inflow-replay")
    _, results = make_sub("tank-state", "tank-state-replay")
    pub, _ = clients()
    for key, values in readings.items():
        for seq, v in enumerate(values):
            pub.publish(topic, json.dumps({"inflow": v}).encode(), key=key, seq=str(seq)).result()
        pub.publish(topic, b"", key=key, seq=str(len(values)), eos="true").result()
    (work / "keys.yaml").write_text(yaml.safe_dump([{"key": k} for k in readings]))
    live = subprocess.run([*cli_command(), "process", "run", "tank.yaml", "--streaming", "--scenarios", "keys.yaml",
                           "-p", "sensor.subscription=tank-inflow-replay"], cwd=work, capture_output=True, text=True,
                          timeout=600, env=env_for(emulator))
    assert live.returncode == 0, live.stderr[-3000:]
    streamed: dict[str, list[tuple[int, float]]] = {}
    for attrs, data in drain(results, expect_eos=len(readings)):
        if attrs.get("eos") != "true":
            streamed.setdefault(attrs["key"], []).append((int(attrs["step"]), json.loads(data)["level"]))
    assert sorted(streamed) == sorted(batch) == sorted(readings)
    for key in readings:
        assert [lv for _, lv in sorted(streamed[key])] == batch[key], key


def _windowed_rows(folder: Path, pattern: str) -> list[dict[str, _t.Any]]:
    """Rows of every finished window file (Beam moves a window's files into place when it closes)."""
    import csv
    import gzip
    import io

    rows: list[dict[str, _t.Any]] = []
    for f in sorted(folder.glob(pattern)):
        data = f.read_bytes()
        if f.name.endswith(".gz"):
            data = gzip.decompress(data)
        rows += list(csv.DictReader(io.StringIO(data.decode())))
    return rows


@pytest.mark.slow
def test_streaming_file_writer_writes_windowed_files_while_running(emulator: _t.Any, tmp_path: Path) -> None:  # noqa: F811
    """11.5: a never-ending streaming job (keys from the messages) writes a FileWriter's rows as
    one file set per 2 s window, with key and step columns, while it is still running."""
    import signal
    import time

    work = tmp_path / "tank"
    shutil.copytree(ROOT / "specs" / "tank", work)
    model = yaml.safe_load((work / "tank.yaml").read_text())
    args = model["plugboard"]["process"]["args"]
    args["components"].append({"type": "plugboard_beam.library.FileWriter",
                               "args": {"name": "levels", "path": "out/levels.csv.gz", "field_names": ["level"],
                                        "window_seconds": 2}})
    args["connectors"].append({"source": "tank.level", "target": "levels.level"})
    (work / "forever.yaml").write_text(yaml.safe_dump(model))
    topic, _ = make_sub("tank-inflow", "tank-inflow-files")
    _, results = make_sub("tank-state", "tank-state-files")
    log = (tmp_path / "stderr.txt").open("w")
    proc = subprocess.Popen([*cli_command(), "process", "run", "forever.yaml", "--streaming",
                             "-p", "sensor.subscription=tank-inflow-files"], cwd=work, env=env_for(emulator),
                            stdout=subprocess.DEVNULL, stderr=log, text=True)

    def err() -> str:
        return (tmp_path / "stderr.txt").read_text()[-3000:]

    inflows = {"a": [4.0, 1.0, 2.5], "b": [0.5, 3.0], "c x": [10.0, 0.0, 6.0, 1.5]}
    n = sum(len(v) for v in inflows.values())
    try:
        pub, _ = clients()
        for key, values in inflows.items():
            for seq, v in enumerate(values):
                pub.publish(topic, json.dumps({"inflow": v}).encode(), key=key, seq=str(seq)).result()
        published = drain(results, expect=n, timeout=120)
        expected = sorted((a["key"], int(a["step"]), json.loads(d)["level"]) for a, d in published)
        assert len(expected) == n, err()
        deadline = time.monotonic() + 60
        rows: list[dict[str, _t.Any]] = []
        while time.monotonic() < deadline and len(rows) < n:
            time.sleep(1)
            rows = _windowed_rows(work / "out", "levels-*.csv.gz")
        assert proc.poll() is None, err()  # still running
        got = sorted((str(r["key"]), int(r["step"]), float(r["level"])) for r in rows)
        assert got == expected, err()
        files = sorted(p.name for p in (work / "out").glob("levels-*.csv.gz"))
        assert files and all(re.fullmatch(r"levels-\d{4}-\d\d-\d\dT[\d:.]+-\d{4}-\d\d-\d\dT[\d:.]+-\d{5}-of-\d{5}"
                                           r"\.csv\.gz", f) for f in files), files
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    assert proc.returncode == 130, err()
    assert "Traceback" not in err()


def test_window_seconds_is_checked_and_batch_ignores_it(tmp_path: Path) -> None:
    """``window_seconds`` must be a positive number; a batch run accepts it and writes one file."""
    from plugboard_beam.library import FileWriter

    for bad in (0, -1.0, "60", True, float("nan")):
        with pytest.raises(ValueError, match="window_seconds"):
            FileWriter(name="w", path="x.csv", field_names=["a"], window_seconds=bad)
    assert FileWriter(name="w", path="x.csv", field_names=["a"]).window_seconds == 60.0
    from test_dataio import COPY, run_model

    (tmp_path / "in.csv").write_text("t,x\n0,1.5\n1,-2.25\n")
    body = COPY.format(src="in.csv", dst="out.csv", extra="")
    body = body.replace("path: out.csv", "path: out.csv, window_seconds: 5")
    assert "window_seconds: 5" in body
    proc = run_model(tmp_path, body, "--runner", "local")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out.csv").read_text() == "t,x\n0,1.5\n1,-2.25\n"


@pytest.mark.parametrize("path", ["out/levels.csv", "out/levels.csv.gz", "out/levels.parquet"])
def test_window_file_sink_writes_key_step_and_fields(path: str) -> None:
    """One window file of a streaming FileWriter: rows sorted by key and step, with the batch
    writer's formatting, in each format."""
    import gzip
    import io

    import pyarrow.parquet as pq

    from plugboard_beam.lowering.dataio.windowed import WindowedWrite, _Destination, _RowSink

    w = WindowedWrite("levels", ("level", "ok"), path, 2.0)
    assert w.folder == str(Path("out").resolve()) and w.stem == "levels"
    sink = _RowSink(w)
    fh = io.BytesIO()
    sink.open(fh)
    for row in [("b", 0, (1.5, True)), ("a", 1, (2.0, False)), ("a", 0, (3, True))]:
        sink.write(row)
    sink.flush()
    data = fh.getvalue()
    if path.endswith(".parquet"):
        got = pq.read_table(io.BytesIO(data)).to_pydict()
        assert got == {"key": ["a", "a", "b"], "step": [0, 1, 0], "level": [3.0, 2.0, 1.5], "ok": [True, False, True]}
    else:
        text = (gzip.decompress(data) if path.endswith(".gz") else data).decode()
        assert text == "key,step,level,ok\na,0,3.0,True\na,1,2.0,False\nb,0,1.5,True\n"
    assert _Destination(WindowedWrite("w", ("x",), "o/lv-{key}.csv", 1.0))(("a b", 0, (1,))) == "lv-a b"


@pytest.mark.slow
def test_finite_streaming_run_writes_its_last_window_before_it_ends(emulator: _t.Any, tmp_path: Path) -> None:  # noqa: F811
    """A streaming run with --scenarios ends when every key has ended, but only after its
    FileWriter's last window has been written: every row is in the files when the command returns."""
    work = tmp_path / "tank"
    shutil.copytree(ROOT / "specs" / "tank", work)
    model = yaml.safe_load((work / "tank.yaml").read_text())
    args = model["plugboard"]["process"]["args"]
    args["components"].append({"type": "plugboard_beam.library.FileWriter",
                               "args": {"name": "levels", "path": "out/levels.parquet", "field_names": ["level"],
                                        "window_seconds": 3}})
    args["connectors"].append({"source": "tank.level", "target": "levels.level"})
    (work / "finite.yaml").write_text(yaml.safe_dump(model))
    topic, _ = make_sub("tank-inflow", "tank-inflow-files-finite")
    _, results = make_sub("tank-state", "tank-state-files-finite")
    inflows = {"a": [4.0, 1.0], "b": [0.5, 3.0, 2.0]}
    pub, _ = clients()
    for key, values in inflows.items():
        for seq, v in enumerate(values):
            pub.publish(topic, json.dumps({"inflow": v}).encode(), key=key, seq=str(seq)).result()
        pub.publish(topic, b"", key=key, seq=str(len(values)), eos="true").result()
    (work / "keys.yaml").write_text(yaml.safe_dump([{"key": k} for k in inflows]))
    proc = subprocess.run([*cli_command(), "process", "run", "finite.yaml", "--streaming", "--scenarios", "keys.yaml",
                           "-p", "sensor.subscription=tank-inflow-files-finite"], cwd=work, capture_output=True,
                          text=True, timeout=300, env=env_for(emulator))
    assert proc.returncode == 0, proc.stderr[-3000:]
    published = drain(results, expect_eos=len(inflows))
    expected = sorted((a["key"], int(a["step"]), json.loads(d)["level"])
                      for a, d in published if a.get("eos") != "true")
    files = sorted((work / "out").glob("levels-*.parquet"))
    assert files
    rows = [r for f in files for r in ds.dataset(str(f), format="parquet").to_table().to_pylist()]
    assert sorted((r["key"], r["step"], r["level"]) for r in rows) == expected
    assert len(expected) == sum(len(v) for v in inflows.values())


@pytest.mark.slow
def test_streaming_file_writer_writes_one_file_per_window_and_leaves_no_temp_folder(
        emulator: _t.Any, tmp_path: Path) -> None:  # noqa: F811
    """17.4: 3 keys x 50 steps through a streaming FileWriter give one file per window (not one
    per step), every row in them once, and no temporary folder is left when the run ends."""
    import time

    work = tmp_path / "tank"
    shutil.copytree(ROOT / "specs" / "tank", work)
    model = yaml.safe_load((work / "tank.yaml").read_text())
    args = model["plugboard"]["process"]["args"]
    args["components"].append({"type": "plugboard_beam.library.FileWriter",
                               "args": {"name": "levels", "path": "out/levels.csv", "field_names": ["level"],
                                        "window_seconds": 10}})
    args["connectors"].append({"source": "tank.level", "target": "levels.level"})
    (work / "counted.yaml").write_text(yaml.safe_dump(model))
    topic, _ = make_sub("tank-inflow", "tank-inflow-files-counted")
    make_sub("tank-state", "tank-state-files-counted")
    inflows = {k: [float(i % 7) for i in range(50)] for k in ("a", "b", "c")}
    pub, _ = clients()
    futures = []
    for key, values in inflows.items():
        for seq, v in enumerate(values):
            futures.append(pub.publish(topic, json.dumps({"inflow": v}).encode(), key=key, seq=str(seq)))
        futures.append(pub.publish(topic, b"", key=key, seq=str(len(values)), eos="true"))
    for f in futures:
        f.result()
    (work / "keys.yaml").write_text(yaml.safe_dump([{"key": k} for k in inflows]))
    t0 = time.monotonic()
    proc = subprocess.run([*cli_command(), "process", "run", "counted.yaml", "--streaming", "--scenarios", "keys.yaml",
                           "-p", "sensor.subscription=tank-inflow-files-counted"], cwd=work, capture_output=True,
                          text=True, timeout=400, env=env_for(emulator))
    seconds = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = sorted(p.name for p in (work / "out").iterdir())
    assert not [n for n in names if n.startswith(".temp")], names  # no folder of files being written left
    pattern = r"levels-(\d{4}-\d\d-\d\dT[\d:.]+-\d{4}-\d\d-\d\dT[\d:.]+)-(\d{5})-of-(\d{5})\.csv"
    matches = [re.fullmatch(pattern, n) for n in names]
    assert all(matches), names
    windows = [m.group(1) for m in matches if m]
    assert len(windows) == len(set(windows)), names  # one file per window
    assert all(m.group(2, 3) == ("00000", "00001") for m in matches if m), names
    assert len(names) <= seconds / 10 + 2, (len(names), seconds)  # windows the run lasted, not steps
    rows = _windowed_rows(work / "out", "levels-*.csv")
    assert sorted((r["key"], int(r["step"])) for r in rows) == sorted((k, i) for k in inflows for i in range(50))
