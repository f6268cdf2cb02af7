"""The shared statistics home: normal-approximation intervals, checked against scipy and statsmodels."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from nextbest.stats import difference_interval, mean_interval, z_value


def test_z_value_is_the_normal_quantile() -> None:
    assert z_value(0.95) == pytest.approx(1.959963985, abs=1e-9)
    assert z_value(0.9) == pytest.approx(scipy_stats.norm.ppf(0.95))
    with pytest.raises(ValueError):
        z_value(1.0)


def test_mean_interval_matches_statsmodels_zconfint() -> None:
    from statsmodels.stats.weightstats import DescrStatsW

    values = np.random.default_rng(0).gamma(2.0, 3.0, 5000)
    interval = mean_interval(values)
    low, high = DescrStatsW(values).zconfint_mean(alpha=0.05)
    assert (interval.low, interval.high) == pytest.approx((low, high), rel=1e-12)
    assert interval.n == 5000 and interval.as_json()["ci"] == [interval.low, interval.high]
    single = mean_interval([3.0])
    assert single.low == single.high == 3.0 and single.se == 0.0
    with pytest.raises(ValueError):
        mean_interval([])


def test_difference_interval_covers_at_its_level() -> None:
    """Over 2,000 simulated pairs of samples the 95% interval of the difference covers the truth ~95% of the time."""
    rng = np.random.default_rng(1)
    covered = 0
    for _ in range(2000):
        a, b = rng.normal(1.0, 2.0, 200), rng.normal(0.7, 3.0, 300)
        d = difference_interval(mean_interval(a), mean_interval(b))
        covered += d.low <= 0.3 <= d.high
        assert d.mean == pytest.approx(a.mean() - b.mean())
    assert 0.935 <= covered / 2000 <= 0.965


def test_proportion_interval_is_wilsons() -> None:
    from statsmodels.stats.proportion import proportion_confint

    from nextbest.stats import proportion_interval

    for k, n in ((0, 50), (3, 50), (48, 50), (500, 10_000)):
        assert proportion_interval(k, n) == pytest.approx(proportion_confint(k, n, method="wilson"), abs=1e-12)
    low, high = proportion_interval(0, 10)
    assert low == 0.0 and 0 < high < 0.35  # stays inside [0, 1] where the normal interval would not
    with pytest.raises(ValueError):
        proportion_interval(11, 10)


def test_simulated_error_rates_carry_wilson_intervals() -> None:
    from nextbest.experiments.simulation import aa_false_positive_rate
    from nextbest.stats import proportion_interval

    estimate = aa_false_positive_rate(n_experiments=4_000, n_per_arm=200, seed=3)
    hits = round(estimate.rate * estimate.n_experiments)
    assert estimate.ci == proportion_interval(hits, 4_000)
    assert estimate.ci[0] < 0.05 < estimate.ci[1]  # the A/A rate is alpha, inside its interval
