"""Models: from-scratch gradient-descent estimators (and, later, library wrappers and export)."""

from nextbest.models.scratch import ScratchLinearRegression, ScratchLogisticRegression

__all__ = ["ScratchLinearRegression", "ScratchLogisticRegression"]
