"""Several metrics per experiment: multiplicity corrections, ratio metrics, guardrails, the recommendation."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from nextbest.experiments import (
    Guardrail,
    InvalidParameter,
    MetricSamples,
    adjust_p_values,
    analyze,
    analyze_experiment,
    analyze_ratio,
)
from nextbest.experiments.ratio import ratio_arm


@pytest.mark.parametrize(("ours", "theirs"), [("holm", "holm"), ("bh", "fdr_bh")])
def test_corrections_agree_with_statsmodels(ours: str, theirs: str) -> None:
    rng = np.random.default_rng(7)
    for m in (1, 2, 3, 5, 12):
        for _ in range(8):  # statsmodels' Holm runs gc.collect() on every call (26 ms here)
            p = rng.random(m) ** 3
            if m > 2 and rng.random() < 0.3:
                p[1] = p[0]  # ties
            np.testing.assert_allclose(adjust_p_values(p, ours), multipletests(p, method=theirs)[1], rtol=1e-12)


def test_corrections_work_row_by_row_on_many_families() -> None:
    p = np.random.default_rng(1).random((200, 6))
    adjusted = adjust_p_values(p, "bh")
    for row in (0, 57, 199):
        np.testing.assert_allclose(adjusted[row], multipletests(p[row], method="fdr_bh")[1])
    np.testing.assert_array_equal(adjust_p_values(p, "none"), p)


def test_bad_correction_and_p_values_are_refused() -> None:
    with pytest.raises(InvalidParameter, match="holm, bh, none"):
        adjust_p_values([0.1], "bonferroni")
    with pytest.raises(InvalidParameter, match=r"\[0, 1\]"):
        adjust_p_values([0.1, 1.5], "holm")


def test_the_delta_method_is_the_variance_of_the_linearized_values() -> None:
    rng = np.random.default_rng(3)
    sessions = rng.poisson(2.0, 4000) + 1
    revenue = rng.gamma(2.0, 5.0, 4000) * sessions + rng.normal(0, 3, 4000)
    arm = ratio_arm(revenue, sessions.astype(float))
    linear = (revenue - arm.ratio * sessions) / sessions.mean()
    assert arm.ratio == pytest.approx(revenue.sum() / sessions.sum())
    assert arm.variance == pytest.approx(linear.var(ddof=1) / linear.size, rel=1e-10)


def test_a_ratio_with_unit_denominators_is_the_difference_in_means() -> None:
    rng = np.random.default_rng(4)
    y_c, y_t = rng.normal(10, 3, 3000), rng.normal(10.3, 3, 3000)
    ones = np.ones(3000)
    ratio = analyze_ratio(y_c, ones, y_t, ones)
    welch = analyze(y_c, y_t)
    assert ratio.effect == pytest.approx(welch.effect)
    assert ratio.standard_error == pytest.approx(welch.standard_error)
    assert ratio.method == "delta method (ratio of means)"


def test_delta_method_intervals_cover_the_true_ratio_difference() -> None:
    """Customers with 1-6 sessions and correlated revenue: the 95 % interval of R_t - R_c covers the truth
    (zero: both arms share one world) about 95 % of the time, where a naive per-session test would not."""
    from nextbest.experiments.simulation import ratio_coverage

    measured = ratio_coverage(400, 600, seed=11)  # the check ab_error_rates prints, smaller
    covered, runs = measured.rate * measured.n_experiments, measured.n_experiments
    assert 0.92 <= covered / runs <= 0.975


def test_bad_ratio_input_names_the_arm() -> None:
    with pytest.raises(InvalidParameter, match="treatment.*denominator is 0"):
        analyze_ratio([1, 2, 3], [1, 1, 1], [1, 2, 3], [0, 0, 0])
    with pytest.raises(InvalidParameter, match="differ in length"):
        analyze_ratio([1, 2, 3], [1, 1], [1, 2, 3], [1, 1, 1])


@pytest.mark.parametrize(("guard", "interval", "status"), [
    (Guardrail("decrease", 0.5), (-2.0, -0.6), "fails"),
    (Guardrail("decrease", 0.5), (-0.4, 0.3), "passes"),
    (Guardrail("decrease", 0.5), (-0.7, 0.3), "inconclusive"),
    (Guardrail("increase", 0.01), (0.012, 0.03), "fails"),
    (Guardrail("increase", 0.01), (-0.02, 0.009), "passes"),
    (Guardrail("increase", 0.0), (0.001, 0.02), "fails"),
])  # fmt: skip
def test_a_guardrail_fails_when_its_interval_excludes_the_allowed_harm(guard, interval, status) -> None:
    assert guard.status(interval) == status


def test_bad_guardrails_are_refused() -> None:
    with pytest.raises(InvalidParameter, match="increase' or 'decrease"):
        Guardrail("up", 0.1)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter, match=">= 0"):
        Guardrail("increase", -0.1)


def _world(seed: int = 0, n: int = 6000, lift: float = 1.0, bounce_t: float = 0.30):
    rng = np.random.default_rng(seed)
    sessions_c, sessions_t = rng.poisson(2, n) + 1.0, rng.poisson(2, n) + 1.0
    primary = MetricSamples("revenue", rng.gamma(2, 10, n), rng.gamma(2, 10, n) + lift)
    secondary = [
        MetricSamples("revenue_per_session", rng.gamma(2, 5, n) * sessions_c, rng.gamma(2, 5, n) * sessions_t,
                      sessions_c, sessions_t),
        MetricSamples("clicked", rng.binomial(1, 0.10, n), rng.binomial(1, 0.10, n)),
    ]  # fmt: skip
    bounced = MetricSamples("bounced", rng.binomial(1, 0.30, n), rng.binomial(1, bounce_t, n))
    return primary, secondary, [(bounced, Guardrail("increase", 0.01))]


def test_each_metric_is_analyzed_by_its_kind_and_the_secondaries_are_corrected() -> None:
    primary, secondary, guardrails = _world()
    result = analyze_experiment(primary, secondary, guardrails, correction="holm")
    assert [m.kind for m in result.metrics] == ["continuous", "ratio", "binary", "binary"]
    assert [m.role for m in result.metrics] == ["primary", "secondary", "secondary", "guardrail"]
    raw = [m.analysis.p_value for m in result.secondary]
    assert [m.p_value_adjusted for m in result.secondary] == pytest.approx(multipletests(raw, method="holm")[1])
    assert result.primary.analysis.improves and result.recommendation == "ship"
    assert result.guardrails[0].guardrail in ("passes", "inconclusive")
    assert "Holm" in result.summary


def test_a_failing_guardrail_stops_the_ship() -> None:
    primary, secondary, guardrails = _world(bounce_t=0.36)
    result = analyze_experiment(primary, secondary, guardrails)
    assert result.primary.analysis.improves
    assert result.guardrails[0].guardrail == "fails"
    assert result.recommendation == "do not ship"
    assert "bounced" in result.summary


def test_no_decision_without_a_significant_primary() -> None:
    primary, secondary, guardrails = _world(lift=0.0, seed=2)
    result = analyze_experiment(primary, secondary, guardrails)
    assert not result.primary.significant
    assert result.recommendation == "no decision"


def test_bayesian_companions_follow_the_kind() -> None:
    primary, secondary, guardrails = _world()
    result = analyze_experiment(primary, secondary, guardrails, bayesian=True)
    models = [m.bayesian.model for m in result.metrics]
    assert models == ["normal", "normal", "beta-binomial", "beta-binomial"]
    assert result.primary.bayesian.chance_to_beat_control > 0.97
    plain = analyze_experiment(primary, secondary, guardrails)
    assert all(m.bayesian is None for m in plain.metrics)
    assert result.to_dict()["primary"]["bayesian"]["model"] == "normal"


def test_metric_names_are_unique() -> None:
    primary, secondary, _ = _world()
    with pytest.raises(InvalidParameter, match="repeated: revenue"):
        analyze_experiment(primary, [MetricSamples("revenue", [1, 2], [2, 3])])


def test_simulated_family_wise_rates_fall_with_a_correction() -> None:
    from nextbest.experiments.simulation import family_false_positive_rate

    rates = family_false_positive_rate(3000, 200, 5, 0.3, seed=9)
    assert rates["none"].rate > 0.12  # five looks at noise: about 1 - 0.95^5 = 0.23 if independent
    assert rates["holm"].rate <= rates["bh"].rate <= 0.07
    assert rates["holm"].ci[0] < 0.05


def test_simulated_binary_power_matches_the_design() -> None:
    from nextbest.experiments import sample_size_binary
    from nextbest.experiments.simulation import binary_power

    n = int(sample_size_binary(0.2, 0.25, power=0.9))
    measured = binary_power(n, 0.2, 0.25, n_experiments=2000, seed=4)
    assert measured.ci[0] - 0.03 <= 0.9 <= measured.ci[1] + 0.03


def test_a_metric_without_variation_is_left_out_and_a_blind_guardrail_withholds_ship() -> None:
    primary, secondary, _ = _world()
    flat = MetricSamples("errors", np.zeros(100), np.zeros(100))
    result = analyze_experiment(primary, [*secondary, flat], [(MetricSamples("crashed", np.zeros(50), np.zeros(50)),
                                                              Guardrail("increase", 0.0))])  # fmt: skip
    left_out = result.secondary[-1]
    assert left_out.analysis is None and left_out.p_value_adjusted is None and "no variation" in left_out.error
    raw = [m.analysis.p_value for m in result.secondary[:-1]]
    assert [m.p_value_adjusted for m in result.secondary[:-1]] == pytest.approx(multipletests(raw, method="holm")[1])
    assert result.guardrails[0].guardrail is None and result.guardrails[0].error
    assert result.primary.analysis.improves and result.recommendation == "no decision"
    assert "crashed" in result.summary and result.to_dict()["guardrails"][0]["analysis"] is None
