"""Always-valid sequential test: the mixture sequential probability ratio test (mSPRT) for a difference in means.

Johari, Koomen, Pekelis & Walsh, "Always valid inference: continuous monitoring of A/B tests" (Operations
Research 70(3), 2022; arXiv:1512.04922). With ``n_c, n_t`` units so far, observed difference
``D = mean_t - mean_c`` and its variance ``V = s_c^2 / n_c + s_t^2 / n_t`` (known ``sd`` for both arms, or the
plug-in sample variances), the likelihood ratio of H1: ``theta ~ N(theta0, tau^2)`` against H0:
``theta = theta0`` for a normal ``D ~ N(theta, V)`` is::

    Lambda = sqrt(V / (V + tau^2)) * exp( tau^2 (D - theta0)^2 / (2 V (V + tau^2)) )

(for equal arms with known variance ``V = 2 sigma^2 / n`` this is the paper's
``sqrt(2 sigma^2 / (2 sigma^2 + n tau^2)) exp(n^2 tau^2 (D - theta0)^2 / (4 sigma^2 (2 sigma^2 + n tau^2)))``).
Lambda is a non-negative martingale under H0, so by Ville's inequality ``P(sup_n Lambda_n >= 1/alpha) <= alpha``.
Hence the always-valid p-value ``p_n = min(p_{n-1}, 1 / Lambda_n)`` (``p_0 = 1``) and the rule "reject once
``p_n <= alpha``" keep the false-positive rate below alpha however often one looks. Inverting the test gives
the confidence sequence, intersected over time::

    CS_n = CS_{n-1} ∩ [D - h_n, D + h_n],  h_n = sqrt( V (V + tau^2) / tau^2 * (2 log(1/alpha) + log((V + tau^2) / V)) )

``tau`` (outcome units) is the scale of effects the test is tuned for: it is most powerful around the sample
size where ``V ~ tau^2``; a value near the effect one hopes to detect is a good default. Exact for normal data
with known variance arriving in a fixed control/treatment ratio; with plug-in variances it is approximate in
small samples, hence no decision before ``burn_in`` units per arm.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from nextbest.experiments.analysis import _fmt, _fmt_p, _interval, _plain
from nextbest.experiments.design import InvalidParameter, _as_array, _number, check_alpha


def msprt_log_lr(diff: Any, var: Any, tau: float, theta0: float = 0.0) -> np.ndarray:
    """log Lambda of the normal-mixture SPRT, elementwise (see module docstring)."""
    var = np.asarray(var, dtype=np.float64)
    tau2 = tau * tau
    with np.errstate(divide="ignore", invalid="ignore"):
        return 0.5 * np.log(var / (var + tau2)) + tau2 * (np.asarray(diff) - theta0) ** 2 / (2 * var * (var + tau2))


def msprt_halfwidth(var: Any, tau: float, alpha: float) -> np.ndarray:
    """Half-width of the (1 - alpha) confidence-sequence interval at variance ``var``, elementwise."""
    var = np.asarray(var, dtype=np.float64)
    tau2 = tau * tau
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(var * (var + tau2) / tau2 * (2 * math.log(1 / alpha) + np.log((var + tau2) / var)))


def msprt_path(diff: Any, var: Any, tau: float, alpha: float, theta0: float = 0.0):
    """Always-valid p-values and confidence sequence along the last axis (the checks, in order).

    ``diff`` and ``var`` are arrays ``(..., checks)``; entries with ``var`` NaN are skipped (burn-in).
    Returns ``(p_values, lower, upper)``: running ``min(1, 1/Lambda)`` and the running intersection."""
    diff = np.asarray(diff, dtype=np.float64)
    var = np.asarray(var, dtype=np.float64)
    log_lr = np.where(np.isfinite(var), msprt_log_lr(diff, var, tau, theta0), -np.inf)
    p_values = np.minimum(1.0, np.exp(-np.maximum.accumulate(log_lr, axis=-1)))
    half = msprt_halfwidth(var, tau, alpha)
    lower = np.maximum.accumulate(np.where(np.isfinite(var), diff - half, -np.inf), axis=-1)
    upper = np.minimum.accumulate(np.where(np.isfinite(var), diff + half, np.inf), axis=-1)
    return p_values, lower, upper


@dataclass(frozen=True)
class SequentialResult:
    """Snapshot of a :class:`MixtureSPRT`: statistic = log Lambda, always-valid p-value, confidence sequence."""

    effect: float | None
    statistic: float
    p_value: float
    ci: tuple[float, float]
    decision: str
    verdict: str
    n_control: int
    n_treatment: int
    variance: float | None
    tau: float
    alpha: float
    theta0: float
    assumptions: list[str]
    method: str = "mSPRT (normal mixture)"

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}


class _Running:
    """Count, mean and sum of squared deviations of a stream (Chan et al. parallel update)."""

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0

    def add(self, values: np.ndarray) -> None:
        if values.size == 0:
            return
        n_b = values.size
        mean_b = float(values.mean())
        m2_b = float(np.sum((values - mean_b) ** 2))
        total = self.n + n_b
        delta = mean_b - self.mean
        self.mean += delta * n_b / total
        self.m2 += m2_b + delta * delta * self.n * n_b / total
        self.n = total

    def var(self) -> float:
        return self.m2 / (self.n - 1) if self.n > 1 else math.nan


class MixtureSPRT:
    """Always-valid two-sided test of ``mean_t - mean_c = theta0`` that may be checked after every update.

    Parameters: ``tau`` mixing standard deviation (outcome units, e.g. the target effect); ``alpha``; ``sd``
    known outcome standard deviation (both arms), or None for plug-in sample variances; ``theta0`` null
    difference; ``burn_in`` units per arm before any decision (default 100 with plug-in variances, 1 with a
    known sd). Feed data with :meth:`update`; read :attr:`p_value`, :attr:`decision`,
    :meth:`confidence_sequence` and :meth:`result`. Formulas in the module docstring.
    """

    def __init__(
        self,
        tau: float,
        alpha: float = 0.05,
        sd: float | None = None,
        theta0: float = 0.0,
        burn_in: int | None = None,
    ) -> None:
        self.tau = _number("tau", tau)
        if self.tau <= 0:
            raise InvalidParameter(f"tau must be > 0 (outcome units), got {tau!r}")
        self.alpha = check_alpha(alpha)
        self.sd = None if sd is None else _number("sd", sd)
        if self.sd is not None and self.sd <= 0:
            raise InvalidParameter(f"sd must be > 0, got {sd!r}")
        self.theta0 = _number("theta0", theta0)
        default = 1 if self.sd is not None else 100
        self.burn_in = default if burn_in is None else int(burn_in)
        if self.burn_in < (1 if self.sd is not None else 2):
            raise InvalidParameter("burn_in must be >= 2 units per arm with plug-in variances (>= 1 with a known sd)")
        self._control = _Running()
        self._treatment = _Running()
        self._p_value = 1.0
        self._max_log_lr = -math.inf
        self._lower = -math.inf
        self._upper = math.inf
        self._log_lr = -math.inf

    # -- data ------------------------------------------------------------------------------------------
    def update(self, control_values: Sequence[float] = (), treatment_values: Sequence[float] = ()) -> MixtureSPRT:
        """Add new observations of either arm (any batch size), then re-evaluate the test once. Returns self."""
        self._control.add(_as_array(control_values, "control_values"))
        self._treatment.add(_as_array(treatment_values, "treatment_values"))
        variance = self.variance
        if variance is None or not variance > 0:
            return self
        diff = self._treatment.mean - self._control.mean
        self._log_lr = float(msprt_log_lr(diff, variance, self.tau, self.theta0))
        self._max_log_lr = max(self._max_log_lr, self._log_lr)
        self._p_value = min(self._p_value, 1.0, math.exp(-self._max_log_lr))
        half = float(msprt_halfwidth(variance, self.tau, self.alpha))
        self._lower = max(self._lower, diff - half)
        self._upper = min(self._upper, diff + half)
        return self

    # -- state -----------------------------------------------------------------------------------------
    @property
    def n_control(self) -> int:
        return self._control.n

    @property
    def n_treatment(self) -> int:
        return self._treatment.n

    @property
    def effect(self) -> float | None:
        """Current mean(treatment) - mean(control), None before both arms have data."""
        if self._control.n == 0 or self._treatment.n == 0:
            return None
        return self._treatment.mean - self._control.mean

    @property
    def variance(self) -> float | None:
        """V = var_c / n_c + var_t / n_t, or None during the burn-in."""
        if min(self._control.n, self._treatment.n) < self.burn_in:
            return None
        if self.sd is not None:
            var_c = var_t = self.sd**2
        else:
            var_c, var_t = self._control.var(), self._treatment.var()
        return var_c / self._control.n + var_t / self._treatment.n

    @property
    def statistic(self) -> float:
        """log Lambda at the last evaluation (-inf before the first)."""
        return self._log_lr

    @property
    def p_value(self) -> float:
        """Always-valid p-value: min over all evaluations of 1 / Lambda, capped at 1."""
        return self._p_value

    @property
    def rejected(self) -> bool:
        return self._p_value <= self.alpha

    @property
    def decision(self) -> str:
        """The decision so far: "reject" (stop, the arms differ) once the always-valid p-value is <= alpha,
        else "continue"."""
        return "reject" if self.rejected else "continue"

    def confidence_sequence(self) -> tuple[float, float]:
        """The (1 - alpha) always-valid interval for mean_t - mean_c (running intersection)."""
        return (self._lower, self._upper)

    def result(self) -> SequentialResult:
        ci = self.confidence_sequence()
        effect = self.effect
        level = f"{1 - self.alpha:.0%}"
        shown = "n/a" if effect is None else f"{effect:+.4g}"
        figures = (
            f"effect {shown}, {level} confidence sequence {_interval(ci)}, always-valid p = {_fmt_p(self.p_value)} "
            f"after {self.n_control:,} + {self.n_treatment:,} units"
        )
        if self.rejected:
            direction = "above" if ci[0] > self.theta0 else "below"
            verdict = (
                f"Stop: the difference is {direction} {_fmt(self.theta0)} ({figures}). Valid however often the "
                "results were checked."
            )
        elif self.variance is None:
            verdict = f"Continue: burn-in, {self.burn_in} units per arm are needed before any decision ({figures})."
        else:
            verdict = f"Continue: no difference shown yet ({figures}); checking again later keeps the error rate."
        assumptions = [
            "units are independent; outcomes roughly normal in their means (CLT)",
            "known variance" if self.sd is not None else "plug-in sample variances (approximate in small samples)",
            "arms grow in a roughly fixed ratio between updates (exact martingale for a fixed ratio)",
            f"normal mixing distribution of the effect with sd tau = {self.tau:g}",
        ]
        return SequentialResult(
            effect=effect,
            statistic=self.statistic,
            p_value=self.p_value,
            ci=ci,
            decision=self.decision,
            verdict=verdict,
            n_control=self.n_control,
            n_treatment=self.n_treatment,
            variance=self.variance,
            tau=self.tau,
            alpha=self.alpha,
            theta0=self.theta0,
            assumptions=assumptions,
        )

    def to_dict(self) -> dict[str, Any]:
        return self.result().to_dict()
