"""Binary metrics in nextbest.experiments: the coherence of a design on a conversion rate and the two-proportion
analysis, against statsmodels."""

from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.stats import proportion as sm_proportion
from statsmodels.stats.power import NormalIndPower

from nextbest.experiments import (
    InvalidParameter,
    analyze,
    analyze_proportions,
    power_binary,
    sample_size_binary,
    validate_design_binary,
)


@pytest.mark.parametrize(("baseline", "effect", "alternative"),
                         [(0.0044, 0.0056, "two-sided"), (0.2, 0.1, "larger"), (0.3, -0.05, "smaller"),
                          (0.5, -0.2, "two-sided")])  # fmt: skip
def test_a_binary_design_is_coherent_at_the_size_of_two_proportions(baseline, effect, alternative) -> None:
    n = int(sample_size_binary(baseline, effect, alternative=alternative, relative=False))
    h = sm_proportion.proportion_effectsize(baseline + effect, baseline)
    expected = NormalIndPower().solve_power(abs(h), alpha=0.05, power=0.8, ratio=1.0,
                                            alternative="two-sided" if alternative == "two-sided" else "larger")
    assert n == math.ceil(expected - 1e-9)
    enough = validate_design_binary(0.05, 0.8, baseline, effect, n, alternative)
    assert enough.coherent and enough.required_sample_size == n and enough.achieved_power >= 0.8
    assert enough.sd == pytest.approx(math.sqrt(baseline * (1 - baseline)))
    assert enough.treatment_rate == pytest.approx(baseline + effect) and enough.message.startswith("coherent")
    short = validate_design_binary(0.05, 0.8, baseline, effect, n - 1, alternative)
    assert not short.coherent and f"raise it to {n:,} per arm" in short.message
    assert short.achieved_power == pytest.approx(power_binary(n - 1, baseline, effect, alternative=alternative,
                                                              relative=False))  # fmt: skip
    # the detectable difference at n - 1 is beyond the effect, in its direction, and is detected with the power
    mde = short.minimum_detectable_effect
    assert abs(mde) > abs(effect) and math.copysign(1, mde) == math.copysign(1, effect)
    assert power_binary(n - 1, baseline, mde, alternative=alternative, relative=False) == pytest.approx(0.8, abs=1e-6)


def test_a_binary_design_refuses_what_is_not_a_design() -> None:
    for args, message in (((0.5, 0.6, 100), "treatment rate of 1.1, outside (0, 1)"),
                          ((0.0, 0.1, 100), "baseline rate must be in (0, 1)"),
                          ((0.2, 0.0, 100), "must be non-zero"),
                          ((0.2, 0.1, 1), "at least 2 per arm"),
                          ((0.2, 0.1, 10.5), "whole number")):  # fmt: skip
        with pytest.raises(InvalidParameter, match=message.replace("(", r"\(").replace(")", r"\)")):
            validate_design_binary(0.05, 0.8, *args)
    with pytest.raises(InvalidParameter, match="alternative is 'larger'"):
        validate_design_binary(0.05, 0.8, 0.2, -0.1, 100, "larger")
    nothing = validate_design_binary(0.05, 0.8, 0.9, 0.09, 10)  # no rate below 1 is detectable with 10 per arm
    assert not nothing.coherent and math.isinf(nothing.minimum_detectable_effect)
    assert "accept an effect" not in nothing.message and "or a power of" in nothing.message


@pytest.mark.parametrize("alternative", ["two-sided", "larger", "smaller"])
def test_two_proportions_match_statsmodels_wald(alternative: str) -> None:
    x_c, n_c, x_t, n_t = 60, 400, 85, 410
    result = analyze_proportions(x_c, n_c, x_t, n_t, alpha=0.05, alternative=alternative, target_effect=0.02)
    expected = sm_proportion.test_proportions_2indep(x_t, n_t, x_c, n_c, method="wald", compare="diff",
                                                     alternative=alternative)  # fmt: skip
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    assert result.statistic == pytest.approx(expected.statistic, rel=1e-9)
    low, high = sm_proportion.confint_proportions_2indep(x_t, n_t, x_c, n_c, method="wald", compare="diff")
    assert result.ci_two_sided == pytest.approx((low, high), rel=1e-9)
    assert result.effect == pytest.approx(x_t / n_t - x_c / n_c) and result.method == "two-proportion z-test"
    if alternative == "larger":
        assert math.isinf(result.ci[1]) and result.ci[0] > low
    # the target is shown exactly when the reported interval lies beyond it
    beyond = result.ci[0] > 0.02 if alternative != "smaller" else result.ci[1] < 0.02
    assert result.improves_by_target == beyond


def test_two_proportions_agree_with_welch_on_zeros_and_ones_and_flag_small_counts() -> None:
    """On many units the z-test and Welch's t-test of the 0/1 outcomes tell the same story; with fewer than five
    conversions the assumptions say the approximation is rough; no variation at all is refused."""
    rng = np.random.default_rng(4)
    control, treatment = (rng.random(20_000) < 0.10).astype(float), (rng.random(20_000) < 0.11).astype(float)
    z = analyze_proportions(int(control.sum()), control.size, int(treatment.sum()), treatment.size)
    welch = analyze(control, treatment)
    assert z.effect == pytest.approx(welch.effect) and z.p_value == pytest.approx(welch.p_value, rel=1e-3)
    few = analyze_proportions(2, 500, 9, 500)
    assert any("fewer than 5" in line for line in few.assumptions)
    assert not any("fewer than 5" in line for line in z.assumptions)
    with pytest.raises(InvalidParameter, match="nothing to test"):
        analyze_proportions(0, 100, 0, 120)
    with pytest.raises(InvalidParameter, match="cannot exceed"):
        analyze_proportions(101, 100, 3, 100)
