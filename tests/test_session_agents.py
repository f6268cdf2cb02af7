"""Policies on the learned session simulator: Q-learning, random, fixed and greedy, with intervals."""

from __future__ import annotations

import numpy as np
import pytest

from nextbest.agents.sessions import (
    N_STATES,
    QLearningConfig,
    choices_table,
    evaluate,
    fixed_policy,
    greedy_policy,
    q_policy,
    random_policy,
    state_index,
    train_q,
)  # fmt: skip
from nextbest.envs.sessions import default_session_simulator
from nextbest.sim.session_sim import SessionSimulator


@pytest.fixture(scope="module")
def simulator() -> SessionSimulator:
    return default_session_simulator(sessions=5_000, seed=2)


def test_state_index_covers_the_table(simulator: SessionSimulator) -> None:
    state = simulator.reset(5_000, np.random.default_rng(0))
    state.depth = np.random.default_rng(1).integers(0, 60, 5_000)
    index = state_index(state)
    assert index.min() >= 0 and index.max() < N_STATES


def test_policies_are_evaluated_with_intervals(simulator: SessionSimulator) -> None:
    q = train_q(simulator, QLearningConfig(episodes=4_000, parallel=1_000))
    assert q.shape == (N_STATES, 3) and np.abs(q).sum() > 0
    results = {name: evaluate(simulator, policy, sessions=3_000) for name, policy in {
        "q": q_policy(q), "random": random_policy(3), "greedy": greedy_policy(simulator),
        "mixed": fixed_policy(1)}.items()}  # fmt: skip
    for result in results.values():
        low, high = result["revenue"]["ci"]
        assert low < result["revenue"]["mean"] < high and result["length"]["mean"] >= 1
        assert sum(result["strategy_share"].values()) == pytest.approx(1.0, abs=1e-3)
    assert results["mixed"]["strategy_share"]["mixed"] == 1.0
    assert results["greedy"]["revenue"]["mean"] > results["mixed"]["revenue"]["mean"]
    assert evaluate(simulator, q_policy(q), sessions=500) == evaluate(simulator, q_policy(q), sessions=500)
    assert choices_table(q, simulator.names).shape == (11, 5)
