"""Business metrics, intervals, calibration, segments and the evaluation JSON contract."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from nextbest.agents.baselines import BASELINES, make_baseline
from nextbest.agents.qlearning import QLearningAgent, QLearningConfig
from nextbest.errors import NextbestError
from nextbest.evaluation.crm import EvaluationConfig, evaluate_crm, simulate_policy
from nextbest.evaluation.crm_results import CRMEvaluation
from nextbest.evaluation.metrics import business_metrics, ratio
from nextbest.sim.journeys import STEPS
from nextbest.stats import percentile_interval


def test_business_metric_formulas() -> None:
    subscribed = np.array([True, False, False, True])
    first_call = np.array([True, True, False, True])
    cost = np.array([10.0, 5.0, 0.0, 25.0])
    m = business_metrics(subscribed, first_call, cost, subscription_value=100.0)
    assert m["subscription_rate"] == 0.5 and m["first_call_rate"] == 0.75
    assert m["cost_per_acquisition"] == 20.0
    assert m["roi"] == pytest.approx((200 - 40) / 40)
    assert m["value_per_lead"] == pytest.approx(160 / 4)
    none = business_metrics(np.zeros(3, bool), np.zeros(3, bool), np.zeros(3), 100.0)
    assert math.isinf(none["cost_per_acquisition"]) and math.isnan(none["roi"])


def test_percentile_interval_and_ratio() -> None:
    low, high = percentile_interval(np.arange(1001, dtype=float))
    assert low == pytest.approx(25.0) and high == pytest.approx(975.0)
    assert percentile_interval([math.nan, math.nan]) != percentile_interval([1.0])
    assert math.isinf(ratio(1.0, 0.0)) and math.isnan(ratio(0.0, 0.0)) and ratio(3.0, 2.0) == 1.5


def test_common_random_numbers_across_policies(simulator, test_journeys) -> None:
    codes = simulator.model.encode_leads(test_journeys)
    a = simulate_policy(simulator, codes, BASELINES["always_wait"](), seed=11)
    b = simulate_policy(simulator, codes, make_baseline("logged", simulator.config), seed=11)
    np.testing.assert_array_equal(a.rollout.state.u, b.rollout.state.u)


@pytest.fixture(scope="module")
def evaluation(prepared_crm):
    from nextbest.sim import journeys_from_frame, simulator_from_frame

    sim = simulator_from_frame(prepared_crm.train)
    train = journeys_from_frame(prepared_crm.train)
    test = journeys_from_frame(prepared_crm.test)
    agent = QLearningAgent(sim, QLearningConfig(seed=0))
    agent.train(train, 10_000)
    policies = {"learned": agent, **{name: make_baseline(name, sim.config) for name in BASELINES}}

    def retrain(variant):
        fresh = QLearningAgent(variant, QLearningConfig(seed=0))
        fresh.train(train, 2000)
        return fresh

    config = EvaluationConfig(replications=3, bootstrap=12, value_multiples=(1.0, 20.0))
    recent = (train.subset(np.arange(len(train) // 2, len(train))), "the later half of the train leads")
    return evaluate_crm(sim, train, test, policies, config, retrain=retrain, recent=recent).to_dict()


def test_the_typed_evaluation_round_trips_and_names_a_bad_key(evaluation, tmp_path) -> None:
    typed = CRMEvaluation.from_dict(evaluation)
    assert typed.policies["learned"].subscription_rate == evaluation["policies"]["learned"]["subscription_rate"]
    path = typed.write(tmp_path / "evaluation.json")
    loaded = CRMEvaluation.load(path).to_dict()
    assert loaded == evaluation
    broken = json.loads(path.read_text())
    broken["policies"]["learned"]["roi"] = "high"
    path.write_text(json.dumps(broken))
    with pytest.raises(NextbestError, match=r"evaluation.json: .*\$\.policies\.learned\.roi"):
        CRMEvaluation.load(path)


def test_evaluation_json_contract(evaluation) -> None:
    for name in ("learned", "random", "logged", "rule"):
        entry = evaluation["policies"][name]
        for metric in ("subscription_rate", "first_call_rate", "cost_per_acquisition", "roi"):
            assert metric in entry and len(entry[f"{metric}_ci"]) == 2
    for key in ("improvement_vs_random", "improvement_vs_logged"):
        assert set(evaluation[key]) >= {"factor", "ci"}
    assert len(evaluation["top_segments"]) == 3
    calibration = evaluation["simulator_calibration"]
    assert [s["step"] for s in calibration["steps"]] == [*STEPS, "dropped"]
    assert 0.0 <= calibration["within_ci_fraction"] <= 1.0
    assert {"subscription_rate", "roi", "cpa_reduction_vs_random"} <= set(evaluation["targets"])
    who = evaluation["who"]
    for key in ("auc", "pr_auc", "top10_capture", "top20_capture", "lift_top10"):
        assert who[f"{key}_ci"][0] <= who[key] <= who[f"{key}_ci"][1], key
    assert who["scorer"] == "funnel simulator, within the horizon"
    assert set(who["alternatives"]) == {"funnel_model", "gradient_boosting"}
    calibration = evaluation["calibration"]
    assert calibration["across_time"] == evaluation["simulator_calibration"]
    assert 0 <= calibration["in_period"]["within_ci_fraction"] <= 1 and "train leads" in calibration["in_period"][
        "fitted_on"]
    for key in ("in_period_recent", "across_time_recent"):  # the same checks, simulator fitted on recent leads
        assert "later half" in calibration[key]["fitted_on"] and 0 <= calibration[key]["within_ci_fraction"] <= 1
    pilot = evaluation["pilot"]
    assert pilot["baseline_rate"] == evaluation["policies"]["logged"]["subscription_rate"]
    assert pilot["per_arm"] > 0 and pilot["budget"] > 0 and pilot["achieved_power"] >= 0.8


def test_intervals_bracket_point_estimates(evaluation) -> None:
    """With resampled train and test leads the 95% interval should contain the point estimate for
    the rates of every policy (a broken bootstrap, e.g. one that ignores the resample, fails this)."""
    for name, entry in evaluation["policies"].items():
        low, high = entry["subscription_rate_ci"]
        assert low <= high
        assert low - 0.002 <= entry["subscription_rate"] <= high + 0.002, name
        low, high = entry["first_call_rate_ci"]
        assert low < high or entry["first_call_rate"] == 0.0, name


def test_calibration_reports_actual_test_rates(evaluation, test_journeys) -> None:
    steps = {s["step"]: s for s in evaluation["simulator_calibration"]["steps"]}
    assert steps["subscribed"]["actual"] == pytest.approx(test_journeys.rate("subscribed"))
    assert steps["first_call"]["actual"] == pytest.approx(test_journeys.rate("first_call"))
    for step in steps.values():
        low, high = step["ci"]
        assert step["within"] == (low <= step["actual"] <= high)


def test_segments_are_ranked_by_value(evaluation) -> None:
    values = [s["value_per_lead"] for s in evaluation["top_segments"]]
    assert values == sorted(values, reverse=True)
    for segment in evaluation["top_segments"]:
        assert segment["leads"] >= 30 and segment["episodes"] >= segment["leads"]
        assert segment["action_sequences"] and 0 < segment["action_sequences"][0]["share"] <= 1


def test_each_reading_has_its_policy_targets_break_even_and_value_sensitivity(evaluation) -> None:
    """readings.<name>: the conservative reading keeps the run's policy (its numbers equal the main ones); the
    optimistic one assumes each company step offered to as few leads as took it, so offers are taken far more
    often (random actions reach far more first calls); every reading carries targets, plans and break-even values."""
    readings = evaluation["readings"]
    assert list(readings) == ["conservative", "middle", "optimistic"]
    assert [r["dial"] for r in readings.values()] == [0.0, 0.5, 1.0]
    conservative, optimistic = readings["conservative"], readings["optimistic"]
    assert conservative["offer_rates"] == {} and "run's policy" in conservative["learned_policy"]
    assert conservative["policies"]["learned"] == evaluation["policies"]["learned"]
    assert "retrained" in optimistic["learned_policy"]
    assert 0 < optimistic["offer_rates"]["first_call"] < readings["middle"]["offer_rates"]["first_call"] < 1
    random_calls = [r["policies"]["random"]["first_call_rate"] for r in readings.values()]
    assert random_calls[2] > 3 * random_calls[0]
    for reading in readings.values():
        for name in ("learned", "random", "logged"):
            entry = reading["policies"][name]
            assert len(entry["subscription_rate_ci"]) == 2
        assert set(reading["targets"]) == set(evaluation["targets"])
        assert set(reading["break_even"]) == {"email", "call", "demo", "survey", "manager"}
        for entry in reading["break_even"].values():
            low, high = entry["conversions_per_1000_ci"]
            assert low <= high
            if entry["value"] is not None:  # value = spend added / conversions added
                assert entry["value"] == pytest.approx(max(entry["spend_per_1000"], 0) / entry["conversions_per_1000"])
        values = [row["subscription_value"] for row in reading["value_sensitivity"]]
        assert values == [1000.0, 20000.0]
        for row in reading["value_sensitivity"]:
            assert sum(row["action_shares"].values()) == pytest.approx(1.0)
    assert evaluation["settings"]["readings"] == [{"name": "conservative", "dial": 0.0},
                                                   {"name": "middle", "dial": 0.5},
                                                   {"name": "optimistic", "dial": 1.0}]  # fmt: skip


def test_break_even_divides_added_spend_by_added_conversions() -> None:
    """V* = max(Δspend, 0) / Δconversions; None when the action adds none; the upper bound is open when the
    interval of added conversions reaches 0."""
    from nextbest.evaluation.crm_bootstrap import PolicyRun
    from nextbest.evaluation.crm_readings import break_even

    def run(rate: float, value_per_lead: float) -> PolicyRun:
        return PolicyRun(None, {"subscription_rate": rate, "value_per_lead": value_per_lead})

    # with: 1.0% conversions, spend 10 - ... at V = 1000: spend = 1000 * rate - value_per_lead
    with_run, without_run = run(0.010, 1000 * 0.010 - 8.0), run(0.006, 1000 * 0.006 - 3.0)
    samples_with = {"subscription_rate": [0.010, 0.011, 0.012, 0.009]}
    samples_without = {"subscription_rate": [0.006, 0.006, 0.009, 0.012]}
    result = break_even(with_run, without_run, samples_with, samples_without, 1000.0, 0.95)
    assert result["value"] == pytest.approx(5.0 / 0.004)
    assert result["spend_per_1000"] == pytest.approx(5000.0) and result["conversions_per_1000"] == pytest.approx(4.0)
    assert result["value_ci"][1] is None  # one replicate loses conversions: no upper bound
    none = break_even(without_run, with_run, samples_without, samples_with, 1000.0, 0.95)
    assert none["value"] is None
