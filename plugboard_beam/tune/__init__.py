"""Tuning (plugboard 0.9.0's ``plugboard.tune``): ``Tuner`` runs an Optuna study whose batches
of trials run as the keys of one run (``runners.trials``)."""

from plugboard_beam.tune.study import ResultGrid, TrialResult, Tuner

__all__ = ["ResultGrid", "TrialResult", "Tuner"]
