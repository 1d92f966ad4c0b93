"""Dataflow options: a ``--profile`` file and command-line flags, normalised and validated offline.

Beam's standard spellings are accepted as they are (``--project``, ``--region``,
``--temp_location``, ``--staging_location``, ``--job_name``, ``--service_account_email``,
``--machine_type``, ``--max_num_workers``, ``--network``, ``--subnetwork``, ``--labels``, ...),
and so are dashed / gcloud spellings (``--temp-location``, ``--service-account``,
``--worker-machine-type``, ``--max-workers``, ``--disable-public-ips``). A profile is a YAML
mapping of the same names (``project: my-proj``); command-line flags win over it.

Everything here is checked before anything is contacted: Beam itself, given a temp location
that is not ``gs://bucket/path``, tries to create a bucket and retries for minutes.

Three options are plugboard's own: ``--ship_code package|container`` (how the model's modules
reach the workers, see ``shipping``), ``--no_wait`` (return once the job is submitted) and
``--control_secret projects/P/secrets/S/versions/V`` (streaming: the Secret Manager secret whose
key authenticates the job's feedback and control messages; required for a streaming job, see
``streaming/secrets.py``; only its name is in the job, the workers read the key).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
import datetime as _dt
import difflib
import json
from pathlib import Path
import re
import typing as _t

import yaml

from plugboard_beam.exceptions import UserError

#: how the model's code reaches the workers
SHIP_MODES = ("package", "container")

#: other spellings -> Beam's option name
ALIASES = {
    "service_account": "service_account_email",
    "max_workers": "max_num_workers",
    "worker_machine_type": "machine_type",
    "disable_public_ips": "no_use_public_ips",
    "additional_experiments": "experiments",
    "label": "labels",
    "additional_user_labels": "labels",
}

#: plugboard's own options (never passed to Beam)
PLUGBOARD_OPTIONS = ("ship_code", "wait", "no_wait", "control_secret")

PROJECT_RE = re.compile(r"[a-z][-a-z0-9:.]{4,61}[a-z0-9]")
REGION_RE = re.compile(r"[a-z]+(-[a-z]+)+[0-9]+")
JOB_NAME_RE = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
BUCKET_RE = re.compile(r"[a-z0-9][-_a-z0-9.]{1,220}[a-z0-9]")
EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[a-z]{2,}")
MACHINE_TYPE_RE = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
LABEL_KEY_RE = re.compile(r"[a-z][a-z0-9_-]{0,62}")
LABEL_VALUE_RE = re.compile(r"[a-z0-9_-]{0,63}")
NETWORK_RE = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?|(https://www\.googleapis\.com/compute/v1/)?projects/[^\s/]+/global/networks/[^\s/]+")
SUBNETWORK_RE = re.compile(r"(https://www\.googleapis\.com/compute/v1/)?(projects/[^\s/]+/)?regions/[^\s/]+/subnetworks/[^\s/]+")
MAX_JOB_NAME = 63


@dataclass(frozen=True)
class DataflowConfig:
    """Validated Dataflow options: the Beam flags to use and what plugboard needs from them."""

    #: normalised Beam flags: the profile's, then the command line's, then defaults we add
    beam_args: tuple[str, ...]
    project: str
    region: str
    temp_location: str
    staging_location: _t.Optional[str]
    job_name: str
    streaming: bool
    ship_code: str
    sdk_container_image: _t.Optional[str]
    wait: bool
    dataflow_endpoint: str
    #: ``--template_location`` / ``--dataflow_job_file``: the job is written there, not created
    template: bool
    #: streaming: the Secret Manager secret version holding the feedback/control key (its name only)
    control_secret: _t.Optional[str] = None

    @property
    def errors_prefix(self) -> str:
        """Where workers write per-key failures (read back once the job ends)."""
        return f"{self.temp_location.rstrip('/')}/plugboard-errors/{self.job_name}/errors"


def _raise(message: str) -> _t.NoReturn:
    raise UserError(f"invalid Dataflow option: {message}")


class _Parser(argparse.ArgumentParser):
    """An option parser raising UserError instead of exiting."""

    def error(self, message: str) -> _t.NoReturn:
        _raise(message)


_PARSERS: dict[frozenset[type], tuple[_t.Any, dict[str, argparse.Action]]] = {}


def _beam_parser() -> tuple[_t.Any, dict[str, argparse.Action]]:
    """Beam's option parser (every PipelineOptions subclass defined so far) and its actions by
    flag name; rebuilt when a newly imported module defines more options."""
    from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

    classes: list[type] = []
    todo = list(PipelineOptions.__subclasses__())
    while todo:
        cls = todo.pop()
        if cls not in classes:
            classes.append(cls)
            todo.extend(cls.__subclasses__())
    key = frozenset(classes)
    if key not in _PARSERS:
        parser = _BeamArgumentParser(allow_abbrev=False, add_help=False)
        setattr(parser, "error", _raise)  # raise UserError instead of exiting
        for cls in classes:
            try:
                cls._add_argparse_args(parser)
            except Exception:
                continue
        flags = {s[2:]: a for a in parser._actions for s in a.option_strings if s.startswith("--")}
        _PARSERS.clear()
        _PARSERS[key] = (parser, flags)
    return _PARSERS[key]


def known_options() -> set[str]:
    """Every Beam pipeline option name (flag spelling without ``--``)."""
    return set(_beam_parser()[1])


def canonical_name(name: str) -> str:
    """Beam's spelling of an option name given with dashes or as a gcloud alias."""
    flags = _beam_parser()[1]
    if name in flags or name in PLUGBOARD_OPTIONS:
        return name
    under = name.replace("-", "_")
    under = ALIASES.get(under, under)
    return under


def normalise_args(args: _t.Sequence[str]) -> list[str]:
    """Rewrite option names to Beam's spellings (values untouched); ``--flag=true|false`` for an
    on/off option becomes ``--flag`` / ``--no_flag`` (as Flex Template launchers may pass them)."""
    flags = _beam_parser()[1]
    out = []
    for arg in args:
        if arg.startswith("--") and len(arg) > 2:
            name, eq, value = arg[2:].partition("=")
            name = canonical_name(name)
            action = flags.get(name)
            if eq and action is not None and action.nargs == 0 and value.lower() in ("true", "false"):
                if value.lower() == "true":
                    out.append(f"--{name}")
                elif f"no_{name}" in flags:
                    out.append(f"--no_{name}")
                continue
            arg = f"--{name}{eq}{value}"
        out.append(arg)
    return out


def split_known(args: _t.Sequence[str]) -> tuple[list[str], list[str]]:
    """(options Beam or plugboard know, the others with their values), names normalised."""
    flags = _beam_parser()[1]
    known: list[str] = []
    unknown: list[str] = []
    args = normalise_args(args)
    i = 0
    while i < len(args):
        arg = args[i]
        name = arg[2:].partition("=")[0] if arg.startswith("--") else ""
        takes_value = "=" not in arg and i + 1 < len(args) and not args[i + 1].startswith("--")
        if name and name not in flags and name not in PLUGBOARD_OPTIONS:
            unknown += args[i:i + 2] if takes_value else [arg]
            i += 2 if takes_value else 1
            continue
        known.append(arg)
        i += 1
    return known, unknown


def _did_you_mean(word: str, options: _t.Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def load_profile(path: _t.Union[str, Path]) -> list[str]:
    """A profile file (YAML mapping ``option: value``) as command-line flags."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise UserError(f"--profile {p}: file does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"--profile {p}: cannot read it: {exc}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"--profile {p}: not valid YAML: {exc}") from None
    if data is None:
        return []
    if not isinstance(data, dict):
        raise UserError(f"--profile {p}: expected a mapping of options, e.g. 'project: my-project'")
    flags = _beam_parser()[1]
    out: list[str] = []
    for raw_key, value in data.items():
        key = canonical_name(str(raw_key))
        if key not in flags and key not in PLUGBOARD_OPTIONS:
            known = sorted({*flags, *PLUGBOARD_OPTIONS})
            raise UserError(f"--profile {p}: unknown option {raw_key!r}{_did_you_mean(key, known)}")
        out += _profile_flags(p, str(raw_key), key, value, flags.get(key))
    return out


def _profile_flags(path: Path, raw: str, key: str, value: _t.Any, action: _t.Optional[argparse.Action]) -> list[str]:
    if value is None:
        return []
    is_flag = key in ("wait", "no_wait") or (action is not None and action.nargs == 0)
    if isinstance(value, bool):
        if is_flag:
            if value:
                return [f"--{key}"]
            negated = {"wait": "no_wait", "no_wait": "wait"}.get(key, f"no_{key}")
            return [f"--{negated}"] if negated in known_options() or negated in PLUGBOARD_OPTIONS else []
        return [f"--{key}={str(value).lower()}"]
    if is_flag:
        raise UserError(f"--profile {path}: option {raw!r} is a flag: give true or false, not {value!r}")
    appends = action is not None and isinstance(action, argparse._AppendAction)
    if isinstance(value, dict):
        if key != "labels":
            raise UserError(f"--profile {path}: option {raw!r} takes a single value, not a mapping")
        return [f"--labels={k}={v}" for k, v in value.items()]
    if isinstance(value, list):
        if not appends:
            raise UserError(f"--profile {path}: option {raw!r} takes a single value, not a list")
        return [f"--{key}={_scalar_text(v)}" for v in value]
    return [f"--{key}={_scalar_text(value)}"]


def _scalar_text(value: _t.Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _split_plugboard(args: _t.Sequence[str]) -> tuple[list[str], dict[str, _t.Any]]:
    """Take plugboard's own options out of ``args``."""
    parser = _Parser(allow_abbrev=False, add_help=False)
    parser.add_argument("--ship_code", choices=SHIP_MODES, default=None)
    parser.add_argument("--wait", dest="wait", action="store_true", default=None)
    parser.add_argument("--no_wait", dest="wait", action="store_false")
    parser.add_argument("--control_secret", default=None)
    ns, rest = parser.parse_known_args(list(args))
    return rest, vars(ns)


def default_job_name(model_name: str, now: _t.Optional[_dt.datetime] = None) -> str:
    """``plugboard-<model>-<UTC time>``: a valid, unique-enough Dataflow job name."""
    stamp = (now or _dt.datetime.now(_dt.UTC)).strftime("%Y%m%d-%H%M%S")
    slug = re.sub(r"[^a-z0-9]+", "-", model_name.lower()).strip("-") or "model"
    head = f"plugboard-{slug}"[: MAX_JOB_NAME - len(stamp) - 1].rstrip("-")
    return f"{head}-{stamp}"


def _gcs_problem(option: str, value: str) -> _t.Optional[str]:
    m = re.fullmatch(r"gs://([^/]+)/(.+)", value)
    if not m:
        if value.startswith("gs://") and "/" not in value[5:].rstrip("/"):
            return (f"--{option} {value!r} has no path inside the bucket: give gs://BUCKET/PATH "
                    f"(e.g. {value.rstrip('/')}/tmp)")
        return f"--{option} {value!r} is not a Cloud Storage path: give gs://BUCKET/PATH"
    if not BUCKET_RE.fullmatch(m.group(1)):
        return (f"--{option} {value!r}: {m.group(1)!r} is not a valid bucket name (lower-case letters, digits, "
                "'-', '_' and '.')")
    return None


def _label_problems(values: _t.Sequence[str]) -> tuple[dict[str, str], list[str]]:
    labels: dict[str, str] = {}
    problems: list[str] = []
    for item in values:
        pairs: dict[str, _t.Any]
        if item.lstrip().startswith("{"):
            try:
                pairs = dict(json.loads(item))
            except (ValueError, TypeError):
                problems.append(f"--labels {item!r} is not a JSON object")
                continue
        else:
            k, eq, v = item.partition("=")
            if not eq:
                problems.append(f"--labels {item!r}: expected KEY=VALUE")
                continue
            pairs = {k: v}
        for k, v in pairs.items():
            if not LABEL_KEY_RE.fullmatch(str(k)):
                problems.append(f"--labels: key {k!r} must start with a lower-case letter and contain only "
                                "lower-case letters, digits, '_' and '-' (at most 63)")
            elif not LABEL_VALUE_RE.fullmatch(str(v)):
                problems.append(f"--labels: value {v!r} of {k!r} may contain only lower-case letters, digits, "
                                "'_' and '-' (at most 63)")
            else:
                labels[str(k)] = str(v)
    return labels, problems


def resolve(pipeline_args: _t.Sequence[str], *, profile: _t.Optional[str], model_name: str,
            streaming: bool = False, dry_run: bool = False,
            record: _t.Optional[str] = None) -> DataflowConfig:
    """Merge the profile and the flags, validate them, and return the Beam flags to use.

    Raises UserError listing every problem, each naming its option.
    """
    args = [*(load_profile(profile) if profile else []), *normalise_args(pipeline_args)]
    args, own = _split_plugboard(args)
    parser, flags = _beam_parser()
    ns, unknown = parser.parse_known_args(args)
    if unknown:
        names = [u for u in unknown if u.startswith("-")] or unknown
        hints = "".join(_did_you_mean(u.lstrip("-").split("=")[0], [*flags, *PLUGBOARD_OPTIONS])
                        for u in names[:1])
        raise UserError(f"unknown Dataflow option(s): {' '.join(unknown)}{hints} (see Beam's pipeline options)")
    problems: list[str] = []
    if getattr(ns, "runner", None):
        problems.append("--runner: choose the runner with plugboard-beam's --runner dataflow, not a Beam option")
    if ns.dry_run:
        problems.append("--dry_run: use plugboard-beam's --dry-run (Beam's flag treats 'False' as true)")
    streaming = streaming or bool(ns.streaming)

    project = ns.project or ""
    if not project:
        problems.append("--project is required: the Google Cloud project ID that runs the job "
                        "(e.g. --project=my-project, or 'project:' in the --profile file)")
    elif project.isdigit():
        problems.append(f"--project {project!r} is a project number: give the project ID")
    elif not PROJECT_RE.fullmatch(project):
        problems.append(f"--project {project!r} is not a valid project ID (6-63 lower-case letters, digits and '-', "
                        "starting with a letter)")
    region = ns.region or ""
    if not region:
        problems.append("--region is required: the Dataflow region that runs the job (e.g. --region=us-central1)")
    elif not REGION_RE.fullmatch(region):
        problems.append(f"--region {region!r} is not a Google Cloud region (e.g. us-central1, europe-west4)")
    temp = ns.temp_location or ""
    if not temp:
        problems.append("--temp_location is required: a Cloud Storage path for temporary files, "
                        "e.g. --temp_location=gs://my-bucket/tmp")
    else:
        p = _gcs_problem("temp_location", temp)
        if p:
            problems.append(p)
    if ns.staging_location:
        p = _gcs_problem("staging_location", ns.staging_location)
        if p:
            problems.append(p)
    job_name = ns.job_name or default_job_name(model_name)
    if ns.job_name is not None:
        if not JOB_NAME_RE.fullmatch(ns.job_name):
            problems.append(f"--job_name {ns.job_name!r} is invalid: use lower-case letters, digits and '-', "
                            "starting with a letter and ending with a letter or digit")
        elif len(ns.job_name) > MAX_JOB_NAME:
            problems.append(f"--job_name is {len(ns.job_name)} characters long: at most {MAX_JOB_NAME}")
    if ns.service_account_email and not EMAIL_RE.fullmatch(ns.service_account_email):
        problems.append(f"--service_account_email {ns.service_account_email!r} is not an email address "
                        "(e.g. runner@my-project.iam.gserviceaccount.com)")
    if ns.machine_type and not MACHINE_TYPE_RE.fullmatch(ns.machine_type):
        problems.append(f"--machine_type {ns.machine_type!r} is not a machine type (e.g. n2-standard-4)")
    for opt in ("num_workers", "max_num_workers"):
        n = getattr(ns, opt)
        if n is not None and n < 1:
            problems.append(f"--{opt} must be at least 1, not {n}")
    if ns.num_workers and ns.max_num_workers and ns.num_workers > ns.max_num_workers:
        problems.append(f"--num_workers ({ns.num_workers}) is more than --max_num_workers ({ns.max_num_workers})")
    if ns.network and not NETWORK_RE.fullmatch(ns.network):
        problems.append(f"--network {ns.network!r} is not a VPC network name (e.g. default)")
    if ns.subnetwork and not SUBNETWORK_RE.fullmatch(ns.subnetwork):
        problems.append(f"--subnetwork {ns.subnetwork!r}: give regions/REGION/subnetworks/NAME or the full URL")
    if ns.labels:
        problems += _label_problems(ns.labels)[1]
    if ns.update:
        if dry_run:
            problems.append("--update looks up the running job through the Dataflow API: it cannot be used "
                            "with --dry-run")
        elif not streaming:
            problems.append("--update replaces a running streaming job: it needs --streaming")
        elif ns.job_name is None:
            problems.append("--update needs --job_name: the name of the running job to replace")
    image = ns.sdk_container_image or None
    if image and re.search(r"\s", image):
        problems.append(f"--sdk_container_image {image!r} contains whitespace")
    ship_code = own["ship_code"] or "package"
    if ship_code == "container" and not image:
        problems.append("--ship_code container needs --sdk_container_image: the worker image holding "
                        "plugboard_beam and the model's modules")
    if record is not None and not record.startswith("gs://"):
        problems.append(f"--record {record!r}: Dataflow workers cannot write to this machine; give a gs:// path")
    elif record is not None:
        p = _gcs_problem("record", record)
        if p:
            problems.append(p)
    control_secret = own["control_secret"] or None
    if control_secret is not None:
        from plugboard_beam.streaming.secrets import secret_version_problem

        p = secret_version_problem(control_secret)
        if p:
            problems.append(p)
        elif not streaming:
            problems.append("--control_secret is for streaming jobs (--streaming): a batch job has no "
                            "feedback or control messages")
    elif streaming:
        problems.append("a streaming job needs --control_secret projects/PROJECT/secrets/NAME/versions/NUMBER: the "
                        "Secret Manager secret (32 random bytes) that authenticates the job's feedback and control "
                        "messages, read by the workers so that it is never in the job (see docs/deploying.md)")
    endpoint = ns.dataflow_endpoint or "https://dataflow.googleapis.com"
    if not re.match(r"https?://[^/\s]+", endpoint):
        problems.append(f"--dataflow_endpoint {endpoint!r} is not an http(s) URL")
    if problems:
        if len(problems) == 1:
            raise UserError(problems[0])
        raise UserError("invalid Dataflow options:\n  " + "\n  ".join(problems))

    extra: list[str] = []
    if ns.job_name is None:
        extra.append(f"--job_name={job_name}")
    if ns.save_main_session is None:
        # Our DoFns never refer to __main__; pickling it only risks failures on the workers.
        extra.append("--no_save_main_session")
    if streaming and not ns.streaming:
        extra.append("--streaming")
    return DataflowConfig(
        beam_args=(*args, *extra),
        project=project,
        region=region,
        temp_location=temp,
        staging_location=ns.staging_location,
        job_name=job_name,
        streaming=streaming,
        ship_code=ship_code,
        sdk_container_image=image,
        wait=own["wait"] is not False,
        dataflow_endpoint=endpoint,
        template=bool(ns.template_location or getattr(ns, "dataflow_job_file", None)),
        control_secret=control_secret,
    )


__all__: _t.Sequence[str] = ["ALIASES", "SHIP_MODES", "DataflowConfig", "default_job_name", "load_profile",
                             "normalise_args", "resolve", "split_known"]
