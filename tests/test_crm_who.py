"""WHO to contact: lead scores at decision points, measured on the held-out SalesCRM leads."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nextbest.data.funnel_spec import default_funnel_spec
from nextbest.data.prepared import PreparedCRM
from nextbest.errors import NextbestError
from nextbest.evaluation.crm_who import (
    GAINS_SHARES,
    GradientBoostedScorer,
    Who,
    capture,
    cutoff_points,
    cutoff_quality,
    decision_points,
    default_cutoff,
    funnel_scores,
    gains,
    horizon_scores,
    ranking_quality,
    state_at_cutoff,
    who_quality,
)
from nextbest.report.figures import who_gains_chart, who_reliability_chart
from nextbest.sim.funnel_model import FunnelModel
from nextbest.sim.journeys import Journeys


@pytest.fixture(scope="module")
def fitted(train_journeys: Journeys) -> FunnelModel:
    return FunnelModel().fit(train_journeys)


@pytest.fixture(scope="module")
def who(fitted: FunnelModel, train_journeys: Journeys, test_journeys: Journeys, prepared_crm: PreparedCRM) -> Who:
    return who_quality(fitted, train_journeys, test_journeys, n_boot=20, test_frame=prepared_crm.test)


def test_what_happened_after_the_decision_point_does_not_move_the_score(fitted: FunnelModel,
                                                                        test_journeys: Journeys,
                                                                        train_journeys: Journeys) -> None:  # fmt: skip
    """Rewrite every step after the first call (the subscription included) at random: the scores at the first
    call stay exactly the same, for the lead score (simulated futures), the funnel model and the gradient-boosting
    alternative."""
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
    def horizon(points):
        return horizon_scores(fitted, points.codes, points.known, replications=30)

    for score in (horizon, lambda p: funnel_scores(fitted, p), gbm.scores):
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
    curve = {round(g.share_contacted, 2): g for g in quality.gains}  # the gains curve: 5%, 10%, ..., 100%
    assert tuple(curve) == GAINS_SHARES and curve[1.0].share_captured == pytest.approx(1.0)
    assert curve[0.1].share_captured == pytest.approx(quality.top10_capture)
    assert curve[0.2].share_captured == pytest.approx(quality.top20_capture)
    assert np.all(np.diff([g.share_captured for g in quality.gains]) >= 0)
    for g in quality.gains:
        assert g.share_captured_ci[0] <= g.share_captured <= g.share_captured_ci[1] + 1e-12
        assert g.lift == pytest.approx(g.share_captured / g.share_contacted)
        assert g.lift_ci == pytest.approx([v / g.share_contacted for v in g.share_captured_ci])


def test_gains_interpolate_inside_ties_like_capture() -> None:
    scores = np.array([3.0, 2, 2, 2, 2, 1, 1, 0, 0, 0])
    outcome = np.array([1, 1, 0, 0, 0, 1, 0, 0, 0, 0], dtype=bool)
    # top 10%: the one 3 → 1 of 3; top 30%: the 3 and two of the four tied 2s holding one positive → 1.5 of 3
    expected = [0, 1 / 3, 1.5 / 3, 2 / 3, 2.5 / 3, 1]
    np.testing.assert_allclose(gains(scores, outcome, [0.0, 0.1, 0.3, 0.5, 0.6, 1.0]), expected)
    assert capture(scores, outcome, 0.3) == pytest.approx(0.5)
    assert np.isnan(gains(scores, np.zeros(10, dtype=bool), [0.5])).all()


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


# ------------------------------------------------------------------------------------------ as of a cutoff date


def _frame(rows: list[dict]) -> pd.DataFrame:
    """A small SalesCRM-shaped prepared frame: every column the spec reads, dates as datetimes."""
    spec = default_funnel_spec()
    frame = pd.DataFrame(rows)
    for column in spec.date_columns():
        frame[column] = pd.to_datetime(frame[column]) if column in frame else pd.Series(pd.NaT, index=frame.index)
    for column in ("status", "stage", "country", "education"):
        frame[column] = frame.get(column)
    return frame


def test_the_state_at_a_cutoff_keeps_what_was_dated_by_it() -> None:
    """Leads that entered by the cutoff and had not converted by it; a dated step counts when its date ≤ cutoff;
    the messages (from the final status, no date) are left out; the outcome is conversion after the cutoff."""
    spec = default_funnel_spec()
    frame = _frame([
        dict(first_contact="2022-01-01", first_call="2022-01-05", demo="2022-01-20", subscribed="2022-01-25",
             status="3rd message"),                                          # open, converts after
        dict(first_contact="2022-01-02", first_call="2022-01-03", subscribed="2022-01-08"),  # converted before
        dict(first_contact="2022-01-15", first_call="2022-01-16"),           # enters after the cutoff
        dict(demo="2022-01-03", last_contact="2022-01-30"),                  # entered by its demo, no conversion
        dict(status="1st message"),                                          # no date at all: never entered
        dict(first_contact="2022-01-10", first_call="2022-01-10", subscribed="2022-01-11"),  # on the cutoff day
    ])  # fmt: skip
    state = state_at_cutoff(frame, spec, "2022-01-10")
    assert state.index.tolist() == [0, 3, 5] and state.entered == 4 and state.converted_before == 1
    assert state.converted_after.tolist() == [True, False, True]
    steps = spec.step_names
    assert [[steps[j] for j in np.flatnonzero(row)] for row in state.reached] == [["first_call"], ["demo"],
                                                                                  ["first_call"]]  # fmt: skip
    assert state.undated_steps == ("msg1", "msg2", "msg3")
    # the default cutoff: the middle of the lead dates (2022-01-01 .. 2022-01-15 here), to the day
    assert default_cutoff(frame, spec) == pd.Timestamp("2022-01-08")
    undated = dataclasses.replace(spec, steps=tuple(
        dataclasses.replace(s, reached={"column": "stage", "values": ["subscribed already"]})
        if s.name == "subscribed" else s for s in spec.steps))  # fmt: skip
    with pytest.raises(NextbestError, match="not recorded by a date"):
        state_at_cutoff(frame, undated, "2022-01-10")


def test_what_happened_after_the_cutoff_does_not_move_the_score(fitted: FunnelModel,
                                                                prepared_crm: PreparedCRM) -> None:  # fmt: skip
    """Rewrite SalesCRM's test leads after the cutoff — move every later date elsewhere after it or drop it,
    give later steps and conversions to other leads, change the (undated) message status — and the leads open at
    the cutoff, their state and their funnel scores stay exactly the same; only the outcome moves."""
    frame, spec = prepared_crm.test, prepared_crm.spec
    cutoff = default_cutoff(frame, spec)
    rng = np.random.default_rng(0)
    other = frame.copy()
    for column in spec.date_columns():
        later = other[column] > cutoff
        dropped = later & (rng.random(len(other)) < 0.3)
        fresh = other[column].isna() & (rng.random(len(other)) < 0.2)  # a step (a conversion) gained after it
        moved = pd.Series(cutoff + pd.to_timedelta(rng.integers(1, 90, len(other)), unit="D"), index=other.index)
        other[column] = other[column].mask(dropped, pd.NaT).mask((later & ~dropped) | fresh, moved)
    other["status"] = rng.choice(["1st message", "2nd message", "3rd message"], len(other))
    assert (other[spec.conversion_step] > cutoff).sum() != (frame[spec.conversion_step] > cutoff).sum()
    before, after = state_at_cutoff(frame, spec, cutoff), state_at_cutoff(other, spec, cutoff)
    np.testing.assert_array_equal(before.index, after.index)
    np.testing.assert_array_equal(before.reached, after.reached)
    scores = [funnel_scores(fitted, cutoff_points(fitted, f, s)) for f, s in ((frame, before), (other, after))]
    np.testing.assert_array_equal(*scores)
    assert before.converted_after.sum() != after.converted_after.sum()  # the outcomes did move
    assert len(before) > 500 and before.entered - before.converted_before == len(before)


def test_who_carries_the_score_as_of_the_middle_of_the_test_period(who: Who, fitted: FunnelModel,
                                                                    prepared_crm: PreparedCRM) -> None:  # fmt: skip
    """SalesCRM's test leads run from 2021-12-22 to 2022-04-27: the cutoff is 2022-02-23."""
    cut = who.as_of_cutoff
    assert cut is not None and cut.cutoff == "2022-02-23" and cut.undated_steps == ["msg1", "msg2", "msg3"]
    assert cut.rows == cut.leads == cut.entered - cut.converted_before and cut.converting_rows == cut.converted_after
    assert 0 < cut.converted_after < cut.leads < len(prepared_crm.test)
    assert cut.auc_ci[0] <= cut.auc <= cut.auc_ci[1] and len(cut.gains) == len(GAINS_SHARES)
    assert cutoff_quality(fitted, prepared_crm.test, n_boot=20) == cut
    assert Who.from_dict(who.to_dict()) == who  # it survives evaluation.json
    without = Who.from_dict({**who.to_dict(), "as_of_cutoff": None})
    assert without.as_of_cutoff is None


def test_the_gains_and_reliability_figures_draw_from_who(who: Who, tmp_path: Path) -> None:
    scores = {"funnel model": who, **who.alternatives, "as of cutoff": who.as_of_cutoff}
    for path in (who_gains_chart(scores, tmp_path / "gains.png"),
                 who_gains_chart({}, tmp_path / "empty.png"),
                 who_reliability_chart(who.reliability, tmp_path / "reliability.png")):  # fmt: skip
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_horizon_score_simulates_the_futures_of_each_state_once(fitted: FunnelModel,
                                                                    test_journeys: Journeys) -> None:  # fmt: skip
    """P(conversion within the horizon): leads in the same state get the same score, a lead that already reached
    the account manager outranks one that reached nothing, a zero horizon converts nobody, and it ranks the
    held-out decision points at least as well as the funnel model's score alone (AUC); a lead's score does not
    depend on the other leads scored with it."""
    points = decision_points(test_journeys, fitted.encode_leads(test_journeys))
    scores = horizon_scores(fitted, points.codes, points.known)
    key = np.column_stack([points.codes, points.known])
    _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    np.testing.assert_array_equal(scores, scores[first][inverse.ravel()])
    codes = np.zeros((2, points.codes.shape[1]), dtype=np.int64)
    known = np.zeros((2, points.known.shape[1]), dtype=bool)
    known[1, : test_journeys.spec.step_names.index("manager") + 1] = True
    nothing, manager = horizon_scores(fitted, codes, known)
    assert manager > nothing
    assert horizon_scores(fitted, codes, known, horizon=1)[1] <= manager
    np.testing.assert_array_equal(horizon_scores(fitted, codes[1:], known[1:]), [manager])
    auc_horizon = ranking_quality(scores, points, n_boot=2).auc
    auc_model = ranking_quality(funnel_scores(fitted, points), points, n_boot=2).auc
    assert auc_horizon >= auc_model - 0.01, (auc_horizon, auc_model)
