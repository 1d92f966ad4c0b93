"""Fail fast before a real Dataflow submission: network, credentials, temp bucket.

Without network or credentials, Beam 2.77's DataflowRunner does not fail: it retries the
credential lookup (~20 s), then GCS calls with 120 s deadlines, several times over, for many
minutes. So before the pipeline is even constructed (its option validation already calls
GCS), three checks run, each in a daemon thread with a hard deadline, so that a black-holed
socket cannot hold the command (the threads are abandoned, never joined):

1. network: an HTTP request to the Dataflow endpoint (``--dataflow_endpoint``) and to Cloud
   Storage (``$STORAGE_EMULATOR_HOST`` if set); any HTTP status means reachable;
2. credentials: ``google.auth.default()`` (Application Default Credentials), then a token
   refresh, which proves they work;
3. the ``--temp_location`` bucket exists and these credentials may read it.

Any failure raises ``UserError`` saying what is missing and how to provide it.
"""

from __future__ import annotations

from dataclasses import dataclass
import os
import threading
import time
import typing as _t

from plugboard_beam.dataflow.options import DataflowConfig
from plugboard_beam.exceptions import UserError

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
STORAGE_ENDPOINT = "https://storage.googleapis.com"
#: seconds per check: network, credentials (lookup + token refresh), bucket
DEADLINES = (5.0, 8.0, 6.0)

class PreflightError(UserError):
    """A Dataflow submission is impossible from here (``status`` says why)."""

    def __init__(self, status: str, message: str) -> None:
        self.status = status
        super().__init__(f"cannot submit to Dataflow: {message}")


@dataclass
class _Outcome[T]:
    value: _t.Optional[T] = None
    error: _t.Optional[BaseException] = None
    done: bool = False


def bounded[T](fn: _t.Callable[[], T], deadline: float) -> T:
    """``fn()`` in a daemon thread; raise TimeoutError after ``deadline`` seconds."""
    out: _Outcome[T] = _Outcome()

    def target() -> None:
        try:
            out.value = fn()
        except BaseException as exc:  # handed to the caller
            out.error = exc
        finally:
            out.done = True

    thread = threading.Thread(target=target, name="plugboard-preflight", daemon=True)
    thread.start()
    thread.join(deadline)
    if not out.done:
        raise TimeoutError(f"no answer within {deadline:.0f} s")
    if out.error is not None:
        raise out.error
    return _t.cast(T, out.value)


def endpoints(config: DataflowConfig) -> list[str]:
    """The URLs the network check reaches."""
    storage = os.environ.get("STORAGE_EMULATOR_HOST") or STORAGE_ENDPOINT
    if "://" not in storage:
        storage = f"http://{storage}"
    return [config.dataflow_endpoint.rstrip("/") + "/", storage.rstrip("/") + "/"]


def _unreachable(urls: _t.Sequence[str], timeout: float) -> list[str]:
    import requests

    errors = []
    for url in urls:
        try:
            requests.head(url, timeout=(timeout, timeout), allow_redirects=False)
        except requests.RequestException as exc:
            errors.append(f"{url}: {_reason(exc)}")
    return errors


def _reason(exc: BaseException) -> str:
    text = str(exc)
    for hint in ("Name or service not known", "Temporary failure in name resolution", "Connection refused",
                 "timed out", "Network is unreachable", "No route to host", "Failed to resolve"):
        if hint in text:
            return f"{type(exc).__name__} ({hint})"
    return type(exc).__name__


def _credentials() -> tuple[_t.Any, _t.Optional[str]]:
    import google.auth
    import google.auth.exceptions
    import google.auth.transport.requests

    try:
        creds, project = google.auth.default(scopes=list(SCOPES))
    except google.auth.exceptions.DefaultCredentialsError:
        raise PreflightError(
            "no_credentials",
            "no Google Cloud credentials found. Run `gcloud auth application-default login`, or set "
            "GOOGLE_APPLICATION_CREDENTIALS to a service-account key file (--dry-run builds the job "
            "offline without them)") from None
    try:
        creds.refresh(google.auth.transport.requests.Request())
    except google.auth.exceptions.TransportError as exc:
        raise PreflightError("no_network", f"the credentials could not be refreshed: Google's token endpoint "
                             f"is not reachable ({_reason(exc)})") from None
    except google.auth.exceptions.RefreshError as exc:
        raise PreflightError("invalid_credentials", f"the credentials were rejected ({exc}). Run `gcloud auth "
                             "application-default login` again, or check GOOGLE_APPLICATION_CREDENTIALS") from None
    except google.auth.exceptions.GoogleAuthError as exc:
        raise PreflightError("invalid_credentials", f"the credentials could not be used: {exc}") from None
    return creds, project


def _check_bucket(config: DataflowConfig, creds: _t.Any) -> None:
    import importlib

    from google.api_core import exceptions as api_exceptions

    storage = importlib.import_module("google.cloud.storage")

    bucket = config.temp_location[len("gs://"):].split("/", 1)[0]
    client = storage.Client(project=config.project, credentials=creds)
    try:
        client.get_bucket(bucket, timeout=DEADLINES[2], retry=None)
    except api_exceptions.NotFound:
        raise PreflightError("no_bucket", f"the bucket gs://{bucket} of --temp_location does not exist: create it "
                             f"with `gcloud storage buckets create gs://{bucket} --project={config.project} "
                             f"--location={config.region}`") from None
    except api_exceptions.Forbidden:
        raise PreflightError("no_access", f"these credentials may not read the bucket gs://{bucket} of "
                             "--temp_location: grant them roles/storage.objectAdmin on it") from None
    except Exception as exc:
        raise PreflightError("bucket", f"checking the bucket gs://{bucket} of --temp_location failed: "
                             f"{type(exc).__name__}: {exc}") from None


def preflight(config: DataflowConfig, deadlines: _t.Sequence[float] = DEADLINES) -> float:
    """Raise PreflightError unless the job can be submitted; return the seconds it took."""
    start = time.monotonic()
    urls = endpoints(config)
    try:
        errors = bounded(lambda: _unreachable(urls, min(3.0, deadlines[0])), deadlines[0])
    except TimeoutError:
        errors = [f"{', '.join(urls)}: no answer within {deadlines[0]:.0f} s"]
    if errors:
        raise PreflightError(
            "no_network",
            f"Google Cloud is not reachable from here ({'; '.join(errors)}). Check the network connection "
            "or proxy (HTTPS_PROXY); --dry-run builds the job offline")
    try:
        creds, _ = bounded(_credentials, deadlines[1])
    except TimeoutError:
        raise PreflightError(
            "timeout", f"looking up Google Cloud credentials did not finish within {deadlines[1]:.0f} s (is a "
            "metadata server configured but unreachable?); run `gcloud auth application-default login`") from None
    try:
        bounded(lambda: _check_bucket(config, creds), deadlines[2])
    except TimeoutError:
        raise PreflightError("timeout", f"Cloud Storage did not answer within {deadlines[2]:.0f} s when "
                             f"checking the bucket of --temp_location {config.temp_location}") from None
    return time.monotonic() - start


__all__: _t.Sequence[str] = ["PreflightError", "bounded", "endpoints", "preflight"]
