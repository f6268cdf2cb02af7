"""CRMFunnelEnv: Gymnasium contract, registration, seeding, and one copy of the dynamics."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import nextbest.envs
from funnel_helpers import FixedWillingness
from nextbest.envs import ENV_ID, CRMFunnelEnv
from nextbest.errors import NextbestError
from nextbest.sim import ACTIONS, STAGES

WAIT, EMAIL = ACTIONS.index("wait"), ACTIONS.index("email")


@pytest.fixture()
def env(funnel) -> CRMFunnelEnv:
    sim, codes = funnel
    return CRMFunnelEnv(simulator=sim, codes=codes)


def run(env: gymnasium.Env, seed: int, actions: list[int]) -> list[tuple]:
    """(obs, reward, terminated, truncated, info) of each step until the episode or `actions` end."""
    obs, info = env.reset(seed=seed)
    out = [(obs, 0.0, False, False, info)]
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        out.append((obs, reward, terminated, truncated, info))
        if terminated or truncated:
            break
    return out


def test_env_checker_passes(env, funnel):
    check_env(env.unwrapped, skip_render_check=True)
    sim, codes = funnel
    made = gymnasium.make(ENV_ID, simulator=sim, codes=codes)
    check_env(made.unwrapped)  # with a spec, so the checker also tries the "ansi" render mode
    assert env.observation_space == gymnasium.spaces.Box(0.0, 1.0, (16,), np.float32)
    assert env.action_space == gymnasium.spaces.Discrete(6)


def test_make_with_defaults_and_module_prefix():
    env = gymnasium.make(ENV_ID)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs) and info["week"] == 0
    assert env.spec.max_episode_steps is None  # the simulator truncates at its own horizon
    again = gymnasium.make(f"nextbest.envs:{ENV_ID}")
    assert isinstance(again.unwrapped, CRMFunnelEnv)
    assert again.unwrapped.simulator is env.unwrapped.simulator  # the default simulator is built once
    nextbest.envs.register_envs()  # idempotent
    vector = gymnasium.make_vec(ENV_ID, num_envs=2, vectorization_mode="sync")
    observations, _ = vector.reset(seed=1)
    assert observations.shape == (2, 16)
    vector.close()


def test_same_seed_same_trajectory(env, funnel):
    sim, codes = funnel
    actions = np.random.default_rng(7).integers(0, 6, size=sim.config.horizon).tolist()
    other = CRMFunnelEnv(simulator=sim, codes=codes)
    for seed in range(20):
        first, second = run(env, seed, actions), run(other, seed, actions)
        assert len(first) == len(second)
        for a, b in zip(first, second):
            np.testing.assert_array_equal(a[0], b[0])
            assert a[1:] == b[1:]


def test_reset_draws_lead_and_thresholds_from_np_random(env, funnel):
    sim, codes = funnel
    env.reset(seed=42)
    rng = np.random.default_rng(42)
    lead = int(rng.integers(len(codes)))
    expected = sim.reset(codes[[lead]], rng)
    np.testing.assert_array_equal(env.state.codes[0], codes[lead])
    np.testing.assert_array_equal(env.state.u, expected.u)


def test_env_and_batched_simulator_agree(env, funnel):
    """n episodes of the env equal one batch of n leads in the simulator: one copy of the dynamics."""
    sim, codes = funnel
    n, horizon = 150, sim.config.horizon
    actions = np.random.default_rng(3).integers(0, 6, size=(n, horizon))
    leads, thresholds = [], []
    for seed in range(n):
        _, info = env.reset(seed=seed)
        leads.append(info["lead"])
        thresholds.append(env.state.u[0].copy())
    batch = sim.reset(codes[leads], np.random.default_rng(0))
    batch.u[:] = np.array(thresholds)  # the same leads with the thresholds each episode drew
    batch_obs, batch_reward, batch_done = [sim.observe(batch)], [], []
    for week in range(horizon):
        result = sim.step(batch, actions[:, week])
        batch_obs.append(sim.observe(batch))
        batch_reward.append(result.reward)
        batch_done.append(result.done)
    for i in range(n):
        trajectory = run(env, i, actions[i].tolist())
        np.testing.assert_array_equal(trajectory[0][0], batch_obs[0][i])
        for week, (obs, reward, terminated, truncated, _) in enumerate(trajectory[1:]):
            np.testing.assert_array_equal(obs, batch_obs[week + 1][i])
            assert reward == batch_reward[week][i]
            assert (terminated or truncated) == batch_done[week][i]
        assert trajectory[-1][4]["subscribed"] == batch.subscribed[i]
        assert trajectory[-1][4]["dropped"] == batch.dropped[i]


def test_observations_stay_in_space_under_random_actions(env):
    env.action_space.seed(0)
    ends = {"terminated": 0, "truncated": 0}
    for seed in range(200):
        obs, _ = env.reset(seed=seed)
        assert env.observation_space.contains(obs)
        done = False
        while not done:
            obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
            assert env.observation_space.contains(obs), obs
            assert np.isfinite(reward) and info["stage"] in STAGES
            done = terminated or truncated
        ends["terminated" if terminated else "truncated"] += 1
    assert ends["terminated"] > 0 and ends["truncated"] > 0


def test_terminated_truncated_semantics(env, funnel):
    sim, codes = funnel
    horizon = sim.config.horizon
    for seed in range(100):
        for step, (_, _, terminated, truncated, info) in enumerate(run(env, seed, [EMAIL] * horizon)):
            assert not (terminated and truncated)
            assert terminated == (info["subscribed"] or info["dropped"])
            assert truncated == (step == horizon and not terminated)


def test_willing_lead_subscribes_and_terminates(funnel):
    sim, codes = funnel
    env = CRMFunnelEnv(simulator=FixedWillingness(sim, 0.0), codes=codes)
    env.reset(seed=0)
    _, reward, terminated, truncated, info = env.step(WAIT)
    assert terminated and not truncated and info["subscribed"] and info["stage"] == "subscribed"
    assert reward == info["business_reward"] == sim.reward.subscription_value
    with pytest.raises(NextbestError, match="reset"):
        env.step(WAIT)
    env.reset(seed=0)
    _, reward, terminated, truncated, info = env.step(EMAIL)  # a contact: the willing-to-leave lead drops
    assert terminated and not truncated and info["dropped"] and info["stage"] == "not interested"
    assert reward == -info["cost"] == -1.0


def test_unwilling_lead_is_truncated_at_horizon(funnel):
    sim, codes = funnel
    env = CRMFunnelEnv(simulator=FixedWillingness(sim, 1.0), codes=codes)
    trajectory = run(env, 0, [EMAIL] * 50)
    assert len(trajectory) == sim.config.horizon + 1
    assert trajectory[-1][3] and not trajectory[-1][2]
    assert all(not step[2] and not step[3] for step in trajectory[:-1])


def test_reset_options_render_and_errors(env, funnel):
    sim, codes = funnel
    _, info = env.reset(seed=0, options={"lead": 5})
    assert info["lead"] == 5
    with pytest.raises(NextbestError, match="outside the pool"):
        env.reset(options={"lead": len(codes)})
    with pytest.raises(NextbestError, match="action"):
        env.step(6)
    text = CRMFunnelEnv(sim, codes, render_mode="ansi")
    text.reset(seed=0)
    assert "week 0/" in text.render()
    with pytest.raises(NextbestError, match="render_mode"):
        CRMFunnelEnv(sim, codes, render_mode="human")
    with pytest.raises(NextbestError, match="lead pool"):
        CRMFunnelEnv(simulator=sim)
    with pytest.raises(NextbestError, match="one code per covariate"):
        CRMFunnelEnv(sim, codes[:, :1])
    with pytest.raises(NextbestError, match="codes must be"):
        CRMFunnelEnv(sim, codes + 100)
