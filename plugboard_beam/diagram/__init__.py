"""Diagrams of a model.

plugboard 0.9.0's API: ``MermaidDiagram.from_process(process)`` (``.diagram``: the Mermaid
flowchart text, ``.url``: the same on the Mermaid Live Editor), ``Diagram`` (the base class) and
``markdown_diagram(process)``. ``mermaid(graph)`` draws a loaded model file's graph (what
``plugboard-beam process diagram`` prints), with its loops' seeds and its event edges.
"""

from __future__ import annotations

import typing as _t

from plugboard_beam.diagram.diagram import Diagram
from plugboard_beam.diagram.mermaid import MermaidDiagram
from plugboard_beam.diagram.model import mermaid


def markdown_diagram(process: _t.Any) -> str:
    """The process's Mermaid diagram in a Markdown ``mermaid`` code block."""
    return f"```mermaid\n{MermaidDiagram.from_process(process).diagram}\n```"


__all__ = ["Diagram", "MermaidDiagram", "markdown_diagram", "mermaid"]
