"""Shipping user code to Dataflow workers (``--ship_code package|container``).

Workers unpickle the pipeline's DoFns, which live in ``plugboard_beam``, and import the
model's component classes by their ``type`` paths. Both must be importable there.

``package`` (default): two pure-Python wheels are built here, offline, and staged with the
job as Beam extra packages (the workers pip-install them at start-up):

* ``plugboard_beam`` itself (the same version as here), with its dependencies declared;
* the model folder's modules (every top-level ``*.py`` and package next to the YAML file),
  unless the folder has its own ``setup.py`` / ``pyproject.toml``: then Beam builds and
  stages that (``--setup_file``; needs setuptools here).

A ``requirements.txt`` next to the model is staged as Beam's ``--requirements_file``
(in a dry run with ``--requirements_cache=skip``, so nothing is downloaded).

``container``: nothing of the model is staged; the workers run ``--sdk_container_image``,
which must already hold plugboard_beam and the model's modules (``pipelines/Dockerfile``
builds such an image, with ``specs/`` at the same path as in the launcher).
"""

from __future__ import annotations

from dataclasses import dataclass
import importlib.metadata
import importlib.util
import os
from pathlib import Path
import re
import sys
import typing as _t

from plugboard_beam.dataflow.options import DataflowConfig
from plugboard_beam.dataflow.wheels import build_wheel, package_files
from plugboard_beam.exceptions import UserError
from plugboard_beam.spec.load import LoadedModel

#: dependencies of the plugboard_beam wheel when its installed metadata cannot be read
_FALLBACK_REQUIRES = ("apache-beam[gcp]>=2.60", "pydantic>=2.5,<3", "pyyaml>=6", "click>=8.1", "pyarrow>=14")
_SETUP_FILES = ("setup.py", "pyproject.toml")
#: files of a model folder that are never shipped as modules
_NOT_MODULES = {"setup.py", "conftest.py", "noxfile.py"}


@dataclass(frozen=True)
class Shipment:
    """What ``ship`` decided: extra Beam flags, the wheels it wrote, and notes for the summary."""

    mode: str
    beam_args: tuple[str, ...]
    #: the model's top-level modules that reach the workers (in a wheel, a setup.py build or the image)
    modules: tuple[str, ...]
    wheels: tuple[Path, ...]
    notes: tuple[str, ...]


def model_modules(folder: Path) -> dict[str, Path]:
    """Top-level modules of a model folder: ``name.py`` files and packages (with ``__init__.py``)."""
    out: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.name == "__pycache__" or not path.stem.isidentifier():
            continue
        if path.is_file() and path.suffix == ".py":
            if path.name not in _NOT_MODULES and path.name != "__init__.py" and not path.stem.startswith("test_"):
                out[path.stem] = path
        elif path.is_dir() and (path / "__init__.py").exists() and path.name not in ("tests", "test"):
            out[path.name] = path
    return out


def model_wheel(model: LoadedModel, out_dir: Path) -> tuple[Path, tuple[str, ...]]:
    """A wheel of the model folder's modules (its name follows the folder's)."""
    folder = model.base_dir
    modules = model_modules(folder)
    files: dict[str, bytes] = {}
    for name, path in modules.items():
        if path.is_dir():
            files.update(package_files(path, name))
        else:
            files[path.name] = path.read_bytes()
    slug = re.sub(r"[^a-z0-9]+", "-", folder.name.lower()).strip("-") or "model"
    wheel = build_wheel(out_dir, f"plugboard-model-{slug}", "0.0.0", files,
                        summary=f"component modules of the plugboard model {model.path.name}")
    return wheel, tuple(modules)


def plugboard_wheel(out_dir: Path) -> Path:
    """A wheel of the running plugboard_beam (so workers run exactly this version)."""
    import plugboard_beam

    root = Path(plugboard_beam.__file__).resolve().parent
    try:
        version = importlib.metadata.version("plugboard-beam")
        requires = [r for r in importlib.metadata.requires("plugboard-beam") or [] if "extra ==" not in r]
    except importlib.metadata.PackageNotFoundError:
        version, requires = "0.0.0", list(_FALLBACK_REQUIRES)
    return build_wheel(out_dir, "plugboard-beam", version, package_files(root, "plugboard_beam"), requires,
                       summary="plugboard models on Apache Beam and Dataflow")


def _has_option(args: _t.Sequence[str], name: str) -> bool:
    return any(a == f"--{name}" or a.startswith(f"--{name}=") for a in args)


def _setuptools_available() -> bool:
    if os.environ.get("BEAM_PYTHON"):
        return True  # Beam builds with that interpreter; trust it
    return importlib.util.find_spec("setuptools") is not None


def _foreign_components(model: LoadedModel, shipped: _t.Collection[str]) -> list[str]:
    """Component types whose module is neither shipped nor plugboard_beam's."""
    notes = []
    for name, cls in sorted(model.classes.items()):
        top = cls.__module__.split(".")[0]
        if top in shipped or top == "plugboard_beam":
            continue
        where = getattr(sys.modules.get(cls.__module__), "__file__", None) or "?"
        notes.append(f"component {name!r} ({cls.__module__}.{cls.__qualname__}) comes from {where}: the workers "
                     "need that module too (list its distribution in requirements.txt, or use a container)")
    return notes


def ship(config: DataflowConfig, model: LoadedModel, out_dir: Path, *, dry_run: bool) -> Shipment:
    """Decide how the code reaches the workers; build the wheels into ``out_dir``."""
    folder = model.base_dir
    args = config.beam_args
    if config.ship_code == "container":
        modules = tuple(model_modules(folder))
        note = (f"workers run {config.sdk_container_image}: it must hold plugboard_beam and the model's "
                f"modules ({', '.join(modules) or 'none in the model folder'}), importable or under {folder}")
        return Shipment("container", (), modules, (), (note,))

    extra: list[str] = []
    wheels: list[Path] = []
    notes: list[str] = []
    setup = next((folder / f for f in _SETUP_FILES if (folder / f).exists()), None)
    if setup is not None and not _has_option(args, "setup_file"):
        if not _setuptools_available():
            raise UserError(
                f"the model folder has {setup.name}, which Beam builds with setuptools, not installed here: "
                "pip install setuptools (or remove it to ship the folder's modules as they are)")
        extra.append(f"--setup_file={setup}")
        modules = tuple(model_modules(folder))
        notes.append(f"the model folder is built from its {setup.name} (staged as workflow.tar.gz)")
    else:
        wheel, modules = model_wheel(model, out_dir)
        wheels.append(wheel)
        extra.append(f"--extra_package={wheel}")
    requirements = folder / "requirements.txt"
    if requirements.exists() and not _has_option(args, "requirements_file"):
        extra.append(f"--requirements_file={requirements}")
        if dry_run and not _has_option(args, "requirements_cache"):
            extra.append("--requirements_cache=skip")
    pb = plugboard_wheel(out_dir)
    wheels.append(pb)
    extra.append(f"--extra_package={pb}")
    notes += _foreign_components(model, modules)
    return Shipment("package", tuple(extra), modules, tuple(wheels), tuple(notes))


__all__: _t.Sequence[str] = ["Shipment", "model_modules", "model_wheel", "plugboard_wheel", "ship"]
