"""The model graph layer."""

from plugboard_beam.graph.model import Edge, ModelGraph, Node

__all__ = ["Edge", "ModelGraph", "Node"]
