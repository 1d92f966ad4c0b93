"""``plugboard_beam.library`` imports each component class from its module when first asked for:
importing one module of it (a runner needs ``library.data``) does not import them all, and every
public name still imports as plugboard's ``from plugboard.library import ...`` does."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from plugboard_beam.component import Component
import plugboard_beam.library as library


def test_every_public_name_is_a_component_class_of_its_module() -> None:
    assert sorted(library.__all__) == sorted(library._MODULES)
    for name in library.__all__:
        cls = getattr(library, name)
        assert isinstance(cls, type) and issubclass(cls, Component), name
        assert cls.__module__ == f"plugboard_beam.library.{library._MODULES[name]}"
        assert name in dir(library)
        assert vars(library)[name] is cls  # kept on the package once found


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchWriter'"):
        library.NoSuchWriter  # noqa: B018
    with pytest.raises(ImportError):
        exec("from plugboard_beam.library import NoSuchWriter", {})


def test_one_module_does_not_import_the_others() -> None:
    code = textwrap.dedent("""
        import sys
        import plugboard_beam.runners.local  # needs library.data (keyed tables) only
        loaded = sorted(m.rpartition(".")[2] for m in sys.modules if m.startswith("plugboard_beam.library."))
        print(" ".join(loaded))
        from plugboard_beam.library import *  # noqa: F403
        print(FileWriter.__name__, SQLReader.__name__)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    first, second = proc.stdout.splitlines()
    assert "data" in first.split()
    assert not {"file_io", "sql_io", "llm", "pubsub", "websocket_io", "records"} & set(first.split()), first
    assert second == "FileWriter SQLReader"
