"""Lowerings: how a validated model is executed (in this process, or as a Beam pipeline)."""
