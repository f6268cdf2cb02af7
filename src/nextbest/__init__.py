"""nextbest: decide the next best action for every customer, and prove it."""

__version__ = "0.1.0"
