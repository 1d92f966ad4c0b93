"""Pure-Python wheels written directly (no setuptools or ``build`` needed, nothing downloaded).

A wheel is a zip of the modules plus ``NAME-VERSION.dist-info/{METADATA,WHEEL,RECORD}``. The
files are written in sorted order with a fixed timestamp, so the same sources give the same
bytes (and the same sha256 in the staged-file list).
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
import re
import typing as _t
import zipfile

#: zip timestamp of every entry (the earliest a zip can hold): reproducible wheels
_EPOCH = (1980, 1, 1, 0, 0, 0)


def normalise_name(name: str) -> str:
    """The distribution name as it appears in a wheel's file name (PEP 427 / 503)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def build_wheel(
    out_dir: Path,
    name: str,
    version: str,
    files: _t.Mapping[str, bytes],
    requires: _t.Sequence[str] = (),
    summary: str = "",
) -> Path:
    """Write ``{name}-{version}-py3-none-any.whl`` holding ``files`` (archive path -> bytes)."""
    dist = normalise_name(name)
    info = f"{dist}-{version}.dist-info"
    metadata = "".join([
        "Metadata-Version: 2.1\n",
        f"Name: {name}\n",
        f"Version: {version}\n",
        f"Summary: {summary}\n" if summary else "",
        *(f"Requires-Dist: {r}\n" for r in requires),
    ])
    wheel = "Wheel-Version: 1.0\nGenerator: plugboard-beam\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    entries = dict(sorted(files.items()))
    entries[f"{info}/METADATA"] = metadata.encode()
    entries[f"{info}/WHEEL"] = wheel.encode()
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in entries.items())
    record += f"{info}/RECORD,,\n"
    entries[f"{info}/RECORD"] = record.encode()
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path, data in entries.items():
            zi = zipfile.ZipInfo(path, date_time=_EPOCH)
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o644 << 16
            zf.writestr(zi, data)
    return target


def package_files(root: Path, package: str) -> dict[str, bytes]:
    """Every file of the package folder ``root`` (caches and compiled files left out), keyed
    by its path in the wheel (``package/...``)."""
    out: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_dir() or _skipped(rel):
            continue
        out[f"{package}/{rel.as_posix()}"] = path.read_bytes()
    return out


def _skipped(rel: Path) -> bool:
    return (any(part == "__pycache__" or part.startswith(".") for part in rel.parts)
            or rel.suffix in (".pyc", ".pyo"))


__all__: _t.Sequence[str] = ["build_wheel", "normalise_name", "package_files"]
