"""The offline half of the loop: paired contrasts, doubly robust scores, a policy learned from a log, the choice
among candidates — in the shop world, where every policy's value is known exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nextbest.data.decision_log import Rejected, join_decisions, merge, parse_decision
from nextbest.evaluation.loop import choose_policy, split_log, subset
from nextbest.evaluation.offpolicy import cross_fitted_rewards
from nextbest.models.offpolicy import learn_targeting_policy
from nextbest.models.targeting import FEATURES, TargetingModel, features_from_frame
from nextbest.ope import IPS, DoublyRobust, LoggedBandit
from nextbest.ope.learning import dr_scores, weighted_labels
from nextbest.policies.contract import deterministic
from nextbest.sim.shop import World


def shop_log(world: World, n: int, epsilon: float, stream: int) -> tuple[pd.DataFrame, LoggedBandit, np.ndarray]:
    """n customers served by the ε-greedy original rule: features, the log, and the logging distribution."""
    people = world.sample(n, stream=stream)
    greedy = world.original_policy(people).astype(float)
    p_show = (1 - epsilon / 2) * greedy + (epsilon / 2) * (1 - greedy)
    shown = (np.random.default_rng(stream).random(n) < p_show).astype(np.int64)
    revenue = world.simulate_revenue(people, shown, stream=stream + 1)
    X = features_from_frame(world.frame(people), FEATURES())
    log = LoggedBandit(shown, revenue, np.where(shown == 1, p_show, 1 - p_show), 2)
    return X, log, np.column_stack([1 - p_show, p_show])


def test_a_contrast_is_the_difference_of_the_estimates_with_a_paired_interval() -> None:
    world = World(0)
    X, log, _ = shop_log(world, 8_000, 0.3, 11)
    show_all, show_none = np.tile([0.0, 1.0], (len(log), 1)), np.tile([1.0, 0.0], (len(log), 1))
    model = cross_fitted_rewards(X, list(X.columns[:5]), log, 0, "test")
    for estimator in (IPS(), DoublyRobust()):
        difference = estimator.contrast(log, show_all, show_none, model)
        values = [estimator.estimate(log, target, model).estimate for target in (show_all, show_none)]
        assert difference.estimate == pytest.approx(values[0] - values[1])
        assert difference.ci[0] < difference.estimate < difference.ci[1]
        itself = estimator.contrast(log, show_all, show_all, model)
        assert itself.estimate == 0 and itself.ci == [0.0, 0.0]  # the same rows for both: no noise left
    booted = DoublyRobust().contrast(log, show_all, show_none, model, interval="bootstrap", n_boot=100)
    assert booted.interval == "bootstrap" and booted.ci[0] < booted.estimate < booted.ci[1]


def test_dr_scores_follow_their_formula() -> None:
    log = LoggedBandit(np.array([0, 1, 1]), np.array([1.0, 3.0, 0.0]), np.array([0.5, 0.25, 1.0]), 2)
    model = np.array([[1.0, 2.0], [0.0, 1.0], [1.0, 1.0]])
    np.testing.assert_allclose(dr_scores(log, model), [[1.0, 2.0], [0.0, 1.0 + 2.0 / 0.25], [1.0, 0.0]])
    problem = weighted_labels(log, model)
    np.testing.assert_array_equal(problem.label, [1, 1, 0])
    np.testing.assert_allclose(problem.weight, [1.0, 9.0, 1.0])


def test_a_policy_learned_from_a_log_beats_the_rule_that_logged_it() -> None:
    """Off-policy learning on 20,000 decisions of the ε-greedy original rule: the learned targeting's true value
    exceeds the original rule's and showing to no one (both known exactly in the world)."""
    world = World(0)
    X, log, _ = shop_log(world, 20_000, 0.3, 21)
    model = cross_fitted_rewards(X, list(X.columns), log, 0, "test")
    like = TargetingModel("gbm", None, 0.5, FEATURES(), world.economics(), world.config.to_dict(), "")
    learned = learn_targeting_policy(X, log, model, like, seed=0)
    population = features_from_frame(world.frame(world.evaluation_customers), FEATURES())
    value = world.expected_revenue(learned.decide(population))
    assert value > world.expected_revenue("original") and value > world.expected_revenue("none")


def test_the_choice_among_candidates_finds_the_best_and_covers_the_true_effects() -> None:
    world = World(0)
    X, log, logging = shop_log(world, 30_000, 0.3, 31)
    log = LoggedBandit(log.actions, log.rewards, log.pscores, 2, logging=logging)
    people = world.sample(30_000, stream=31)
    policies = {"original": world.original_policy, "oracle": world.oracle_policy,
                "show_all": lambda c: np.ones(len(c), dtype=int), "show_none": lambda c: np.zeros(len(c), dtype=int)}
    split = split_log(len(log), 0.5, 0)
    rows = split.evaluate
    candidates = {name: deterministic(policy(people)[rows], 2).distribution for name, policy in policies.items()}
    choice = choose_policy(X.iloc[rows].reset_index(drop=True), subset(log, rows), candidates, "original")
    assert choice.chosen == "oracle" and choice.rows_evaluated == rows.size
    truth = {name: world.expected_revenue(policy) for name, policy in policies.items()}
    for name, candidate in choice.candidates.items():
        effect = candidate.versus_control["dr"]
        assert effect.ci[0] <= truth[name] - truth["original"] <= effect.ci[1], (name, effect)
        assert candidate.value["ips"].ess <= rows.size


def test_the_decision_log_joins_only_applied_decisions_and_merges_once() -> None:
    decisions = [{"uuid": u, "value": u % 2, "token": "t", "propensity": 0.9, "policy": "p", "decided_at": 1.0,
                  "context": {"age": 30.0 + u}} for u in range(5)]  # fmt: skip
    outcomes = [{"uuid": 0, "decision": 0, "revenue": 1.0, "served": True},
                {"uuid": 1, "decision": 0, "revenue": 2.0, "served": False},  # the control arm's action
                {"uuid": 2, "decision": 0, "revenue": 3.0, "served": True},
                {"uuid": 9, "decision": 1, "revenue": 4.0, "served": True}]  # fmt: skip
    frame, counts = join_decisions(decisions + decisions[:1], outcomes)
    assert list(frame["uuid"]) == [0, 2] and list(frame["reward"]) == [1.0, 3.0]
    assert (counts.joined, counts.applied_other_action, counts.awaiting_outcome, counts.outcome_without_decision,
            counts.repeated_decisions) == (2, 1, 2, 1, 1)  # fmt: skip
    assert list(frame["ctx_age"]) == [30.0, 32.0]
    merged, added = merge(frame, frame)
    assert added == 0 and len(merged) == 2
    assert isinstance(parse_decision(b'{"uuid": 1, "value": 1, "policy": "p"}'), Rejected)
    assert "propensity' must be in (0, 1], got 1.2" in parse_decision(
        b'{"uuid": 1, "value": 1, "policy": "p", "propensity": 1.2}').reason
