"""The one policy contract: every decision-maker of the package returns actions and the exact probability of each.

Deterministic policies report 1; stochastic ones (uniform random, the logged sales process, ε-greedy) report the
probability with which they drew the action, and the empirical frequencies over many draws match it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nextbest.agents.baselines import AlwaysWaitPolicy, LoggedPolicy, RandomPolicy, RulePolicy
from nextbest.agents.qlearning import QLearningAgent, QLearningConfig
from nextbest.agents.sessions import fixed_policy, greedy_policy, q_policy, random_policy
from nextbest.models.targeting import FEATURES, AgeSexRule, features_from_frame, train_targeting
from nextbest.policies import (
    Decision,
    DeterministicPolicy,
    EpsilonGreedy,
    FixedAction,
    Policy,
    UniformRandom,
    check_decision,
)
from nextbest.sim.funnel import ACTIONS, FunnelConfig
from nextbest.sim.shop import World, write_world_data
from nextbest.uplift.learners import TLearner, UpliftPolicy

CALL, WAIT = ACTIONS.index("call"), ACTIONS.index("wait")


def frequencies_match(policy: Policy, observations, n_rows: int, n_actions: int, draws: int = 400) -> None:
    """Over ``draws`` decisions for the same observations, each action's frequency is its reported probability."""
    rng = np.random.default_rng(0)
    counts = np.zeros((n_rows, n_actions))
    for _ in range(draws):
        decision = policy.choose(observations, rng)
        check_decision(decision, n_rows, n_actions)
        counts[np.arange(n_rows), decision.actions] += 1
    expected = decision.distribution
    se = np.sqrt(expected * (1 - expected) / draws)
    assert np.all(np.abs(counts / draws - expected) <= 5 * se + 1e-12)


def test_generic_policies() -> None:
    x = np.zeros((50, 3))
    check_decision(FixedAction(2, 4).choose(x), 50, 4)
    rule = DeterministicPolicy(lambda obs: (obs[:, 0] > 0).astype(int), 2)
    assert (rule.choose(x).probabilities == 1).all() and (rule(x) == 0).all()
    frequencies_match(UniformRandom(4), x, 50, 4)
    explorer = EpsilonGreedy(FixedAction(1, 4), 0.2)
    decision = explorer.choose(x, np.random.default_rng(1))
    assert set(np.round(decision.probabilities, 10)) <= {0.85, 0.05}  # 1 - ε + ε/4 for the greedy action, ε/4 else
    frequencies_match(explorer, x, 50, 4)
    with pytest.raises(ValueError):
        EpsilonGreedy(FixedAction(1, 4), 1.5)


def test_funnel_baselines_and_q_learning(funnel) -> None:
    sim, codes = funnel
    rng = np.random.default_rng(0)
    state = sim.reset(codes[:300], rng)
    for _ in range(3):
        sim.step(state, rng.integers(0, 6, size=len(state)))
    obs = sim.observe(state)
    for policy in (AlwaysWaitPolicy(), RulePolicy(), QLearningAgent(sim, QLearningConfig())):
        decision = policy.choose(obs, rng)
        check_decision(decision, 300, 6)
        assert (decision.probabilities == 1).all()
        np.testing.assert_array_equal(policy(obs, rng), decision.actions)
    frequencies_match(RandomPolicy(), obs, 300, 6)
    logged = LoggedPolicy(FunnelConfig(call_offer_rate=0.6))
    decision = logged.choose(obs, rng)
    planned_call = decision.distribution[:, CALL] > 0
    assert np.allclose(decision.distribution[planned_call, CALL], 0.6)
    assert np.allclose(decision.distribution[planned_call, WAIT], 0.4)
    frequencies_match(logged, obs, 300, 6)


def test_session_policies() -> None:
    from nextbest.envs.sessions import default_session_simulator

    simulator = default_session_simulator(sessions=3_000, seed=2)
    state = simulator.reset(200, np.random.default_rng(0))
    q = np.random.default_rng(1).normal(size=(220, 3))
    for policy in (q_policy(q), fixed_policy(2, 3), greedy_policy(simulator)):
        decision = policy.choose(state)
        check_decision(decision, 200, 3)
        assert (decision.probabilities == 1).all()
    frequencies_match(random_policy(3), state, 200, 3)


def test_targeting_models_the_original_rule_and_uplift_policies(tmp_path) -> None:
    write_world_data(World(4, eval_customers=5_000), tmp_path, customers=8_000)
    world = World(4)
    rows = features_from_frame(world.frame(world.sample(500)), FEATURES())
    model = train_targeting(tmp_path, "logreg")
    decision = model.choose(rows)
    check_decision(decision, 500, 2)
    np.testing.assert_array_equal(decision.actions, model.decide(rows))
    rule = AgeSexRule().fit(rows, np.zeros(500))
    np.testing.assert_array_equal(rule.choose(rows).actions, rule.cell(rows))
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(400, 3)), columns=["a", "b", "c"])
    t = rng.random(400) < 0.5
    y = X["a"].to_numpy() * t + rng.normal(size=400)
    learner = TLearner(base="linear").fit(X, y, t.astype(int))
    uplift = UpliftPolicy(learner, 0.0, "t_learner").choose(X)
    check_decision(uplift, 400, 2)
    np.testing.assert_array_equal(uplift.actions == 1, learner.predict_uplift(X) >= 0.0)
    assert isinstance(uplift, Decision)
