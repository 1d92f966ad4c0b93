"""gs:// paths for real, through Beam's FileSystems, against a Cloud Storage emulator on loopback
(PyPI's ``gcp-storage-emulator``, started here); and gs:// without credentials fails fast."""

from __future__ import annotations

from collections.abc import Iterator
import io
import os
from pathlib import Path
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import cli_command

BUCKET = "pbb-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of a running emulator with bucket ``pbb-test``."""
    exe = Path(sys.executable).with_name("gcp-storage-emulator")
    if not exe.exists():
        pytest.fail("gcp-storage-emulator is not installed (it is in the test extra: pip install -e '.[test]')")
    port = _free_port()
    log = tmp_path_factory.mktemp("gcs") / "emulator.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([str(exe), "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory",
                                 "--default-bucket", BUCKET], stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the Cloud Storage emulator did not start: {log.read_text()[-1000:]}")
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _client(host: str):  # type: ignore[no-untyped-def]
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(project="test", credentials=AnonymousCredentials(),
                          client_options={"api_endpoint": host})


MODEL = """
    plugboard:
      process:
        args:
          components:
          - type: plugboard_beam.library.file_io.FileReader
            args: {{name: src, path: '{src}', field_names: [t, x]}}
          - type: plugboard_beam.library.file_io.FileWriter
            args: {{name: dst, path: '{dst}', field_names: [t, x]}}
          connectors:
          - {{source: src.t, target: dst.t}}
          - {{source: src.x, target: dst.x}}
"""


@pytest.mark.slow
@pytest.mark.parametrize("runner", ["local", "direct"])
def test_gs_read_and_write_against_emulator(gcs_emulator: str, tmp_path: Path, runner: str) -> None:
    bucket = _client(gcs_emulator).bucket(BUCKET)
    buf = io.BytesIO()
    pq.write_table(pa.table({"t": [0, 1, 2], "x": [0.5, 1.5, 2.75]}), buf)
    bucket.blob(f"{runner}/in.parquet").upload_from_string(buf.getvalue())
    (tmp_path / "model.yaml").write_text(textwrap.dedent(MODEL.format(
        src=f"gs://{BUCKET}/{runner}/in.parquet", dst=f"gs://{BUCKET}/{runner}/out.csv")).lstrip())
    env = dict(os.environ, STORAGE_EMULATOR_HOST=gcs_emulator)
    proc = subprocess.run([*cli_command(), "process", "run", "model.yaml", "--runner", runner], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert bucket.blob(f"{runner}/out.csv").download_as_bytes() == b"t,x\n0,0.5\n1,1.5\n2,2.75\n"


def test_gs_missing_object_names_component_and_path(gcs_emulator: str, tmp_path: Path) -> None:
    (tmp_path / "model.yaml").write_text(textwrap.dedent(MODEL.format(
        src=f"gs://{BUCKET}/nothing/here.csv", dst="out.csv")).lstrip())
    env = dict(os.environ, STORAGE_EMULATOR_HOST=gcs_emulator)
    proc = subprocess.run([*cli_command(), "process", "run", "model.yaml", "--runner", "local"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "'src'" in proc.stderr and f"gs://{BUCKET}/nothing/here.csv" in proc.stderr
    assert "no such file" in proc.stderr and "Traceback" not in proc.stderr


def test_gs_without_credentials_fails_fast_and_clearly(tmp_path: Path) -> None:
    (tmp_path / "model.yaml").write_text(textwrap.dedent(MODEL.format(
        src="gs://some-bucket/history.parquet", dst="out.csv")).lstrip())
    env = {k: v for k, v in os.environ.items()
           if k not in ("STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS")}
    env.update(HOME=str(tmp_path), CLOUDSDK_CONFIG=str(tmp_path / "gcloud"))  # no gcloud login either
    start = time.monotonic()
    proc = subprocess.run([*cli_command(), "process", "run", "model.yaml", "--runner", "local"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    took = time.monotonic() - start
    assert proc.returncode == 1, proc.stderr
    assert "'src'" in proc.stderr and "gs://some-bucket/history.parquet" in proc.stderr
    assert "credentials" in proc.stderr and "Traceback" not in proc.stderr
    assert took < 30, took


@pytest.mark.slow
@pytest.mark.parametrize("rows_per_wave", ["0", "2"])
def test_keyed_replay_from_gs_parquet_to_gs_shards(gcs_emulator: str, tmp_path: Path, rows_per_wave: str) -> None:
    """A history on Cloud Storage read by row groups, grouped by key; levels written as shards
    (in one pipeline, and in three waves: keys counted and row groups filtered on gs://)."""
    bucket = _client(gcs_emulator).bucket(BUCKET)
    rows = [("b", 1, 2.0), ("a", 0, 1.0), ("b", 0, 3.0), ("a", 1, 4.0), ("c", 0, 5.0)]
    buf = io.BytesIO()
    pq.write_table(pa.table({"asset": [r[0] for r in rows], "t": [r[1] for r in rows], "x": [r[2] for r in rows]}),
                   buf, row_group_size=2)
    bucket.blob("keyed/history.parquet").upload_from_string(buf.getvalue())
    (tmp_path / "model.yaml").write_text(textwrap.dedent(f"""
        plugboard:
          process:
            args:
              components:
              - type: plugboard_beam.library.FileReader
                args: {{name: src, path: 'gs://{BUCKET}/keyed/history.parquet', key_column: asset, order_by: t,
                        field_names: [t, x]}}
              - type: plugboard_beam.library.FileWriter
                args: {{name: dst, path: 'gs://{BUCKET}/keyed/out/rows.csv', field_names: [t, x]}}
              connectors:
              - {{source: src.t, target: dst.t}}
              - {{source: src.x, target: dst.x}}
    """).lstrip())
    env = dict(os.environ, STORAGE_EMULATOR_HOST=gcs_emulator)
    for old in bucket.list_blobs(prefix="keyed/out/"):
        old.delete()
    proc = subprocess.run([*cli_command(), "process", "run", "model.yaml", "--rows-per-wave", rows_per_wave],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    shards = sorted(b.name for b in bucket.list_blobs(prefix="keyed/out/"))
    assert all(s.endswith("-of-00004.csv" if rows_per_wave == "0" else "-of-00012.csv") for s in shards), shards
    assert shards and all(s.startswith("keyed/out/rows-") and s.endswith(".csv") for s in shards), shards
    lines = sorted(line for s in shards for line in bucket.blob(s).download_as_text().splitlines()[1:])
    assert lines == ["a,0,0,1.0", "a,1,1,4.0", "b,0,0,3.0", "b,1,1,2.0", "c,0,0,5.0"]
