"""The spec layer: load a YAML model, validate it (every problem, with its line), build the graph."""

from plugboard_beam.spec.errors import ModelError, Problem
from plugboard_beam.spec.load import LoadedModel, load_model

__all__ = ["LoadedModel", "ModelError", "Problem", "load_model"]
