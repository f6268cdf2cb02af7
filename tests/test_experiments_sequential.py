"""The always-valid mixture SPRT: formula, incremental updates, error rate under continuous peeking."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from nextbest.errors import NextbestError
from nextbest.experiments import MixtureSPRT
from nextbest.experiments.sequential import msprt_halfwidth, msprt_log_lr, msprt_path
from nextbest.experiments.simulation import sequential_false_positive_rate


def test_likelihood_ratio_is_johari_formula_for_equal_arms() -> None:
    sigma, tau, n, diff = 15.0, 0.7, 4000, 0.9
    paper = math.sqrt(2 * sigma**2 / (2 * sigma**2 + n * tau**2)) * math.exp(
        n**2 * tau**2 * diff**2 / (4 * sigma**2 * (2 * sigma**2 + n * tau**2))
    )
    assert math.exp(float(msprt_log_lr(diff, 2 * sigma**2 / n, tau))) == pytest.approx(paper, rel=1e-12)
    # the interval is exactly where Lambda(theta) < 1 / alpha
    var, alpha = 2 * sigma**2 / n, 0.05
    half = float(msprt_halfwidth(var, tau, alpha))
    assert float(msprt_log_lr(diff + half, var, tau, theta0=diff)) == pytest.approx(math.log(1 / alpha), rel=1e-10)


def test_class_matches_the_vectorized_path_on_the_same_data() -> None:
    rng = np.random.default_rng(0)
    control, treatment = rng.normal(10, 15, 3000), rng.normal(10.8, 15, 3000)
    test = MixtureSPRT(tau=0.7, alpha=0.05)
    p_class, lows, highs = [], [], []
    checks = np.arange(100, 3001, 100)
    for stop in checks:
        test.update(control[stop - 100 : stop], treatment[stop - 100 : stop])
        p_class.append(test.p_value)
        lows.append(test.confidence_sequence()[0])
        highs.append(test.confidence_sequence()[1])
    means_c = np.array([control[:k].mean() for k in checks])
    means_t = np.array([treatment[:k].mean() for k in checks])
    var = np.array([(control[:k].var(ddof=1) + treatment[:k].var(ddof=1)) / k for k in checks])
    p_path, low_path, high_path = msprt_path(means_t - means_c, var, 0.7, 0.05)
    assert np.allclose(p_class, p_path, rtol=1e-9)
    assert np.allclose(lows, low_path, rtol=1e-9) and np.allclose(highs, high_path, rtol=1e-9)
    assert np.all(np.diff(p_class) <= 0)  # running minimum
    assert test.effect == pytest.approx(treatment.mean() - control.mean())
    assert (test.n_control, test.n_treatment) == (3000, 3000)


def test_incremental_updates_keep_exact_sufficient_statistics() -> None:
    rng = np.random.default_rng(1)
    control, treatment = rng.normal(5, 3, 1234), rng.normal(5, 3, 987)
    whole = MixtureSPRT(tau=0.5).update(control, treatment)
    pieces = MixtureSPRT(tau=0.5)
    for chunk_c, chunk_t in zip(np.array_split(control, 7), np.array_split(treatment, 7)):
        pieces.update(chunk_c, chunk_t)
    pieces.update([], [])
    assert pieces.effect == pytest.approx(whole.effect, rel=1e-12)
    assert pieces.variance == pytest.approx(
        control.var(ddof=1) / control.size + treatment.var(ddof=1) / treatment.size, rel=1e-10
    )


def test_burn_in_known_variance_decision_and_result() -> None:
    test = MixtureSPRT(tau=1.0, alpha=0.05)
    test.update(np.full(50, 1.0) + np.arange(50) * 1e-3, np.full(50, 9.0) + np.arange(50) * 1e-3)
    assert test.decision == "continue" and test.p_value == 1.0 and "burn-in" in test.result().verdict
    assert test.confidence_sequence() == (-math.inf, math.inf)
    rng = np.random.default_rng(2)
    known = MixtureSPRT(tau=1.0, sd=2.0)
    for _ in range(20):
        known.update(rng.normal(0, 2, 50), rng.normal(1.0, 2, 50))
    assert known.decision == "reject" and known.rejected and known.p_value <= 0.05
    low, high = known.confidence_sequence()
    assert low > 0 and low < 1.0 < high
    result = known.result()
    assert result.decision == "reject" and result.verdict.startswith("Stop: the difference is above 0")
    assert result.statistic == known.statistic and result.ci == (low, high)
    assert "known variance" in result.assumptions
    json.dumps(known.to_dict(), allow_nan=False)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [({"tau": 0}, "tau must be > 0"), ({"tau": 1, "alpha": 0}, "alpha"), ({"tau": 1, "sd": -1}, "sd"),
     ({"tau": 1, "burn_in": 1}, "burn_in")],
)  # fmt: skip
def test_invalid_parameters(kwargs, words) -> None:
    with pytest.raises(NextbestError) as info:
        MixtureSPRT(**kwargs)
    assert words in str(info.value)
    with pytest.raises(NextbestError, match="missing"):
        MixtureSPRT(tau=1).update([1.0, float("nan")], [])


# --- error rates with peeking (vectorized over experiments, fixed seeds) -------------------------------


def test_false_positive_rate_with_peeking_after_every_100_units() -> None:
    """2,000 A/A experiments checked after every 100 units per arm up to 3,000 per arm (30 looks).
    Target <= 5 %; tolerance 4 binomial sd (0.0195) above it, though the mSPRT is conservative (~1-2 %)."""
    n = 2_000
    for known in (False, True):
        rate = sequential_false_positive_rate(n_experiments=n, max_n_per_arm=3_000, tau=0.7, check_every=100,
                                              sd=15, known_variance=known, seed=5)  # fmt: skip
        assert rate.rate <= 0.05 + 4 * math.sqrt(0.05 * 0.95 / n), rate
        assert rate.details["checks"] == 30


def test_naive_peeking_inflates_the_error_that_msprt_controls() -> None:
    """Contrast: a plain z-test at each of the same 30 looks rejects far more often than 5 %."""
    rng = np.random.default_rng(6)
    blocks = rng.normal(0, 15, (2, 2_000, 30, 100)).mean(axis=3)
    n = np.arange(1, 31) * 100
    diff = np.cumsum(blocks[1] - blocks[0], axis=1) * 100 / n
    z = diff / np.sqrt(2 * 15**2 / n)
    naive = float(np.mean((np.abs(z) > 1.959964).any(axis=1)))
    assert naive > 0.12


def test_sequential_power_with_a_real_effect() -> None:
    rate = sequential_false_positive_rate(n_experiments=1_000, max_n_per_arm=7_210, tau=0.7, check_every=100,
                                          sd=15, effect=1.0, seed=7)  # fmt: skip
    assert rate.rate > 0.7  # detected early or late, never with error-rate inflation
