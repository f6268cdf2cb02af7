"""Analysis (Welch, target test, CUPED, bootstrap, SRM) and the simulated error rates of the whole procedure.

Simulated rates use fixed seeds and smaller counts than the benchmark; each tolerance is 4 binomial standard
deviations of the rate, sqrt(p (1 - p) / n_experiments), around its target (false-alarm chance ~6e-5 each).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from nextbest.errors import NextbestError
from nextbest.experiments import (
    AnalysisResult,
    SRMResult,
    analyze,
    bootstrap_ci,
    minimum_detectable_effect,
    sample_size,
    srm_test,
)
from nextbest.experiments.simulation import (
    aa_false_positive_rate,
    power_at,
    simulate_experiments,
    srm_detection,
)


def _binomial_tolerance(p: float, n: int) -> float:
    return 4 * math.sqrt(p * (1 - p) / n)


@pytest.fixture(scope="module")
def revenue() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    return rng.normal(20, 15, 3000), rng.normal(20.9, 13, 2600)


# --- Welch ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alternative", ["two-sided", "larger", "smaller"])
def test_welch_matches_scipy(revenue, alternative: str) -> None:
    control, treatment = revenue
    ours = analyze(control, treatment, alternative=alternative)
    scipy_alt = {"two-sided": "two-sided", "larger": "greater", "smaller": "less"}[alternative]
    ref = stats.ttest_ind(treatment, control, equal_var=False, alternative=scipy_alt)
    assert isinstance(ours, AnalysisResult)
    assert ours.statistic == pytest.approx(ref.statistic, rel=1e-10)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-8)
    assert ours.df == pytest.approx(ref.df, rel=1e-10)
    low, high = ref.confidence_interval(0.95)
    assert ours.ci[0] == pytest.approx(low, rel=1e-9) if math.isfinite(low) else ours.ci[0] == -math.inf
    assert ours.ci[1] == pytest.approx(high, rel=1e-9) if math.isfinite(high) else ours.ci[1] == math.inf
    assert ours.effect == pytest.approx(treatment.mean() - control.mean())
    assert ours.relative_lift == pytest.approx(ours.effect / control.mean())
    assert (ours.n_control, ours.n_treatment, ours.method) == (3000, 2600, "welch")
    assert all(math.isfinite(v) for v in ours.ci_two_sided)
    assert ours.assumptions and ours.cuped_theta is None and ours.variance_reduction is None
    text = json.dumps(ours.to_dict(), allow_nan=False)
    assert '"verdict"' in text


def test_verdicts_and_target_test(revenue) -> None:
    control, treatment = revenue
    result = analyze(control, treatment, target_effect=0.5)
    assert result.improves and result.p_value < 0.05
    assert "is better than control" in result.verdict
    shifted = stats.ttest_ind(treatment - 0.5, control, equal_var=False, alternative="greater")
    assert result.target_p_value == pytest.approx(shifted.pvalue, rel=1e-8)
    # two-sided: the target test runs at alpha / 2, exactly "the CI's lower end is above the target"
    assert result.target_alpha == 0.025
    assert result.improves_by_target == (result.ci[0] > 0.5)
    high_target = analyze(control, treatment, target_effect=3.0)
    assert high_target.improves and not high_target.improves_by_target
    assert "not shown to be above the target +3" in high_target.verdict
    worse = analyze(treatment, control)
    assert not worse.improves and worse.p_value < 0.05 and "is worse than" in worse.verdict
    same = analyze(control, control + np.random.default_rng(0).normal(0, 1, control.size) * 1e-3)
    assert not same.improves and "No significant difference" in same.verdict
    lower_better = analyze(treatment, control, alternative="smaller", target_effect=-0.1)
    assert lower_better.improves and "lowers the metric" in lower_better.verdict
    assert lower_better.target_alpha == 0.05 and lower_better.improves_by_target == (lower_better.ci[1] < -0.1)
    labelled = analyze(control, treatment, labels=("original", "new"))
    assert labelled.verdict.startswith("new is better than original")


@pytest.mark.parametrize(
    ("args", "kwargs", "words"),
    [
        (([1.0], [1.0, 2.0]), {}, "at least 2 observations"),
        (([1.0, float("nan")], [1.0, 2.0]), {}, "missing or infinite"),
        (([3.0, 3.0], [3.0, 3.0]), {}, "constant in both arms"),
        (([1.0, 2.0], [1.0, 2.0]), {"alpha": 0.7}, "alpha"),
        (([1.0, 2.0], [1.0, 2.0]), {"alternative": "up"}, "alternative"),
        (([1.0, 2.0], [1.0, 2.0]), {"covariate_control": [1.0, 2.0]}, "both arms"),
        (([1.0, 2.0], [1.0, 2.0]), {"covariate_control": [1.0], "covariate_treatment": [1.0, 2.0]}, "length"),
        (([1.0, 2.0], [1.0, 2.0]), {"covariate_control": [1.0, 1.0], "covariate_treatment": [1.0, 1.0]}, "constant"),
    ],
)
def test_analyze_rejects_bad_inputs(args, kwargs, words) -> None:
    with pytest.raises(NextbestError) as info:
        analyze(*args, **kwargs)
    assert words in str(info.value)


# --- CUPED ---------------------------------------------------------------------------------------------


def _cuped_world(rng: np.random.Generator, n: int, effect: float, rho: float):
    """Pre-period X and outcome Y with corr(X, Y) = rho, both sd 15 around 50; treatment adds ``effect``."""
    x = rng.normal(50, 15, (2, n))
    noise = rng.normal(0, 15, (2, n))
    y = 50 + rho * (x - 50) + math.sqrt(1 - rho**2) * noise
    y[1] += effect
    return y[0], y[1], x[0], x[1]


def test_cuped_formula_matches_manual_adjustment() -> None:
    y_c, y_t, x_c, x_t = _cuped_world(np.random.default_rng(3), 2000, 0.7, 0.6)
    result = analyze(y_c, y_t, covariate_control=x_c, covariate_treatment=x_t)
    sxy = np.sum((x_c - x_c.mean()) * (y_c - y_c.mean())) + np.sum((x_t - x_t.mean()) * (y_t - y_t.mean()))
    sxx = np.sum((x_c - x_c.mean()) ** 2) + np.sum((x_t - x_t.mean()) ** 2)
    theta = sxy / sxx
    grand = np.concatenate([x_c, x_t]).mean()
    adj_c, adj_t = y_c - theta * (x_c - grand), y_t - theta * (x_t - grand)
    ref = stats.ttest_ind(adj_t, adj_c, equal_var=False)
    assert result.method == "welch+cuped"
    assert result.cuped_theta == pytest.approx(theta, rel=1e-10)
    assert result.effect == pytest.approx(adj_t.mean() - adj_c.mean(), rel=1e-10)
    assert result.statistic == pytest.approx(ref.statistic, rel=1e-9)
    assert result.p_value == pytest.approx(ref.pvalue, rel=1e-7)
    assert result.effect_unadjusted == pytest.approx(y_t.mean() - y_c.mean())
    raw = analyze(y_c, y_t)
    assert result.variance_reduction == pytest.approx(1 - (result.standard_error / raw.standard_error) ** 2)
    assert any("CUPED" in a for a in result.assumptions)


def test_cuped_is_unbiased_and_reduces_variance() -> None:
    rng = np.random.default_rng(11)
    effect, rho, reps = 0.7, 0.6, 300
    raw, adjusted, reductions = [], [], []
    for _ in range(reps):
        y_c, y_t, x_c, x_t = _cuped_world(rng, 1000, effect, rho)
        raw.append(analyze(y_c, y_t).effect)
        result = analyze(y_c, y_t, covariate_control=x_c, covariate_treatment=x_t)
        adjusted.append(result.effect)
        reductions.append(result.variance_reduction)
    raw, adjusted = np.array(raw), np.array(adjusted)
    sd_of_mean = adjusted.std(ddof=1) / math.sqrt(reps)
    assert abs(adjusted.mean() - effect) < 4 * sd_of_mean  # unbiased
    assert np.mean(reductions) == pytest.approx(rho**2, abs=0.03)  # ~ corr^2 = 0.36
    assert adjusted.var(ddof=1) / raw.var(ddof=1) == pytest.approx(1 - rho**2, abs=0.12)


# --- bootstrap -----------------------------------------------------------------------------------------


def test_bootstrap_ci_covers_on_skewed_revenue() -> None:
    rng = np.random.default_rng(5)
    sigma, mu = 1.0, 2.0
    true_mean = math.exp(mu + sigma**2 / 2)
    effect = 0.1 * true_mean
    covered = 0
    reps = 200
    for i in range(reps):
        control = rng.lognormal(mu, sigma, 300)
        treatment = rng.lognormal(mu, sigma, 300) * 1.1
        low, high = bootstrap_ci(control, treatment, n_boot=400, seed=i)
        covered += low <= effect <= high
    assert abs(covered / reps - 0.95) < _binomial_tolerance(0.95, reps) + 0.02  # percentile CI: slight under-cover


def test_bootstrap_agrees_with_welch_on_large_normal_samples(revenue) -> None:
    control, treatment = revenue
    boot = bootstrap_ci(control, treatment, n_boot=2000, seed=1)
    welch = analyze(control, treatment)
    assert boot.ci[0] == pytest.approx(welch.ci[0], abs=0.1) and boot.ci[1] == pytest.approx(welch.ci[1], abs=0.1)
    assert boot.standard_error == pytest.approx(welch.standard_error, rel=0.08)
    assert (
        bootstrap_ci(control, treatment, n_boot=200, seed=3).ci
        == bootstrap_ci(control, treatment, n_boot=200, seed=3).ci
    )
    json.dumps(boot.to_dict(), allow_nan=False)
    with pytest.raises(NextbestError, match="n_boot"):
        bootstrap_ci(control, treatment, n_boot=5)


# --- sample-ratio mismatch -----------------------------------------------------------------------------


def test_srm_flags_52_48_at_20000_and_not_50_50() -> None:
    broken = srm_test([10_400, 9_600], [0.5, 0.5])
    assert isinstance(broken, SRMResult)
    assert broken.flagged and broken.statistic == pytest.approx(32.0)
    assert broken.p_value == pytest.approx(stats.chisquare([10_400, 9_600]).pvalue, rel=1e-10)
    assert broken.p_value < 1e-7 and "Sample ratio mismatch" in broken.message
    fine = srm_test([10_000, 10_000])
    assert not fine.flagged and fine.p_value == pytest.approx(1.0) and "No sample ratio mismatch" in fine.message
    near = srm_test({"original": 10_080, "new": 9_920}, {"original": 1, "new": 1})
    assert not near.flagged and near.arms == ["original", "new"]
    assert srm_test([10_080, 9_920], threshold=0.5).flagged  # configurable threshold
    uneven = srm_test([6_000, 14_000], [0.3, 0.7])
    assert not uneven.flagged and uneven.expected_counts == pytest.approx([6000, 14000])
    json.dumps(broken.to_dict(), allow_nan=False)


@pytest.mark.parametrize(
    ("counts", "ratios", "words"),
    [([10], None, "at least two"), ([5, -1], None, "non-negative"), ([0, 0], None, "sum to 0"),
     ([5, 5], [1, 0], "positive"), ([5, 5], [1, 1, 1], "2 counts but 3")],
)  # fmt: skip
def test_srm_rejects_bad_inputs(counts, ratios, words) -> None:
    with pytest.raises(NextbestError) as info:
        srm_test(counts, ratios)
    assert words in str(info.value)


# --- simulated error rates (fixed seeds) ---------------------------------------------------------------


def test_aa_false_positive_rate_is_alpha() -> None:
    n = 2_000
    tolerance = _binomial_tolerance(0.05, n)  # 4 sd = 0.0195
    for method in ("sufficient", "draws"):
        rate = aa_false_positive_rate(n_experiments=n, n_per_arm=500, sd=15, seed=1, method=method)
        assert abs(rate.rate - 0.05) < tolerance, rate
        assert rate.ci[0] < rate.rate < rate.ci[1]


def test_power_at_the_designed_n_with_true_effect_equal_to_the_mde() -> None:
    n_arm = int(sample_size(0.7, 15))
    mde = minimum_detectable_effect(n_arm, 15)
    estimate = power_at(n_arm, mde, 15, n_experiments=2_000, seed=2)
    assert estimate.expected == pytest.approx(0.8, abs=1e-6)
    assert abs(estimate.rate - 0.8) < _binomial_tolerance(0.8, 2_000)  # 4 sd = 0.036


def test_simulation_is_vectorized_and_reproducible() -> None:
    first = simulate_experiments(500, 200, effect=0.5, sd=2.0, seed=9)
    again = simulate_experiments(500, 200, effect=0.5, sd=2.0, seed=9)
    assert first.p_values.shape == (500,) and np.array_equal(first.p_values, again.p_values)
    assert set(first.decisions.tolist()) <= {"reject", "keep"}
    # one row of the "draws" path equals scipy's Welch test on the same normals
    sim = simulate_experiments(3, 50, effect=1.0, sd=2.0, seed=4, method="draws", baseline=10.0)
    rng = np.random.default_rng(4)
    z_c, z_t = rng.standard_normal((3, 50)), rng.standard_normal((3, 50))
    ref = stats.ttest_ind(11.0 + 2.0 * z_t, 10.0 + 2.0 * z_c, axis=1, equal_var=False)
    assert np.allclose(sim.p_values, ref.pvalue, rtol=1e-8)


def test_srm_detection_rates() -> None:
    broken = srm_detection(20_000, (0.52, 0.48), (0.5, 0.5), n_experiments=2_000, seed=3)
    assert broken.rate > 0.95 and broken.details["p_value_at_served_shares"] < 1e-7
    fine = srm_detection(20_000, (0.5, 0.5), (0.5, 0.5), n_experiments=2_000, seed=3)
    assert fine.rate < 0.001 + _binomial_tolerance(0.001, 2_000)
