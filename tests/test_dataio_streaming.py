"""The tank twin in both modes: replayed in batch from a Parquet history (specs/tank-replay) and
fed live through Pub/Sub (specs/tank, --streaming, the emulator) give the same levels per asset."""

from __future__ import annotations

import json
from pathlib import Path
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
