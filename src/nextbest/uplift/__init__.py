"""Uplift modelling on randomized experiments: who should be treated, measured on held-out customers.

Core package: no network, no CLI. ``data`` loads an experiment table, ``learners`` holds the uplift
methods (and the response-model baseline), ``metrics`` the Qini/uplift curves and IPW policy values,
``run`` the whole comparison (``run_uplift``) and ``figures`` the plots drawn from its result.
"""

from nextbest.uplift.data import HILLSTROM_DEFAULTS, Experiment, load_experiment, split_experiment
from nextbest.uplift.run import run_uplift

__all__ = ["HILLSTROM_DEFAULTS", "Experiment", "load_experiment", "split_experiment", "run_uplift"]
