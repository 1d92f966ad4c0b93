"""Runners: one template (``base.Runner``: instances -> check options -> execute -> report) and
one module per runner. The registry that maps ``--runner`` names to them is the CLI's
(``plugboard_beam.cli.registry``)."""

from plugboard_beam.runners.base import Instances, RunFailed, Runner, RunOptions, RunReport, pipeline_options

__all__ = ["Instances", "RunFailed", "RunOptions", "RunReport", "Runner", "pipeline_options"]
