"""Ratio metrics by the delta method: revenue per session when a unit (the randomized customer) has several sessions.

The unit of randomization is the customer, so the sessions of one customer are not independent draws and the
naive per-session t-test understates the variance. Per arm, with per-unit numerator ``Y_i`` (revenue) and
denominator ``X_i`` (sessions), the metric is the ratio of means ``R = Ȳ / X̄`` and its large-sample variance is
(Deng, Knoblich & Lu 2018, "Applying the Delta Method in Metric Analytics")::

    Var(R) ≈ (1 / n) [ s_Y² / X̄² − 2 Ȳ s_XY / X̄³ + Ȳ² s_X² / X̄⁴ ]         (sample moments, ddof 1)

which equals the variance of the mean of the linearized values ``L_i = (Y_i − R X_i) / X̄``. The effect is
``R_t − R_c`` with ``se = sqrt(Var(R_c) + Var(R_t))``, tested on the normal distribution; the interval, the target
test and the verdict are :func:`~nextbest.experiments.analysis.decide`'s, as for every other test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nextbest.experiments.analysis import AnalysisResult, _check_target, decide
from nextbest.experiments.design import InvalidParameter, _as_array, check_alpha, check_alternative


@dataclass(frozen=True)
class RatioArm:
    """One arm of a ratio metric: units, the ratio of means and the delta-method variance of that ratio."""

    n: int
    ratio: float
    variance: float
    numerator_mean: float
    denominator_mean: float


def ratio_arm(numerator: np.ndarray, denominator: np.ndarray, name: str = "arm") -> RatioArm:
    """``R = Ȳ / X̄`` of one arm and its delta-method variance (module docstring); InvalidParameter when the arm
    has fewer than 2 units, lengths differ, or the mean denominator is not positive."""
    if numerator.size != denominator.size:
        raise InvalidParameter(f"{name}: numerator and denominator differ in length "
                               f"({numerator.size:,} vs {denominator.size:,})")  # fmt: skip
    n = numerator.size
    if n < 2:
        raise InvalidParameter(f"{name} needs at least 2 units, got {n}")
    mean_y, mean_x = float(numerator.mean()), float(denominator.mean())
    if not mean_x > 0:
        raise InvalidParameter(f"{name}: the mean denominator is {mean_x:g}; a ratio metric needs it positive")
    dy, dx = numerator - mean_y, denominator - mean_x
    var_y, var_x, cov = (float(np.dot(a, b)) / (n - 1) for a, b in ((dy, dy), (dx, dx), (dy, dx)))
    ratio = mean_y / mean_x
    variance = (var_y - 2 * ratio * cov + ratio**2 * var_x) / (mean_x**2 * n)
    return RatioArm(n, ratio, max(variance, 0.0), mean_y, mean_x)


def analyze_ratio(
    numerator_control: Sequence[float] | np.ndarray,
    denominator_control: Sequence[float] | np.ndarray,
    numerator_treatment: Sequence[float] | np.ndarray,
    denominator_treatment: Sequence[float] | np.ndarray,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    target_effect: float = 0.0,
    labels: tuple[str, str] = ("control", "treatment"),
) -> AnalysisResult:
    """Difference of two ratio metrics ``Ȳ_t / X̄_t − Ȳ_c / X̄_c`` (one row per randomized unit), delta method.

    Returns an :class:`AnalysisResult` whose means are the arms' ratios and whose sds are √(n Var(R)) (the sd of the
    linearized values), ``method`` "delta method (ratio of means)", ``df`` inf. Formulas in the module docstring."""
    alpha = check_alpha(alpha)
    alternative = check_alternative(alternative)
    name_c, name_t = labels
    arm_c = ratio_arm(_as_array(numerator_control, f"numerator of {name_c}"),
                      _as_array(denominator_control, f"denominator of {name_c}"), name_c)  # fmt: skip
    arm_t = ratio_arm(_as_array(numerator_treatment, f"numerator of {name_t}"),
                      _as_array(denominator_treatment, f"denominator of {name_t}"), name_t)  # fmt: skip
    se = math.sqrt(arm_c.variance + arm_t.variance)
    if se == 0:
        raise InvalidParameter("the ratio has no variation in either arm: there is nothing to test")
    assumptions = [
        "units (not sessions) were randomized independently to the arms and do not affect each other (SUTVA)",
        "delta method: each arm's ratio of means is close to normal (first-order Taylor expansion, large n: "
        f"{arm_c.n:,} and {arm_t.n:,} units); mean denominators {arm_c.denominator_mean:.4g} and "
        f"{arm_t.denominator_mean:.4g} per unit",
    ]
    return decide(
        arm_t.ratio - arm_c.ratio, se, math.inf, alpha=alpha, alternative=alternative,
        target_effect=_check_target(target_effect), labels=labels,
        arms=((arm_c.n, arm_c.ratio, math.sqrt(arm_c.variance * arm_c.n)),
              (arm_t.n, arm_t.ratio, math.sqrt(arm_t.variance * arm_t.n))),
        method="delta method (ratio of means)", assumptions=assumptions,
    )  # fmt: skip


__all__ = ["RatioArm", "analyze_ratio", "ratio_arm"]
