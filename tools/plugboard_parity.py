"""Run plugboard 0.9.0's own unit and integration tests against plugboard_beam.

Downloads plugboard's sdist from PyPI (``pip download --no-deps --no-binary :all:``) into a cache
folder outside the repository, copies its ``tests/`` to a scratch folder, renames the import prefix
``plugboard`` -> ``plugboard_beam`` (and ``plugboard_schemas`` -> ``plugboard_beam.schemas``) in the
Python files only, runs pytest on them with a per-test timeout and a JUnit XML report, optionally
runs the unrenamed tests on real plugboard in another interpreter (``--reference-python``), and
prints per test file: passed here / passed on plugboard / total, and the share of the tests that
pass on plugboard which pass here, leaving out the tests listed in ``EXCLUDED`` (transports that
Beam replaces, plugboard's internals).

Nothing of plugboard's is kept in this repository: the sdist and the renamed copy live in the cache
and scratch folders. No name is stubbed: a name plugboard_beam lacks fails its test (or its whole
file, at collection), as it would for a user.

The interpreter that runs the tests (``--python``, default this one) needs pytest, pytest-asyncio
and pytest-timeout (``pip install -e '.[test]'`` installs them); the reference interpreter needs
plugboard 0.9.0 and plugboard's own test dependencies.

    python tools/plugboard_parity.py --reference-python /path/to/plugboard-venv/bin/python
    python tools/plugboard_parity.py --only tests/unit/test_random.py --only tests/unit/test_channel.py
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import fnmatch
import os
from pathlib import Path
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import xml.etree.ElementTree as ET

PLUGBOARD_VERSION = "0.9.0"

# Tests left out of the count, each with the reason. A pattern is matched (fnmatch) against
# "<path>::<test name with parameters>", e.g. "tests/unit/test_channel.py::test_x[ZMQConnector]".
# Whole files are not collected at all (their transports need servers or hang without them);
# patterns on parametrised ids deselect those items before they run.
EXCLUDED_FILES: tuple[tuple[str, str], ...] = (
    # ZMQ transport: Beam's shuffle replaces plugboard's ZMQ channels and proxy
    ("tests/unit/test_zmq_backend.py", "ZMQ transport"),
    ("tests/unit/test_zmq_channel.py", "ZMQ transport"),
    ("tests/unit/test_zmq_proxy.py", "ZMQ transport"),
    # plugboard's "pubsub" connector is its ZMQ pub/sub channel (not Google Pub/Sub)
    ("tests/unit/test_connector_pubsub.py", "ZMQ pub/sub transport"),
    ("tests/integration/test_connector_pubsub.py", "ZMQ pub/sub transport"),
    # several OS processes talking over ZMQ connectors
    ("tests/integration/test_state_backend_multiprocess.py", "ZMQ transport"),
    # Ray: Beam's runners play Ray's role here
    ("tests/unit/test_ray_resources.py", "Ray transport"),
    # plugboard's entity id generator (an internal; job ids are tested through their users)
    ("tests/unit/test_entities.py", "plugboard internal: id generator"),
    # benchmarks and smoke runs of plugboard's examples are not unit or integration tests
    ("tests/benchmark", "not a unit/integration test"),
    ("tests/smoke", "not a unit/integration test"),
)
EXCLUDED_TESTS: tuple[tuple[str, str], ...] = (
    # parametrisations over the transports that Beam replaces
    ("*ZMQConnector*", "ZMQ transport"),
    ("*zmq_pubsub_proxy=True*", "ZMQ transport"),
    ("*RayConnector*", "Ray transport"),
    ("*RayProcess*", "Ray transport"),
    ("*RayStateBackend*", "Ray transport"),
    ("*RabbitMQConnector*", "RabbitMQ transport"),
    ("*RedisConnector*", "Redis transport"),
    ("tests/unit/test_utils.py::test_actor_wrapper*", "Ray transport"),
    ("tests/unit/test_utils.py::test_is_on_ray*", "Ray transport"),
    # plugboard's typer app object, driven through typer's CliRunner
    ("tests/unit/test_cli.py::test_cli_*", "plugboard internal: typer app object"),
    # job ids through plugboard's typer app (typer's CliRunner invoking plugboard.cli.app, with
    # plugboard.cli.process.ProcessBuilder patched); the job id of processes and state is counted
    ("tests/integration/test_job_id_wiring.py::test_cli_process_run_*", "plugboard internal: typer app object"),
    # the same job-id checks on a RayProcess (Ray actors in several OS processes)
    ("tests/integration/test_job_id_wiring.py::test_direct_process_without_job_id_multiple_runs_multiprocessing",
     "Ray transport"),
)

# "plugboard" as a module: "import plugboard", "from plugboard.x import", "plugboard.library.X";
# not an attribute ("spec.plugboard.process") nor a key ("plugboard:") nor "plugboard_schemas"
_PREFIX = re.compile(r"(?<![.\w])plugboard(?=\.[A-Za-z_]|\s+import\b|\s+as\b|,|\s*$)", re.M)
_SCHEMAS = re.compile(r"\bplugboard_schemas\b")


def rename_source(text: str) -> str:
    """Rename plugboard's import prefix in Python source: modules and dotted strings."""
    text = _SCHEMAS.sub("plugboard_beam.schemas", text)
    return _PREFIX.sub("plugboard_beam", text)


def download_sdist(cache: Path, version: str, python: str) -> Path:
    """The unpacked sdist of plugboard ``version`` under ``cache`` (downloaded once)."""
    root = cache / f"plugboard-{version}"
    if (root / "tests").is_dir():
        return root
    cache.mkdir(parents=True, exist_ok=True)
    archive = cache / f"plugboard-{version}.tar.gz"
    if not archive.exists():
        subprocess.run(
            [python, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
             "--dest", str(cache), f"plugboard=={version}"],
            check=True,
        )
    with tarfile.open(archive) as tar:
        tar.extractall(cache, filter="data")
    if not (root / "tests").is_dir():
        raise SystemExit(f"error: {archive} has no tests/ folder")
    return root


def pytest_ini(sdist: Path) -> str:
    """plugboard's own pytest options (asyncio mode and loop scopes, markers) as a pytest.ini."""
    opts = tomllib.loads((sdist / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    lines = ["[pytest]"]
    for key, value in opts.items():
        if isinstance(value, list):
            lines.append(f"{key} =")
            lines.extend(f"    {item}" for item in value)
        else:
            lines.append(f"{key} = {value}")
    return "\n".join(lines) + "\n"


def prepare(sdist: Path, dest: Path, rename: bool) -> None:
    """Copy plugboard's tests/ to ``dest`` (renamed when ``rename``) with its pytest options."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(sdist / "tests", dest / "tests")
    if rename:
        for path in (dest / "tests").rglob("*.py"):
            path.write_text(rename_source(path.read_text()))
    (dest / "pytest.ini").write_text(pytest_ini(sdist))


#: what is run by default, each in its own pytest run (a conftest that fails to import, e.g.
#: tests/integration/conftest.py on a missing name, then fails only its own folder)
DEFAULT_TARGETS = ("tests/unit", "tests/integration")


def run_pytest(python: str, folder: Path, work: Path, label: str, timeout: int, targets: list[str],
               env: dict[str, str]) -> list[Path]:
    """Run pytest in ``folder`` once per target, writing ``<work>/<label>-<n>.xml`` (and .log);
    the excluded files are not collected. Returns the JUnit paths, one per target."""
    reports = []
    for n, target in enumerate(targets):
        junit = (work / f"{label}-{n}.xml").resolve()
        junit.unlink(missing_ok=True)
        args = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--timeout={timeout}",
                "--continue-on-collection-errors", f"--junitxml={junit}", target]
        args += [f"--ignore={path}" for path, _ in EXCLUDED_FILES]
        log = junit.with_suffix(".log")
        print(f"running pytest {target} in {folder} (log: {log})", flush=True)
        with log.open("w") as out:
            subprocess.run(args, cwd=folder, stdout=out, stderr=subprocess.STDOUT, env=env)
        if not junit.exists():  # pytest stopped before collecting (a conftest did not import)
            errors = [ln for ln in log.read_text(errors="replace").splitlines() if ln.startswith("E ")]
            case = ET.Element("testcase", classname="", name=target.replace("/", "."))
            ET.SubElement(case, "error", message="did not start").text = (
                errors[-1] if errors else f"E   did not start (see {log})")
            suite = ET.Element("testsuite", name="pytest")
            suite.append(case)
            top = ET.Element("testsuites")
            top.append(suite)
            ET.ElementTree(top).write(junit, encoding="utf-8", xml_declaration=True)
        reports.append(junit)
    return reports


@dataclasses.dataclass(frozen=True)
class Result:
    """Outcome per test id ("tests/unit/test_x.py::test_y[p]"): pass, fail or skip."""

    tests: dict[str, str]
    broken_files: frozenset[str]  # files that did not collect
    why: dict[str, str] = dataclasses.field(default_factory=dict)  # file -> last error line


def _file_of(classname: str) -> tuple[str, str]:
    """('tests/unit/test_x.py', 'Class.') from a JUnit classname 'tests.unit.test_x.Class'."""
    parts = classname.split(".")
    for cut in range(len(parts), 0, -1):
        if parts[cut - 1].startswith("test_") or parts[cut - 1] == "conftest":
            prefix = "/".join(parts[:cut]) + ".py"
            rest = "".join(p + "." for p in parts[cut:])
            return prefix, rest
    return "/".join(parts) + ".py", ""


def load_junit(paths: list[Path], rename: bool = False) -> Result:
    """Read pytest JUnit XML reports (merged). With ``rename`` (plugboard's own run), the import
    prefix is renamed in the tests' parameters as in the renamed copy, so that a test
    parametrised with a dotted path ("test_x[plugboard.process.LocalProcess]") has its id here."""
    tests: dict[str, str] = {}
    broken: set[str] = set()
    why: dict[str, str] = {}
    cases = [case for path in paths if path.exists() for case in ET.parse(path).iter("testcase")]
    for case in cases:
        classname, name = case.get("classname", ""), case.get("name", "")
        kinds = {child.tag for child in case}
        if not classname:  # a collection error: name is the module's (or folder's) dotted path
            path = name.replace(".", "/")
            path = path if path in DEFAULT_TARGETS else path + ".py"
            broken.add(path)
            text = "".join(child.text or child.get("message", "") for child in case)
            lines = [ln[1:].strip() for ln in text.splitlines() if ln.startswith("E ")]
            why[path] = lines[-1] if lines else text.strip().splitlines()[-1:][0] if text.strip() else ""
            continue
        file, cls = _file_of(classname)
        state = "skip" if "skipped" in kinds else (
            "fail" if kinds & {"failure", "error"} else "pass")
        if rename:
            func, bracket, params = name.partition("[")
            name = func + bracket + rename_source(params)
        test_id = f"{file}::{cls}{name}"
        # a teardown error is reported as a second entry for the same test: keep the worst
        if tests.get(test_id) != "fail":
            tests[test_id] = state
    return Result(tests, frozenset(broken), why)


def excluded(test_id: str) -> str | None:
    """The reason ``test_id`` is left out of the count, or None."""
    for pattern, reason in EXCLUDED_TESTS:
        if fnmatch.fnmatchcase(test_id, pattern):
            return reason
    return None


def report(here: Result, ref: Result | None) -> float | None:
    """Print the per-file table; return the share of plugboard-passing tests that pass here."""
    universe = set(ref.tests) if ref is not None else set(here.tests)
    files: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    left_out = collections.Counter[str]()
    for test_id in sorted(universe | set(here.tests)):
        reason = excluded(test_id)
        if reason is not None:
            left_out[reason] += 1
            continue
        file = test_id.split("::")[0]
        counts = files[file]
        counts["total"] += 1
        ok_here = here.tests.get(test_id) == "pass"
        counts["here"] += ok_here
        if ref is not None:
            ok_ref = ref.tests.get(test_id) == "pass"
            counts["ref"] += ok_ref
            counts["both"] += ok_here and ok_ref
    for broken in here.broken_files:
        for file in [f for f in files if f == broken or f.startswith(broken + "/")] or [broken]:
            files[file]["broken"] = 1
    width = max((len(f) for f in files), default=10)
    head = f"{'file':<{width}}  here  plugboard  total"
    print(head)
    print("-" * len(head))
    for file in sorted(files):
        c = files[file]
        ref_col = f"{c['ref']:>9}" if ref is not None else f"{'-':>9}"
        note = "  (did not collect here)" if c["broken"] else ""
        print(f"{file:<{width}}  {c['here']:>4}  {ref_col}  {c['total']:>5}{note}")
    here_total = sum(c["here"] for c in files.values())
    total = sum(c["total"] for c in files.values())
    print("-" * len(head))
    print(f"{'all':<{width}}  {here_total:>4}  "
          f"{sum(c['ref'] for c in files.values()) if ref is not None else '-':>9}  {total:>5}")
    for path in sorted(here.why):
        print(f"did not collect here: {path}: {here.why[path][:150]}")
    for reason, count in sorted(left_out.items()):
        print(f"left out: {count} test(s): {reason}")
    print(f"left out: whole files not collected: "
          f"{', '.join(path for path, _ in EXCLUDED_FILES)}")
    if ref is None:
        return None
    passing_ref = sum(c["ref"] for c in files.values())
    both = sum(c["both"] for c in files.values())
    share = both / passing_ref if passing_ref else 0.0
    print(f"of the {passing_ref} tests that pass on plugboard {PLUGBOARD_VERSION}, "
          f"{both} pass here: {share:.1%}")
    return share


def main(argv: list[str] | None = None) -> int:
    tmp = Path(tempfile.gettempdir())
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=tmp / "plugboard-parity-cache",
                        help="folder for plugboard's downloaded sdist (default: %(default)s)")
    parser.add_argument("--work", type=Path, default=tmp / "plugboard-parity-work",
                        help="scratch folder for the copied tests and reports "
                             "(emptied first; default: %(default)s)")
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter with plugboard_beam installed (default: this one)")
    parser.add_argument("--reference-python", default=None,
                        help="interpreter with plugboard 0.9.0 installed: also run the tests there")
    parser.add_argument("--timeout", type=int, default=60, help="seconds per test")
    parser.add_argument("--only", action="append", default=[],
                        help="a test file or folder under tests/ to run instead of all "
                             "(repeatable)")
    parser.add_argument("--report-only", action="store_true",
                        help="print the table from the reports of the last run")
    args = parser.parse_args(argv)

    for item in args.only:
        if not re.fullmatch(r"tests(/[A-Za-z0-9_]+)*(\.py)?(::[\w\[\]=.-]+)*", item):
            parser.error(f"--only {item!r}: expected a path under tests/, e.g. tests/unit/x.py")
    here_dir, ref_dir = args.work / "here", args.work / "reference"
    targets = args.only or list(DEFAULT_TARGETS)
    here_xml = [args.work / f"here-{n}.xml" for n in range(len(targets))]
    ref_xml = [args.work / f"reference-{n}.xml" for n in range(len(targets))]
    if not args.report_only:
        sdist = download_sdist(args.cache.resolve(), PLUGBOARD_VERSION, args.python)
        args.work.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        prepare(sdist, here_dir, rename=True)
        here_xml = run_pytest(args.python, here_dir, args.work, "here", args.timeout, targets, env)
        if args.reference_python:
            prepare(sdist, ref_dir, rename=False)
            ref_xml = run_pytest(args.reference_python, ref_dir, args.work, "reference", args.timeout,
                                 targets, env)
    here = load_junit(here_xml)
    ref = load_junit(ref_xml, rename=True) if (args.reference_python or args.report_only) and \
        any(p.exists() for p in ref_xml) else None
    if not here.tests and not here.broken_files:
        print(f"error: no test results in {args.work} (see the here-*.log files)", file=sys.stderr)
        return 2
    report(here, ref)
    return 0


if __name__ == "__main__":
    sys.exit(main())
