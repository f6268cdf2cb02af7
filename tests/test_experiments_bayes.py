"""Bayesian analysis: the beta-binomial chance to beat control against its exact sum, the normal model's closed
forms against simulation, credible intervals that cover the truth under the model, and refused input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import betaln

from nextbest.experiments.bayes import bayes_means, bayes_proportions
from nextbest.experiments.design import InvalidParameter
from nextbest.experiments.simulation import credible_coverage_binary, credible_coverage_means


def exact_chance_to_beat(a_c: int, b_c: int, a_t: int, b_t: int) -> float:
    """P(p_t > p_c) for p_c ~ Beta(a_c, b_c), p_t ~ Beta(a_t, b_t), integer a_t (Evan Miller's sum)."""
    i = np.arange(a_t)
    terms = betaln(a_c + i, b_c + b_t) - np.log(b_t + i) - betaln(1 + i, b_t) - betaln(a_c, b_c)
    return float(np.exp(terms).sum())


@pytest.mark.parametrize(("k_c", "n_c", "k_t", "n_t"), [(40, 1000, 55, 1000), (3, 50, 9, 60), (120, 800, 100, 800)])
def test_the_chance_to_beat_control_matches_the_exact_sum(k_c: int, n_c: int, k_t: int, n_t: int) -> None:
    result = bayes_proportions(k_c, n_c, k_t, n_t, draws=200_000, seed=3)
    exact = exact_chance_to_beat(1 + k_c, 1 + n_c - k_c, 1 + k_t, 1 + n_t - k_t)
    assert result.chance_to_beat_control == pytest.approx(exact, abs=0.004)
    low, high = result.credible_interval
    assert low < result.effect < high and result.expected_loss >= 0 and result.expected_loss_control >= 0
    # E[max(d, 0)] - E[max(-d, 0)] = E[d]
    assert result.expected_loss_control - result.expected_loss == pytest.approx(result.effect, abs=1e-12)


def test_the_normal_model_closed_forms_match_simulation() -> None:
    result = bayes_means(10.0, 225.0, 5000, 10.4, 200.0, 4000)
    mu, sigma = 0.4, np.sqrt(225 / 5000 + 200 / 4000)
    draws = np.random.default_rng(0).normal(mu, sigma, 2_000_000)
    assert result.chance_to_beat_control == pytest.approx((draws > 0).mean(), abs=0.002)
    assert result.expected_loss == pytest.approx(np.maximum(-draws, 0).mean(), rel=0.02)
    assert result.expected_loss_control == pytest.approx(np.maximum(draws, 0).mean(), rel=0.01)
    low, high = result.credible_interval
    assert (low, high) == pytest.approx(tuple(np.quantile(draws, [0.025, 0.975])), abs=0.003)


def test_credible_intervals_cover_the_truth_under_the_model() -> None:
    assert 0.93 <= credible_coverage_binary(600, 200, draws=4000, seed=5) <= 0.97
    assert 0.94 <= credible_coverage_means(4000, 300, seed=5) <= 0.96


def test_bad_input_is_refused_with_a_message() -> None:
    with pytest.raises(InvalidParameter, match="treatment"):
        bayes_proportions(5, 100, 120, 100)
    with pytest.raises(InvalidParameter, match="prior"):
        bayes_proportions(5, 100, 6, 100, prior=(0.0, 1.0))
    with pytest.raises(InvalidParameter, match="zero variance"):
        bayes_means(1.0, 0.0, 10, 1.0, 0.0, 10)
