"""`nextbest/SessionRetention-v0` and the learned session simulator it shares with the batched path."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import nextbest.envs  # noqa: F401 - registers the environments
from nextbest.envs.sessions import default_session_simulator
from nextbest.sim.session_sim import SessionSimulator


@pytest.fixture(scope="module")
def simulator() -> SessionSimulator:
    return default_session_simulator(sessions=5_000, seed=1)


def test_env_passes_the_checker(simulator: SessionSimulator) -> None:
    env = gym.make("nextbest/SessionRetention-v0", simulator=simulator)
    check_env(env.unwrapped, skip_render_check=True)
    assert env.action_space.n == len(simulator.names) == 3


def test_env_and_batch_share_one_simulator(simulator: SessionSimulator) -> None:
    env = gym.make("nextbest/SessionRetention-v0", simulator=simulator).unwrapped
    env.reset(seed=7)
    rewards, done = [], False
    while not done:
        _, reward, terminated, truncated, info = env.step(2)
        rewards.append(reward)
        done = terminated or truncated
    rng = np.random.default_rng(7)
    state = simulator.reset(1, rng)
    batch = []
    while state.active[0]:
        spend, _ = simulator.step(state, np.array([2]), rng)
        batch.append(float(spend[0]))
    assert rewards == batch and info["depth"] == len(batch)


def test_strategies_change_the_outcome(simulator: SessionSimulator) -> None:
    means = {}
    for action, name in enumerate(simulator.names):
        rng = np.random.default_rng(0)
        state = simulator.reset(4_000, rng)
        total = np.zeros(4_000)
        while state.active.any():
            total += simulator.step(state, np.full(4_000, action), rng)[0]
        means[name] = (total.mean(), state.depth.mean())
        assert (state.depth >= 1).all() and (state.depth <= simulator.max_depth).all()
    fresh = simulator.reset(4_000, np.random.default_rng(0))
    discount, mixed = simulator.names.index("discount"), simulator.names.index("mixed")
    # a first discount page sells more than a mixed one, but shown page after page it wears off
    assert simulator.expected_spend(fresh, discount).mean() > simulator.expected_spend(fresh, mixed).mean()
    assert means["discount"][0] < means["mixed"][0]
    assert means["feed"][1] > means["discount"][1]  # engaging content keeps users longer


def test_registered_id_matches_the_module() -> None:
    from nextbest.envs import SESSION_ENV_ID, SessionRetentionEnv
    from nextbest.envs.sessions import ENV_ID

    assert SESSION_ENV_ID == ENV_ID and gym.spec(ENV_ID).entry_point.endswith(SessionRetentionEnv.__name__)


def test_discount_lifts_purchases_less_for_rich_users_and_wears_off(simulator: SessionSimulator) -> None:
    state = simulator.reset(4, np.random.default_rng(0))
    state.power = np.array([0, 10, 0, 0])
    state.exposure = np.array([0.0, 0.0, 1.0, 3.0])
    discount = simulator.names.index("discount")
    lift = simulator.buy_factor(state, np.full(4, discount)) - 1
    assert lift[0] > lift[1] > 0 and lift[0] > lift[2] > lift[3] > 0
    rng = np.random.default_rng(1)
    state = simulator.reset(1_000, rng)
    simulator.step(state, np.full(1_000, discount), rng)
    assert np.allclose(state.exposure[state.active], 1.0) or not state.active.any()
    simulator.step(state, np.full(1_000, simulator.names.index("mixed")), rng)
    assert np.allclose(state.exposure[state.active], simulator.exposure_decay)
