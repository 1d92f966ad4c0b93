"""Where a streaming run's feedback/control key comes from, without the key ever being part of
the pipeline.

The DoFns that seal and open the run's internal messages (``pipeline.py``) are pickled into the
job graph: Beam's pipeline proto, Dataflow's staged ``pipeline.pb``, a template. So they carry a
*reference* to the key (a ``KeySource``), and the key is loaded in ``setup()`` on the worker:

* ``KeyFile``: the DirectRunner. The runner writes the key to a file readable by its own user
  only (``0600``, created exclusively) in a private folder (``0700``) and removes both when the
  run ends (``private_key_file``). Every worker of the run, threads or ``multi_processing``
  processes of the same user, reads it from there; nothing else holds it but the driver's
  memory.
* ``SecretManagerKey``: Dataflow. The key is a Secret Manager secret version
  (``projects/P/secrets/S/versions/V``) that the workers' service account may access; the
  submitting machine never reads it. The client is created on the worker; tests pass a fake
  client factory explicitly (``client=``).

A key shorter than ``MIN_KEY_BYTES`` is refused (``KeyUnavailable``), so is a key file anyone
else can read.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
from dataclasses import dataclass
import os
from pathlib import Path
import re
import shutil
import stat
import tempfile
import typing as _t

#: the shortest key accepted (HMAC-SHA256; 32 random bytes recommended)
MIN_KEY_BYTES = 16
#: the largest key file or secret read
MAX_KEY_BYTES = 4096
#: a Secret Manager secret version, global or regional
SECRET_VERSION_RE = re.compile(
    r"projects/[a-z0-9][-a-z0-9:.]*[a-z0-9]/(locations/[a-z0-9-]+/)?secrets/[A-Za-z0-9_-]{1,255}/versions/"
    r"[1-9][0-9]*")
#: name of the key file inside its private folder
KEY_FILE = "key"


class KeyUnavailable(RuntimeError):
    """The run's key could not be loaded (message names the source and the reason)."""


class KeySource(_t.Protocol):
    """A reference to the run's key: small, picklable, never holding the key itself."""

    def load(self) -> bytes:
        """The key; raises ``KeyUnavailable``."""
        ...

    def describe(self) -> str:
        """Where the key comes from, for messages."""
        ...


def _checked(key: bytes, where: str) -> bytes:
    if len(key) < MIN_KEY_BYTES:
        raise KeyUnavailable(f"{where}: the key has {len(key)} bytes, at least {MIN_KEY_BYTES} are needed "
                             "(32 random bytes recommended)")
    return key


@dataclass(frozen=True)
class KeyFile:
    """The key in a file of this user's only (``0600``); see ``private_key_file``."""

    path: str

    def describe(self) -> str:
        return f"key file {self.path}"

    def load(self) -> bytes:
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError as exc:
            raise KeyUnavailable(f"{self.describe()}: cannot open it: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_mode & 0o077 or info.st_uid != os.geteuid():
                raise KeyUnavailable(f"{self.describe()}: must be a regular file of this user readable by "
                                     f"no one else (mode {stat.filemode(info.st_mode)})")
            data = f.read(MAX_KEY_BYTES + 1)
        if len(data) > MAX_KEY_BYTES:
            raise KeyUnavailable(f"{self.describe()}: larger than {MAX_KEY_BYTES} bytes")
        return _checked(data, self.describe())


@contextlib.contextmanager
def private_key_file(key: bytes, parent: _t.Optional[str] = None) -> Iterator[KeyFile]:
    """``key`` written to a ``0600`` file in a fresh ``0700`` folder (under ``parent``, default
    the system's temporary folder); both are removed when the block ends, however it ends."""
    folder = tempfile.mkdtemp(prefix="plugboard-key-", dir=parent)  # 0700, created exclusively
    try:
        path = os.path.join(folder, KEY_FILE)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
        yield KeyFile(path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            Path(folder, KEY_FILE).unlink()
        shutil.rmtree(folder, ignore_errors=True)


class SecretAccess(_t.Protocol):
    """What ``SecretManagerKey`` uses of ``secretmanager.SecretManagerServiceClient``."""

    def access_secret_version(self, request: dict[str, str]) -> _t.Any: ...


def secret_manager_client() -> SecretAccess:
    """Secret Manager's client (Application Default Credentials: on Dataflow, the workers'
    service account)."""
    from google.cloud import secretmanager

    return _t.cast(SecretAccess, secretmanager.SecretManagerServiceClient())


@dataclass(frozen=True)
class SecretManagerKey:
    """The key in a Secret Manager secret version (``projects/P/secrets/S/versions/V``).
    ``client``: a factory of the client (default: ``secret_manager_client``); tests give a fake."""

    name: str
    client: _t.Optional[_t.Callable[[], SecretAccess]] = None

    def describe(self) -> str:
        return f"Secret Manager secret {self.name}"

    def load(self) -> bytes:
        try:
            client = (self.client or secret_manager_client)()
            response = client.access_secret_version(request={"name": self.name})
            payload = response.payload
            data = bytes(payload.data)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise KeyUnavailable(f"{self.describe()}: cannot access it ({type(exc).__name__}: {first[:300]}); "
                                 "the workers' service account needs roles/secretmanager.secretAccessor "
                                 "on it") from None
        crc = getattr(payload, "data_crc32c", None)
        if crc:
            import google_crc32c

            if int(google_crc32c.value(data)) != int(crc):
                raise KeyUnavailable(f"{self.describe()}: the payload's checksum does not match (corrupted)")
        if len(data) > MAX_KEY_BYTES:
            raise KeyUnavailable(f"{self.describe()}: larger than {MAX_KEY_BYTES} bytes")
        return _checked(data, self.describe())


def secret_version_problem(name: str) -> _t.Optional[str]:
    """Why ``name`` is not a Secret Manager secret version resource name, or None."""
    if SECRET_VERSION_RE.fullmatch(name):
        return None
    return (f"--control_secret {name!r} is not a Secret Manager secret version: give "
            "projects/PROJECT/secrets/NAME/versions/NUMBER (a fixed version, not 'latest': every worker "
            "of a job must use the same key)")


__all__: _t.Sequence[str] = [
    "KeyFile", "KeySource", "KeyUnavailable", "MIN_KEY_BYTES", "SecretManagerKey", "private_key_file",
    "secret_manager_client", "secret_version_problem",
]
