"""Off-policy evaluation: the value of a policy estimated from decisions another policy logged (no I/O)."""

from nextbest.ope.estimators import (
    ESTIMATORS,
    IPS,
    DirectMethod,
    DoublyRobust,
    Estimator,
    LoggedBandit,
    OPEEstimate,
    SelfNormalizedDR,
    SelfNormalizedIPS,
    SupportViolation,
    SwitchDR,
)

__all__ = ["ESTIMATORS", "IPS", "DirectMethod", "DoublyRobust", "Estimator", "LoggedBandit", "OPEEstimate",
           "SelfNormalizedDR", "SelfNormalizedIPS", "SupportViolation", "SwitchDR"]
