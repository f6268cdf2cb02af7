"""Uplift metrics, written out by hand (no scikit-uplift at run time), on held-out rows.

Curves rank rows by predicted uplift (descending, stable), and evaluate at every distinct score:

- Qini curve: Q(k) = Y_T(k) - Y_C(k)·N_T(k)/N_C(k), with Y_a(k) the summed outcome and N_a(k) the count
  of arm a among the top k rows.
- Uplift curve: U(k) = (Y_T(k)/N_T(k) - Y_C(k)/N_C(k))·k.
- Qini coefficient / AUUC: (area under the model curve - area under the random line) divided by
  (area under the perfect curve - area under the random line), trapezoid rule — the definitions of
  scikit-uplift's ``qini_auc_score`` (negative_effect=True) and ``uplift_auc_score``, which they match on
  binary outcomes. For continuous outcomes the same formulas are used; the perfect ordering is then
  "treated rows by outcome descending, control rows by outcome ascending" for both curves.

Policy value (inverse-propensity weighting, valid in a randomized experiment with known P(T=1) = p):
V(pi) = mean( Y · 1[T = pi(x)] / P(T = pi(x)) ). Intervals are percentile bootstraps over rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nextbest.results import Result
from nextbest.stats import percentile_interval


def _trapezoid(x: np.ndarray, y: np.ndarray) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))


def _cumulative(y_true, uplift, treatment):
    y = np.asarray(y_true, float)
    score = np.asarray(uplift, float)
    t = np.asarray(treatment).astype(float)
    order = np.argsort(score, kind="mergesort")[::-1]
    y, score, t = y[order], score[order], t[order]
    cut = np.r_[np.flatnonzero(np.diff(score)), score.size - 1]
    n_all = (cut + 1).astype(float)
    n_t = np.cumsum(t)[cut]
    n_c = n_all - n_t
    y_t = np.cumsum(y * t)[cut]
    y_c = np.cumsum(y * (1 - t))[cut]
    return n_all, n_t, n_c, y_t, y_c


def _start_at_origin(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if x.size == 0 or x[0] != 0 or y[0] != 0:
        x, y = np.r_[0.0, x], np.r_[0.0, y]
    return x, y


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a, dtype=float), where=b != 0)


def qini_curve(y_true, uplift, treatment) -> tuple[np.ndarray, np.ndarray]:
    """Points (number targeted, Qini value) of the Qini curve, starting at (0, 0)."""
    n_all, n_t, n_c, y_t, y_c = _cumulative(y_true, uplift, treatment)
    return _start_at_origin(n_all, y_t - y_c * _safe_div(n_t, n_c))


def uplift_curve(y_true, uplift, treatment) -> tuple[np.ndarray, np.ndarray]:
    """Points (number targeted, uplift × number targeted) of the uplift curve, starting at (0, 0)."""
    n_all, n_t, n_c, y_t, y_c = _cumulative(y_true, uplift, treatment)
    return _start_at_origin(n_all, (_safe_div(y_t, n_t) - _safe_div(y_c, n_c)) * n_all)


def _perfect_score(y_true, treatment, curve: str) -> np.ndarray:
    y, t = np.asarray(y_true, float), np.asarray(treatment).astype(float)
    binary = bool(np.isin(y, (0.0, 1.0)).all())
    if curve == "uplift" and binary:
        control_responders = np.sum((y == 1) & (t == 0))
        treated_non_responders = np.sum((y == 0) & (t == 1))
        summand = y if control_responders > treated_non_responders else t
        return 2.0 * (y == t) + summand
    return y * t - y * (1 - t)


def _normalized_area(curve, y_true, uplift, treatment, kind: str) -> float:
    x_actual, y_actual = curve(y_true, uplift, treatment)
    x_perfect, y_perfect = curve(y_true, _perfect_score(y_true, treatment, kind), treatment)
    baseline = _trapezoid(np.array([0.0, x_perfect[-1]]), np.array([0.0, y_perfect[-1]]))
    perfect = _trapezoid(x_perfect, y_perfect) - baseline
    actual = _trapezoid(x_actual, y_actual) - baseline
    return float(actual / perfect) if perfect != 0 else float("nan")


def qini_auc_score(y_true, uplift, treatment) -> float:
    """Qini coefficient: normalized area between the Qini curve and the random line (perfect = 1)."""
    return _normalized_area(qini_curve, y_true, uplift, treatment, "qini")


def uplift_auc_score(y_true, uplift, treatment) -> float:
    """AUUC: normalized area between the uplift curve and the random line (perfect = 1)."""
    return _normalized_area(uplift_curve, y_true, uplift, treatment, "uplift")


def curve_on_grid(x: np.ndarray, y: np.ndarray, points: int = 101) -> tuple[list[float], list[float]]:
    """A curve resampled at `points` evenly spaced shares targeted (0..1), for JSON and figures."""
    share = np.linspace(0.0, 1.0, points)
    return share.tolist(), np.interp(share * x[-1], x, y).tolist()


def ipw_contributions(y, t, treat, propensity: float) -> np.ndarray:
    """Per-row terms Y·1[T = pi(x)]/P(T = pi(x)); their mean is the IPW value of the policy ``treat``."""
    y, t, treat = np.asarray(y, float), np.asarray(t).astype(bool), np.asarray(treat).astype(bool)
    match = t == treat
    prob = np.where(treat, propensity, 1.0 - propensity)
    return np.where(match, y / prob, 0.0)


@dataclass(frozen=True)
class Economics:
    """What an outcome unit is worth and what treating one customer costs: net = value · Y − cost · 1[treated].

    The defaults (value 1, cost 0) make the net value the outcome itself."""

    outcome_value: float = 1.0
    treatment_cost: float = 0.0


def net_contributions(y, t, treat, propensity: float, economics: Economics = Economics()) -> np.ndarray:
    """Per-row terms of the IPW net value: ``value · Y·1[T = pi(x)]/P(T = pi(x)) − cost · 1[pi(x) = treat]``.

    The cost is paid for every customer the policy treats, whatever the logged arm, so it needs no weighting."""
    terms = ipw_contributions(y, t, treat, propensity) * economics.outcome_value
    return terms - economics.treatment_cost * np.asarray(treat).astype(float)


def policy_value(y, t, treat, propensity: float, economics: Economics = Economics()) -> float:
    """IPW net value per customer of the policy that treats the rows where ``treat`` is True."""
    return float(net_contributions(y, t, treat, propensity, economics).mean())


def bootstrap_indices(n: int, replicates: int, seed: int = 0) -> np.ndarray:
    """A (replicates × n) matrix of row indices drawn with replacement; shared so intervals are paired."""
    return np.random.default_rng(seed).integers(0, n, size=(replicates, n))


class BootstrapMean(Result):
    """A mean with its percentile bootstrap interval [low, high]."""

    estimate: float
    ci: list[float]


def bootstrap_mean(values: np.ndarray, indices: np.ndarray, level: float = 0.95) -> BootstrapMean:
    """Mean of ``values`` with a percentile bootstrap interval over the given resampling indices."""
    values = np.asarray(values, float)
    draws = values[indices].mean(axis=1) if len(indices) else np.array([values.mean()])
    return BootstrapMean(estimate=float(values.mean()), ci=percentile_interval(draws, level))


def top_share_policy(scores: np.ndarray, share: float) -> np.ndarray:
    """Treat the top ``share`` of rows by score (ties broken by position, stable)."""
    scores = np.asarray(scores, float)
    k = int(round(share * scores.size))
    treat = np.zeros(scores.size, dtype=bool)
    treat[np.argsort(-scores, kind="mergesort")[:k]] = True
    return treat


def policy_value_curve(y, t, scores, propensity: float, shares, economics: Economics = Economics()) -> list[float]:
    """IPW net value of "treat the top-s share by score" for each share s."""
    return [policy_value(y, t, top_share_policy(scores, s), propensity, economics) for s in shares]
