"""s3:// paths in FileReader / FileWriter through fsspec (s3fs), against moto's S3 server on
loopback (a free port), on --runner local and the DirectRunner; storage_options reach s3fs."""

from __future__ import annotations

from collections.abc import Iterator
import io
import os
from pathlib import Path
import socket
import subprocess
import textwrap

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import cli_command

BUCKET = "pbb-s3-test"
KEYS = {"AWS_ACCESS_KEY_ID": "test-key-id", "AWS_SECRET_ACCESS_KEY": "test-secret", "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_server() -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of moto's S3 server, with bucket ``pbb-s3-test``."""
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        url = f"http://127.0.0.1:{port}"
        import boto3

        boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id=KEYS["AWS_ACCESS_KEY_ID"],
                     aws_secret_access_key=KEYS["AWS_SECRET_ACCESS_KEY"]).create_bucket(Bucket=BUCKET)
        yield url
    finally:
        server.stop()


def _fs(url: str):  # type: ignore[no-untyped-def]
    import s3fs

    return s3fs.S3FileSystem(key=KEYS["AWS_ACCESS_KEY_ID"], secret=KEYS["AWS_SECRET_ACCESS_KEY"],
                             client_kwargs={"endpoint_url": url, "region_name": "us-east-1"},
                             skip_instance_cache=True)


def _env(url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(KEYS, AWS_ENDPOINT_URL=url, HOME=os.environ.get("HOME", "/tmp"), **extra)
    return env


MODEL = """
    plugboard:
      process:
        args:
          components:
          - type: plugboard_beam.library.file_io.FileReader
            args: {{name: src, path: '{src}', field_names: [t, x]{src_opts}}}
          - type: plugboard_beam.library.file_io.FileWriter
            args: {{name: dst, path: '{dst}', field_names: [t, x]{dst_opts}}}
          connectors:
          - {{source: src.t, target: dst.t}}
          - {{source: src.x, target: dst.x}}
"""


def _model(src: str, dst: str, opts: str = "") -> str:
    return textwrap.dedent(MODEL.format(src=src, dst=dst, src_opts=opts, dst_opts=opts)).lstrip()


def _put_parquet(url: str, name: str, table: pa.Table, **kw: int) -> None:
    buf = io.BytesIO()
    pq.write_table(table, buf, **kw)
    with _fs(url).open(f"{BUCKET}/{name}", "wb") as f:
        f.write(buf.getvalue())


@pytest.mark.slow
@pytest.mark.parametrize("runner", ["local", "direct"])
@pytest.mark.parametrize("fmt", [".csv", ".csv.gz", ".parquet"])
def test_s3_read_and_write_against_moto(s3_server: str, tmp_path: Path, runner: str, fmt: str) -> None:
    """A model (s3:// both ends) copies a Parquet file on
    S3 to a CSV / gzip CSV / Parquet file on S3; credentials and endpoint from the environment."""
    _put_parquet(s3_server, f"{runner}{fmt}/in.parquet", pa.table({"t": [0, 1, 2], "x": [0.5, 1.5, 2.75]}))
    out = f"s3://{BUCKET}/{runner}{fmt}/out{fmt}"
    (tmp_path / "model.yaml").write_text(_model(f"s3://{BUCKET}/{runner}{fmt}/in.parquet", out))
    proc = subprocess.run([*cli_command(), "process", "run", "model.yaml", "--runner", runner], cwd=tmp_path,
                          env=_env(s3_server), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    data = _fs(s3_server).cat_file(out[len("s3://"):])
    if fmt == ".parquet":
        assert pq.read_table(pa.BufferReader(data)).to_pydict() == {"t": [0, 1, 2], "x": [0.5, 1.5, 2.75]}
    else:
        if fmt == ".csv.gz":
            import gzip

            data = gzip.decompress(data)
        assert data == b"t,x\n0,0.5\n1,1.5\n2,2.75\n"


def test_s3_storage_options_reach_s3fs(s3_server: str, tmp_path: Path) -> None:
    """With no AWS environment at all, the endpoint and keys given as ``storage_options`` are
    the ones used (a wrong key is refused by the server: the options are not ignored)."""
    with _fs(s3_server).open(f"{BUCKET}/opts/in.csv", "wb") as f:
        f.write(b"t,x\n0,1.5\n1,2.5\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(HOME=str(tmp_path))  # no ~/.aws either
    opts = (f", storage_options: {{key: test-key-id, secret: test-secret, "
            f"client_kwargs: {{endpoint_url: '{s3_server}', region_name: us-east-1}}}}")
    (tmp_path / "model.yaml").write_text(_model(f"s3://{BUCKET}/opts/in.csv", f"s3://{BUCKET}/opts/out.csv", opts))
    proc = subprocess.run([*cli_command(), "process", "run", "model.yaml", "--runner", "local"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert _fs(s3_server).cat_file(f"{BUCKET}/opts/out.csv") == b"t,x\n0,1.5\n1,2.5\n"


def test_s3_missing_object_names_component_and_path(s3_server: str, tmp_path: Path) -> None:
    (tmp_path / "model.yaml").write_text(_model(f"s3://{BUCKET}/nothing/here.csv", "out.csv"))
    proc = subprocess.run([*cli_command(), "process", "run", "model.yaml", "--runner", "local"], cwd=tmp_path,
                          env=_env(s3_server), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "'src'" in proc.stderr and f"s3://{BUCKET}/nothing/here.csv" in proc.stderr
    assert "no such file" in proc.stderr and "Traceback" not in proc.stderr


def test_storage_options_refused_where_they_cannot_apply(tmp_path: Path) -> None:
    from plugboard_beam.library import FileReader, FileWriter

    with pytest.raises(ValueError, match="storage_options"):
        FileReader(name="r", path=str(tmp_path / "x.csv"), field_names=["a"], storage_options={"anon": True})
    with pytest.raises(ValueError, match="storage_options"):
        FileWriter(name="w", path="gs://bucket/x.csv", field_names=["a"], storage_options={"token": "anon"})
    with pytest.raises(ValueError, match="unknown storage 'nosuch://'"):
        FileReader(name="r", path="nosuch://bucket/x.csv", field_names=["a"], storage_options={"a": 1})
    reader = FileReader(name="r", path="s3://bucket/x.csv", field_names=["a"], storage_options={"anon": True})
    assert reader.storage_options == {"anon": True}


@pytest.mark.slow
def test_keyed_replay_from_s3_parquet_to_s3_shards(s3_server: str, tmp_path: Path) -> None:
    """A keyed history on S3 read by row groups on Beam, levels written as shards on S3."""
    rows = [("b", 1, 2.0), ("a", 0, 1.0), ("b", 0, 3.0), ("a", 1, 4.0), ("c", 0, 5.0)]
    _put_parquet(s3_server, "keyed/history.parquet",
                 pa.table({"asset": [r[0] for r in rows], "t": [r[1] for r in rows], "x": [r[2] for r in rows]}),
                 row_group_size=2)
    (tmp_path / "model.yaml").write_text(textwrap.dedent(f"""
        plugboard:
          process:
            args:
              components:
              - type: plugboard_beam.library.FileReader
                args: {{name: src, path: 's3://{BUCKET}/keyed/history.parquet', key_column: asset, order_by: t,
                        field_names: [t, x]}}
              - type: plugboard_beam.library.FileWriter
                args: {{name: dst, path: 's3://{BUCKET}/keyed/out/rows.csv', field_names: [t, x]}}
              connectors:
              - {{source: src.t, target: dst.t}}
              - {{source: src.x, target: dst.x}}
    """).lstrip())
    proc = subprocess.run([*cli_command(), "process", "run", "model.yaml", "--runner", "direct"],
                          cwd=tmp_path, env=_env(s3_server), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    fs = _fs(s3_server)
    shards = sorted(fs.ls(f"{BUCKET}/keyed/out/"))
    assert shards and all(s.startswith(f"{BUCKET}/keyed/out/rows-") and s.endswith(".csv") for s in shards), shards
    lines = sorted(line for s in shards for line in fs.cat_file(s).decode().splitlines()[1:])
    assert lines == ["a,0,0,1.0", "a,1,1,4.0", "b,0,0,3.0", "b,1,1,2.0", "c,0,0,5.0"]
