"""plugboard_beam: plugboard-compatible process models, compiled to Apache Beam.

Layers (one folder each): ``spec`` (parse + validate YAML) -> ``graph`` (frozen model graph)
-> ``lowering`` (local / Beam) -> ``runtime`` (the one step engine both share) -> ``cli``.
The authoring API mirrors plugboard 0.9.0: ``component``, ``schemas``, ``connector``, ``process``.
"""

__version__ = "0.1.0"
