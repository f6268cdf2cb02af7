"""WHO to contact: lead scores at decision points, measured on the held-out SalesCRM leads."""

from __future__ import annotations

import numpy as np
import pytest

from nextbest.evaluation.crm_who import (
    GradientBoostedScorer,
    capture,
    decision_points,
    funnel_scores,
    ranking_quality,
)
from nextbest.sim.funnel_model import FunnelModel
from nextbest.sim.journeys import Journeys


@pytest.fixture(scope="module")
def fitted(train_journeys: Journeys) -> FunnelModel:
    return FunnelModel().fit(train_journeys)


def test_what_happened_after_the_decision_point_does_not_move_the_score(fitted: FunnelModel,
                                                                        test_journeys: Journeys,
                                                                        train_journeys: Journeys) -> None:  # fmt: skip
    """Rewrite every step after the first call (the subscription included) at random: the scores at the first
    call stay exactly the same, for the funnel model and the gradient-boosting alternative."""
    spec = test_journeys.spec
    call = spec.step_names.index("first_call")
    gbm = GradientBoostedScorer().fit(decision_points(train_journeys, fitted.encode_leads(train_journeys)))
    rewritten = test_journeys.reached.copy()
    rng = np.random.default_rng(0)
    rewritten[:, call + 1:] = rng.random(rewritten[:, call + 1:].shape) < 0.5
    other = Journeys(rewritten, test_journeys.dropped, test_journeys.covariates, spec)
    codes = fitted.encode_leads(test_journeys)
    before, after = decision_points(test_journeys, codes), decision_points(other, codes)
    at_call = before.step == call
    assert at_call.sum() > 50 and np.array_equal(before.lead[at_call], after.lead[after.step == call])
    for score in (lambda p: funnel_scores(fitted, p), gbm.scores):
        np.testing.assert_array_equal(score(before)[at_call], score(after)[after.step == call])
    assert not np.array_equal(before.converted[at_call], after.converted[after.step == call])  # outcomes did move


def test_capture_shares_ties_and_matches_random_for_a_constant_score() -> None:
    outcome = np.array([1, 0, 0, 1, 0, 0, 0, 0, 0, 1] * 10, dtype=bool)
    assert capture(np.zeros(100), outcome, 0.10) == pytest.approx(0.10)
    perfect = outcome.astype(float)
    assert capture(perfect, outcome, 0.10) == pytest.approx(10 / 30)
    assert capture(perfect, outcome, 0.30) == 1.0


def test_the_funnel_score_ranks_held_out_leads_better_than_random(fitted: FunnelModel,
                                                                  test_journeys: Journeys) -> None:  # fmt: skip
    """On SalesCRM's test leads (decision points of 1,647 leads), the top 10% of funnel-model scores hold more than
    10% of the converting rows with the whole interval above it; every interval contains its estimate."""
    points = decision_points(test_journeys, fitted.encode_leads(test_journeys))
    quality = ranking_quality(funnel_scores(fitted, points), points, n_boot=100)
    assert quality.leads == len(test_journeys) - int((~test_journeys.reached.any(axis=1)).sum())
    assert quality.top10_capture_ci[0] > 0.10 and quality.auc_ci[0] > 0.5
    for name in ("auc", "pr_auc", "top10_capture", "top20_capture", "lift_top10"):
        low, high = getattr(quality, f"{name}_ci")
        assert low <= getattr(quality, name) <= high, name
    assert quality.lift_top10 == pytest.approx(quality.top10_capture / 0.10)
    assert sum(quality.reliability.rows) == quality.rows


def test_the_top_segments_rank_by_score_and_carry_the_observed_rate(fitted: FunnelModel,
                                                                    test_journeys: Journeys,
                                                                    train_journeys: Journeys) -> None:  # fmt: skip
    from nextbest.evaluation.crm_who import who_quality

    who = who_quality(fitted, train_journeys, test_journeys, n_boot=20)
    scores = [s.mean_score for s in who.top_segments]
    assert 0 < len(scores) <= 10 and scores == sorted(scores, reverse=True)
    for segment in who.top_segments:
        assert set(segment.segment) == {"country", "education", "step"} and segment.rows >= 10
        assert segment.observed_ci[0] <= segment.observed_rate <= segment.observed_ci[1]
