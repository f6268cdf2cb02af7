"""Simulation of many experiments, to verify error rates instead of assuming them.

The Welch checks (A/A, power, sequential, several metrics) run no Python loop over experiments. Two ways to draw
normal outcomes (mean ``baseline``, plus ``effect`` in
treatment, standard deviation ``sd``):

* ``method="sufficient"`` (default): draw each arm's sufficient statistics directly, which is exactly
  equivalent in distribution to drawing every unit: ``mean ~ N(mu, sd^2 / n)`` and, independently,
  ``(n - 1) s^2 / sd^2 ~ chi2(n - 1)``. Cost independent of n.
* ``method="draws"``: draw every unit (``n_experiments x n`` standard normals in chunks of about
  ``chunk_values`` numbers), then reduce to means and variances per row.

Welch's t-test is then applied to all rows at once. Same seed (and chunk size), same numbers.

The checks of the other analyses (binary power, delta-method and credible-interval coverage) call the analysis a
user runs once per experiment, so that they test that very code.

Rates come with their binomial standard error ``sqrt(r (1 - r) / n_experiments)`` and a 95 % Wilson interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from scipy import special

from nextbest.experiments.analysis import _plain, welch_from_moments
from nextbest.experiments.bayes import bayes_means, bayes_proportions
from nextbest.experiments.design import (
    InvalidParameter,
    _check_ratio,
    _check_sd,
    _number,
    check_alpha,
    check_alternative,
)
from nextbest.experiments.design import power as analytic_power
from nextbest.experiments.sequential import msprt_path
from nextbest.stats import proportion_interval


@dataclass(frozen=True)
class SimulationResult:
    """Per-experiment arrays of a simulation: p-values, effects, t statistics, Welch df, rejections."""

    p_values: np.ndarray
    effects: np.ndarray
    statistics: np.ndarray
    df: np.ndarray
    rejected: np.ndarray
    alpha: float
    alternative: str
    n_control: int
    n_treatment: int
    effect: float
    sd: float
    method: str

    @property
    def rejection_rate(self) -> float:
        return float(self.rejected.mean())

    @property
    def decisions(self) -> np.ndarray:
        """The decision of each experiment: "reject" or "keep" (H0)."""
        return np.where(self.rejected, "reject", "keep")


@dataclass(frozen=True)
class RateEstimate:
    """A simulated rate with its binomial standard error and 95 % Wilson interval."""

    rate: float
    n_experiments: int
    standard_error: float
    ci: tuple[float, float]
    expected: float | None
    description: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}


def _rate(hits: np.ndarray, expected: float | None, description: str, **details: Any) -> RateEstimate:
    n = int(hits.size)
    rate = float(hits.mean())
    return RateEstimate(
        rate=rate,
        n_experiments=n,
        standard_error=math.sqrt(rate * (1 - rate) / n),
        ci=proportion_interval(int(np.count_nonzero(hits)), n),
        expected=expected,
        description=description,
        details=details,
    )


def _count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or int(value) != value or value < minimum:
        raise InvalidParameter(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return int(value)


def _arm_moments(
    rng: np.random.Generator, n_experiments: int, n: int, method: str, chunk_values: int
) -> tuple[np.ndarray, np.ndarray]:
    """Means and variances (ddof 1) of ``n`` standard normals, for each of ``n_experiments`` rows."""
    if method == "sufficient":
        means = rng.standard_normal(n_experiments) / math.sqrt(n)
        variances = rng.chisquare(n - 1, n_experiments) / (n - 1)
        return means, variances
    means = np.empty(n_experiments)
    variances = np.empty(n_experiments)
    rows = max(1, chunk_values // n)
    for start in range(0, n_experiments, rows):
        stop = min(n_experiments, start + rows)
        z = rng.standard_normal((stop - start, n))
        sums = z.sum(axis=1)
        squares = np.einsum("ij,ij->i", z, z)
        means[start:stop] = sums / n
        variances[start:stop] = (squares - sums * sums / n) / (n - 1)
    return means, variances


def simulate_experiments(
    n_experiments: int,
    n_per_arm: int,
    effect: float = 0.0,
    sd: float = 1.0,
    seed: int | None = 0,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    ratio: float = 1.0,
    baseline: float = 0.0,
    method: str = "sufficient",
    chunk_values: int = 4_000_000,
) -> SimulationResult:
    """Simulate ``n_experiments`` two-arm experiments with normal outcomes (``n_per_arm`` control units,
    ``round(ratio * n_per_arm)`` treatment units, true difference ``effect``) and analyze each with Welch's
    t-test, all vectorized. ``method`` "sufficient" (exact, fast) or "draws" (every unit drawn)."""
    n_experiments = _count("n_experiments", n_experiments, 1)
    n_c = _count("n_per_arm", n_per_arm, 2)
    ratio = _check_ratio(ratio)
    n_t = max(2, round(ratio * n_c))
    effect = _number("effect", effect)
    sd = _check_sd(sd)
    baseline = _number("baseline", baseline)
    alpha = check_alpha(alpha)
    alternative = check_alternative(alternative)
    if method not in ("sufficient", "draws"):
        raise InvalidParameter(f"method must be 'sufficient' or 'draws', got {method!r}")
    rng = np.random.default_rng(seed)
    mean_c, var_c = _arm_moments(rng, n_experiments, n_c, method, chunk_values)
    mean_t, var_t = _arm_moments(rng, n_experiments, n_t, method, chunk_values)
    mean_c = baseline + sd * mean_c
    mean_t = baseline + effect + sd * mean_t
    var_c = sd * sd * var_c
    var_t = sd * sd * var_t
    effects, _, statistics, df, p_values = welch_from_moments(mean_c, var_c, n_c, mean_t, var_t, n_t, alternative)
    return SimulationResult(
        p_values=p_values,
        effects=effects,
        statistics=statistics,
        df=df,
        rejected=p_values < alpha,
        alpha=alpha,
        alternative=alternative,
        n_control=n_c,
        n_treatment=n_t,
        effect=effect,
        sd=sd,
        method=method,
    )


def aa_false_positive_rate(
    n_experiments: int = 10_000,
    n_per_arm: int = 1_000,
    sd: float = 1.0,
    alpha: float = 0.05,
    seed: int | None = 0,
    alternative: str = "two-sided",
    method: str = "sufficient",
) -> RateEstimate:
    """Share of A/A experiments (no true difference) that Welch's test declares significant; expected = alpha."""
    sim = simulate_experiments(n_experiments, n_per_arm, 0.0, sd, seed, alpha, alternative, method=method)
    return _rate(sim.rejected, alpha, f"A/A false-positive rate at alpha {alpha:g}, n = {n_per_arm:,} per arm",
                 n_per_arm=n_per_arm, method=method, seed=seed)  # fmt: skip


def power_at(
    n_per_arm: int,
    effect: float,
    sd: float,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    ratio: float = 1.0,
    n_experiments: int = 10_000,
    seed: int | None = 0,
    method: str = "sufficient",
) -> RateEstimate:
    """Simulated power: share of experiments with true difference ``effect`` that reject; ``expected`` is the
    analytic t-test power of :func:`nextbest.experiments.power` for the same design."""
    sim = simulate_experiments(n_experiments, n_per_arm, effect, sd, seed, alpha, alternative, ratio, method=method)
    hits = sim.rejected  # as the analytic power: two-sided rejections in either direction count
    right_way = sim.rejected & (sim.effects < 0 if effect < 0 else sim.effects > 0)
    expected = analytic_power(n_per_arm, effect, sd, alpha, alternative, sim.n_treatment / sim.n_control)
    return _rate(hits, expected, f"simulated power for effect {effect:g}, sd {sd:g}, n = {n_per_arm:,} per arm",
                 n_per_arm=n_per_arm, effect=effect, sd=sd, method=method, seed=seed,
                 rejections_in_true_direction=float(right_way.mean()))  # fmt: skip


def sequential_false_positive_rate(
    n_experiments: int = 10_000,
    max_n_per_arm: int = 7_210,
    tau: float = 0.05,
    check_every: int = 100,
    alpha: float = 0.05,
    sd: float = 1.0,
    known_variance: bool = False,
    burn_in: int | None = None,
    effect: float = 0.0,
    seed: int | None = 0,
) -> RateEstimate:
    """Share of experiments that :class:`~nextbest.experiments.MixtureSPRT` ever rejects when checked after
    every ``check_every`` units per arm up to ``max_n_per_arm`` (``effect`` 0: the false-positive rate, which
    must stay <= alpha). ``tau`` is in outcome units (default 0.05 for sd 1). Arms grow in blocks of
    ``check_every``; each block's sum and sum of squared deviations are drawn exactly (normal and chi-square),
    cumulated, and the mSPRT path evaluated on all experiments and checks at once. ``burn_in``: as in the class
    (default 100 units per arm with plug-in variances, 1 with ``known_variance``)."""
    n_experiments = _count("n_experiments", n_experiments, 1)
    horizon = _count("max_n_per_arm", max_n_per_arm, 2)
    check_every = _count("check_every", check_every, 1)
    alpha = check_alpha(alpha)
    sd = _check_sd(sd)
    tau = _number("tau", tau)
    if tau <= 0:
        raise InvalidParameter(f"tau must be > 0, got {tau!r}")
    effect = _number("effect", effect)
    burn = (1 if known_variance else 100) if burn_in is None else _count("burn_in", burn_in, 1)
    sizes = np.full(horizon // check_every, check_every)
    if horizon % check_every:
        sizes = np.append(sizes, horizon % check_every)
    n = np.cumsum(sizes)
    rng = np.random.default_rng(seed)

    def arm(shift: float) -> tuple[np.ndarray, np.ndarray]:
        block_means = shift + sd * rng.standard_normal((n_experiments, sizes.size)) / np.sqrt(sizes)
        block_ss = sd * sd * rng.chisquare(np.maximum(sizes - 1, 1), (n_experiments, sizes.size))
        block_ss = np.where(sizes > 1, block_ss, 0.0)
        sums = np.cumsum(block_means * sizes, axis=1)
        squares = np.cumsum(block_ss + sizes * block_means**2, axis=1)
        means = sums / n
        with np.errstate(divide="ignore", invalid="ignore"):
            variances = (squares - sums * means) / (n - 1)
        return means, variances

    mean_c, var_c = arm(0.0)
    mean_t, var_t = arm(effect)
    if known_variance:
        var_c = var_t = np.full_like(mean_c, sd * sd)
    variance = (var_c + var_t) / n
    variance = np.where(n >= burn, variance, np.nan)
    p_values, _, _ = msprt_path(mean_t - mean_c, variance, tau, alpha)
    rejected_at = p_values <= alpha
    ever = rejected_at.any(axis=1)
    return _rate(
        ever,
        None,
        f"mSPRT rejection rate, checked every {check_every} units per arm up to {horizon:,} per arm "
        f"(tau {tau:g}, {'known' if known_variance else 'plug-in'} variance, true effect {effect:g})",
        checks=int(sizes.size),
        max_n_per_arm=horizon,
        check_every=check_every,
        tau=tau,
        sd=sd,
        effect=effect,
        alpha=alpha,
        known_variance=known_variance,
        burn_in=burn,
        seed=seed,
        final_rejection_rate_single_look=float(rejected_at[:, -1].mean()),
    )


def srm_detection(
    n_total: int = 20_000,
    served: Sequence[float] = (0.52, 0.48),
    expected: Sequence[float] = (0.5, 0.5),
    n_experiments: int = 10_000,
    threshold: float = 0.001,
    seed: int | None = 0,
) -> RateEstimate:
    """Share of experiments whose sample-ratio check flags a mismatch when units are served with shares
    ``served`` but ``expected`` was configured (equal shares: the check's false-alarm rate). ``details`` also
    gives the p-value at exactly the served shares."""
    n_total = _count("n_total", n_total, 2)
    n_experiments = _count("n_experiments", n_experiments, 1)
    served_p = np.asarray(served, dtype=np.float64)
    expected_p = np.asarray(expected, dtype=np.float64)
    if served_p.shape != expected_p.shape or served_p.size < 2 or (served_p < 0).any() or (expected_p <= 0).any():
        raise InvalidParameter("served and expected must be shares of the same arms (expected all positive)")
    served_p, expected_p = served_p / served_p.sum(), expected_p / expected_p.sum()
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n_total, served_p, size=n_experiments)
    e = n_total * expected_p
    chi2 = np.sum((counts - e) ** 2 / e, axis=1)
    p_values = special.chdtrc(served_p.size - 1, chi2)
    at_shares = float(special.chdtrc(served_p.size - 1, np.sum((n_total * served_p - e) ** 2 / e)))
    return _rate(
        p_values < threshold,
        None,
        f"SRM flag rate at p < {threshold:g}: served {served_p.round(4).tolist()} vs expected "
        f"{expected_p.round(4).tolist()}, n = {n_total:,}",
        p_value_at_served_shares=at_shares,
        median_p_value=float(np.median(p_values)),
        threshold=threshold,
        n_total=n_total,
        seed=seed,
    )


def family_false_positive_rate(
    n_experiments: int = 10_000,
    n: int = 1_000,
    metrics: int = 5,
    correlation: float = 0.5,
    alpha: float = 0.05,
    corrections: Sequence[str] = ("none", "holm", "bh"),
    seed: int | None = 0,
    chunk_values: int = 20_000_000,
) -> dict[str, RateEstimate]:
    """Family-wise false-positive rate of ``metrics`` secondary metrics, each tested two-sided by Welch, under the
    global null (A/A), per correction: the share of experiments with at least one adjusted p-value <= alpha.

    Every unit is drawn: ``metrics`` standard normal outcomes with pairwise ``correlation`` (a shared factor:
    ``sqrt(rho) Z_0 + sqrt(1 - rho) Z_k``), ``n`` units per arm; metrics of one unit move together as a
    customer's revenue, sessions and clicks do."""
    from nextbest.experiments.multiplicity import adjust_p_values

    n_experiments = _count("n_experiments", n_experiments, 1)
    n, metrics = _count("n", n, 2), _count("metrics", metrics, 1)
    if not 0 <= correlation < 1:
        raise InvalidParameter(f"correlation must be in [0, 1), got {correlation!r}")
    alpha = check_alpha(alpha)
    rng = np.random.default_rng(seed)
    p_values = np.empty((n_experiments, metrics))
    rows = max(1, chunk_values // (2 * n * (metrics + 1)))
    for start in range(0, n_experiments, rows):
        stop = min(n_experiments, start + rows)
        arms = []
        for _arm in range(2):
            z = rng.standard_normal((stop - start, n, metrics + 1))
            units = math.sqrt(correlation) * z[..., :1] + math.sqrt(1 - correlation) * z[..., 1:]
            arms.append((units.mean(axis=1), units.var(axis=1, ddof=1)))
        (mean_c, var_c), (mean_t, var_t) = arms
        p_values[start:stop] = welch_from_moments(mean_c, var_c, n, mean_t, var_t, n)[4]
    return {
        correction: _rate(
            (adjust_p_values(p_values, correction) <= alpha).any(axis=1), alpha,
            f"family-wise false-positive rate, {metrics} null metrics (correlation {correlation:g}), "
            f"n = {n:,} per arm, correction {correction}",
            metrics=metrics, correlation=correlation, n=n, seed=seed,
        )
        for correction in corrections
    }  # fmt: skip


def binary_power(
    n: int,
    baseline: float,
    treatment_rate: float,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    n_experiments: int = 10_000,
    seed: int | None = 0,
) -> RateEstimate:
    """Share of experiments in which :func:`~nextbest.experiments.analysis.analyze_proportions` (the analysis users
    run, called once per experiment) shows an improvement, with ``n`` units per arm converting at ``baseline`` and
    ``treatment_rate``: the power of the binary design, measured."""
    from nextbest.experiments.analysis import analyze_proportions

    n_experiments, n = _count("n_experiments", n_experiments, 1), _count("n", n, 2)
    rng = np.random.default_rng(seed)
    control = rng.binomial(n, baseline, n_experiments)
    treatment = rng.binomial(n, treatment_rate, n_experiments)
    hits = np.array([analyze_proportions(int(c), n, int(t), n, alpha, alternative).improves
                     for c, t in zip(control, treatment, strict=True)])  # fmt: skip
    return _rate(hits, None, f"power of the two-proportion z-test, {baseline:g} -> {treatment_rate:g}, n = {n:,} "
                 "per arm", n=n, baseline=baseline, treatment_rate=treatment_rate, seed=seed)  # fmt: skip


def ratio_coverage(
    n_experiments: int = 2_000,
    n: int = 1_000,
    alpha: float = 0.05,
    seed: int | None = 0,
) -> RateEstimate:
    """Share of delta-method intervals (:func:`~nextbest.experiments.ratio.analyze_ratio`) that hold the true
    difference of revenue per session (zero: both arms share one world), with customers of 1 to 6 sessions whose
    sessions share the customer's taste (gamma), so that sessions of a customer are not independent."""
    from nextbest.experiments.ratio import analyze_ratio

    n_experiments, n = _count("n_experiments", n_experiments, 1), _count("n", n, 2)
    rng = np.random.default_rng(seed)
    hits = np.empty(n_experiments, dtype=bool)
    for j in range(n_experiments):
        arms = []
        for _arm in range(2):
            sessions = rng.integers(1, 7, n).astype(np.float64)
            arms.append((rng.gamma(2.0, 4.0, n) * sessions + rng.normal(0.0, 2.0, n), sessions))
        low, high = analyze_ratio(arms[0][0], arms[0][1], arms[1][0], arms[1][1], alpha).ci
        hits[j] = low <= 0.0 <= high
    return _rate(hits, 1 - alpha, f"delta-method {1 - alpha:.0%} interval coverage, ratio of means, n = {n:,} "
                 "customers per arm", n=n, seed=seed)  # fmt: skip


def credible_coverage_binary(experiments: int, n: int, alpha: float = 0.05, draws: int = 4000,
                             seed: int = 0) -> float:  # fmt: skip
    """Share of beta-binomial credible intervals of δ that hold the true δ when the truth is drawn from the prior
    (uniform rates per arm) and each arm has `n` units: about 1 − α if the computation is right."""
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(experiments):
        p_c, p_t = rng.random(2)
        k_c, k_t = rng.binomial(n, p_c), rng.binomial(n, p_t)
        result = bayes_proportions(k_c, n, k_t, n, alpha, draws=draws, seed=int(rng.integers(2**31)))
        low, high = result.credible_interval
        hits += low <= p_t - p_c <= high
    return hits / experiments


def credible_coverage_means(experiments: int, n: int, sd: float = 15.0, alpha: float = 0.05, seed: int = 0) -> float:
    """Share of normal-model credible intervals of δ that hold the true δ (drawn N(0, sd² · 4 / n) per experiment,
    arms of `n` normal units with sd `sd`; sample means and variances drawn from their exact distributions)."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(0.0, 2 * sd / np.sqrt(n), experiments)
    means_c = rng.normal(0.0, sd / np.sqrt(n), experiments)
    means_t = rng.normal(truth, sd / np.sqrt(n))
    var_c, var_t = (sd**2 * rng.chisquare(n - 1, (2, experiments)) / (n - 1))
    hits = 0
    for j in range(experiments):
        low, high = bayes_means(means_c[j], var_c[j], n, means_t[j], var_t[j], n, alpha).credible_interval
        hits += low <= truth[j] <= high
    return hits / experiments
