"""Policies on the learned session simulator: Q-learning, random, fixed and greedy, with intervals."""

from __future__ import annotations

import numpy as np
import pytest

from nextbest.agents.sessions import (
    N_STATES,
    QLearningConfig,
    SessionPPOConfig,
    choices_table,
    compare_policies,
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
    q = train_q(simulator, QLearningConfig.for_sessions(episodes=4_000, batch_size=1_000))
    assert q.shape == (N_STATES, 3) and np.abs(q).sum() > 0
    results = {name: evaluate(simulator, policy, sessions=3_000) for name, policy in {
        "q": q_policy(q), "random": random_policy(3), "greedy": greedy_policy(simulator),
        "mixed": fixed_policy(1, 3)}.items()}  # fmt: skip
    for result in results.values():
        low, high = result.revenue.ci
        assert low < result.revenue.mean < high and result.length.mean >= 1
        assert sum(result.strategy_share.values()) == pytest.approx(1.0, abs=1e-3)
    assert results["mixed"].strategy_share["mixed"] == 1.0
    assert results["greedy"].revenue.mean > results["mixed"].revenue.mean
    assert evaluate(simulator, q_policy(q), sessions=500) == evaluate(simulator, q_policy(q), sessions=500)
    shares = choices_table(results["q"].choices, simulator.names, "discount")
    assert shares.shape == (11, 5) and ((shares.fillna(0) >= 0) & (shares.fillna(0) <= 1)).all().all()
    assert choices_table(results["mixed"].choices, simulator.names, "mixed").stack().dropna().eq(1.0).all()


def test_ppo_trains_on_the_batched_env_and_the_verdict_compares_intervals(simulator: SessionSimulator) -> None:
    config = SessionPPOConfig(timesteps=8_192, n_envs=64, n_steps=16, batch_size=256)
    q_config = QLearningConfig.for_sessions(episodes=2_000, batch_size=500)
    study = compare_policies(simulator, q_config, config, sessions=2_000)
    assert {"random", "always feed", "always mixed", "always discount", "greedy one-step", "q-learning",
            "ppo"} == set(study.policies)  # fmt: skip
    assert study.policies["ppo"].kind == "agent" and study.policies["ppo"].train_seconds > 0
    best_fixed = study.policies[study.best_fixed].revenue
    best_agent = study.policies[study.best_agent].revenue
    assert study.retained_revenue.per_session == pytest.approx(best_agent.mean - best_fixed.mean)
    assert study.agent_beats_best_fixed == (best_agent.ci[0] > best_fixed.ci[1])
    assert study.strategies.strategies["discount"].fatigue > 0


def test_vector_env_steps_one_batch_and_restarts_finished_sessions(simulator: SessionSimulator) -> None:
    from nextbest.envs.session_vector import SessionVecEnv

    env = SessionVecEnv(simulator, num_envs=32, seed=3)
    obs = env.reset()
    assert obs.shape == (32, 7) and obs.dtype == np.float32
    finished = 0
    for _ in range(40):
        obs, rewards, dones, infos = env.step(np.full(32, 2))
        assert rewards.shape == (32,) and (rewards >= 0).all()
        for i in np.flatnonzero(dones):
            assert "terminal_observation" in infos[i] and obs[i][3] == 0.0  # depth 0: a fresh session
            finished += 1
    assert finished > 0 and env.observation_space.contains(obs[0])


def test_vector_env_rewards_every_page_with_its_expected_spend_the_last_one_included(
        simulator: SessionSimulator) -> None:  # fmt: skip
    """The reward of a slot is the page's expected spend times reward_scale, also on the page that ends its
    session (the slot's restart must not overwrite it): the env's rewards equal a replay of the simulator with the
    same generator, step by step."""
    from nextbest.envs.session_vector import SessionVecEnv
    from nextbest.envs.vector import copy_rows

    env = SessionVecEnv(simulator, num_envs=16, reward_scale=0.5, seed=4)
    env.reset()
    rng = np.random.default_rng(4)
    state = simulator.reset(16, rng)
    terminal_rewards = []
    for step in range(30):
        actions = np.arange(16) % len(simulator.names)
        _, rewards, dones, _ = env.step(actions)
        done = simulator.step(state, actions, rng)[1]
        expected = (state.last_expected_spend * 0.5).astype(np.float32)
        np.testing.assert_array_equal(dones, done, err_msg=f"step {step}")
        np.testing.assert_array_equal(rewards, expected, err_msg=f"step {step}")
        terminal_rewards.extend(rewards[done])
        if done.any():
            copy_rows(state, np.flatnonzero(done), simulator.reset(int(done.sum()), rng))
    assert len(terminal_rewards) > 0 and np.count_nonzero(terminal_rewards) > 0
