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

    config = EvaluationConfig(replications=3, bootstrap=12, sensitivity_rates=(1.0, 0.5))
    return evaluate_crm(sim, train, test, policies, config, retrain=retrain).to_dict()


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
    assert [row["call_offer_rate"] for row in evaluation["sensitivity"]] == [1.0, 0.5]
    assert {"subscription_rate", "roi", "cpa_reduction_vs_random"} <= set(evaluation["targets"])
    who = evaluation["who"]
    for key in ("auc", "pr_auc", "top10_capture", "top20_capture", "lift_top10"):
        assert who[f"{key}_ci"][0] <= who[key] <= who[f"{key}_ci"][1], key
    assert who["scorer"] == "funnel model" and "gradient_boosting" in who["alternatives"]
    calibration = evaluation["calibration"]
    assert calibration["across_time"] == evaluation["simulator_calibration"]
    assert 0 <= calibration["in_period"]["within_ci_fraction"] <= 1 and "train leads" in calibration["in_period"][
        "fitted_on"]
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
