"""Small utilities with plugboard 0.9.0's names (``plugboard_beam.utils.entities``)."""
