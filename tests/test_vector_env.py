"""FunnelVecEnv: seeding, SB3 auto-reset semantics, the VecEnv methods, and one copy of the dynamics."""

from __future__ import annotations

import numpy as np
import pytest
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import VecEnv, VecMonitor

from funnel_helpers import FixedWillingness
from nextbest.envs import CRMFunnelEnv
from nextbest.envs.vector import FunnelVecEnv, copy_rows
from nextbest.errors import NextbestError
from nextbest.sim import ACTIONS, FunnelSimulator

pytestmark = pytest.mark.rl

WAIT, EMAIL = ACTIONS.index("wait"), ACTIONS.index("email")
OBS_WEEK = 4
SCALE = 0.01


def make(funnel, num_envs: int = 16, seed: int | None = 0, simulator: FunnelSimulator | None = None) -> FunnelVecEnv:
    sim, codes = funnel
    return FunnelVecEnv(simulator or sim, codes, num_envs=num_envs, reward_scale=SCALE, seed=seed)


def roll(env: FunnelVecEnv, actions: np.ndarray) -> list[tuple]:
    """(obs, rewards, dones, infos) of reset and of each vector step under actions (steps, num_envs)."""
    out = [(env.reset(), None, None, None)]
    out.extend(env.step(a) for a in actions)
    return out


def test_spaces_match_the_gymnasium_env(funnel):
    sim, codes = funnel
    env, single = make(funnel), CRMFunnelEnv(sim, codes)
    assert isinstance(env, VecEnv) and env.num_envs == 16
    assert env.observation_space == single.observation_space
    assert env.action_space == single.action_space
    obs = env.reset()
    assert obs.shape == (16, 16) and obs.dtype == np.float32
    assert all(env.observation_space.contains(row) for row in obs)


def test_same_seed_same_trajectories(funnel):
    actions = np.random.default_rng(1).integers(0, 6, size=(40, 16))
    first, second = roll(make(funnel, seed=3), actions), roll(make(funnel, seed=3), actions)
    other = roll(make(funnel, seed=4), actions)
    assert not np.array_equal(first[0][0], other[0][0])
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a[0], b[0])
        if a[1] is None:
            continue
        np.testing.assert_array_equal(a[1], b[1])
        np.testing.assert_array_equal(a[2], b[2])
        for info_a, info_b in zip(a[3], b[3]):
            assert info_a.keys() == info_b.keys()
            for key, value in info_a.items():
                np.testing.assert_array_equal(value, info_b[key])
    # seed() replaces the generator: seeding again and resetting repeats the first episodes
    env = make(funnel, seed=None)
    assert env.seed(3) == [3] * 16
    np.testing.assert_array_equal(env.reset(), first[0][0])


def test_auto_reset_semantics(funnel):
    sim = funnel[0]
    env = make(funnel, num_envs=32)
    obs = env.reset()
    rng = np.random.default_rng(0)
    ended = truncated_count = 0
    for _ in range(60):
        last_week = obs[:, OBS_WEEK].copy()
        obs, rewards, dones, infos = env.step(rng.integers(0, 6, size=32))
        assert dones.dtype == bool and rewards.dtype == np.float32 and obs.shape == (32, 16)
        np.testing.assert_array_equal(obs, sim.observe(env.state))  # the batch state is what was observed
        for i, info in enumerate(infos):
            assert {"business_reward", "cost", "lead", "TimeLimit.truncated"} <= info.keys()
            assert rewards[i] == np.float32((info["business_reward"]) * SCALE)  # unshaped: reward = business
            if not dones[i]:
                assert "terminal_observation" not in info and not info["TimeLimit.truncated"]
                assert obs[i, OBS_WEEK] > last_week[i]
                continue
            ended += 1
            terminal = info["terminal_observation"]
            assert terminal.shape == (16,) and terminal[OBS_WEEK] > 0
            assert obs[i, OBS_WEEK] == 0  # the next episode's first observation
            at_horizon = terminal[OBS_WEEK] == 1.0
            subscribed_or_dropped = info["business_reward"] > 0 or terminal[2] in (0.75, 1.0)
            assert info["TimeLimit.truncated"] == (at_horizon and not subscribed_or_dropped)
            truncated_count += info["TimeLimit.truncated"]
        assert not env.state.done.any()
    assert ended > 32 and 0 < truncated_count < ended


def test_auto_reset_of_forced_outcomes(funnel):
    sim, codes = funnel
    unwilling = make(funnel, num_envs=8, simulator=FixedWillingness(sim, 1.0))
    unwilling.reset()
    for week in range(1, sim.config.horizon + 1):
        obs, rewards, dones, infos = unwilling.step(np.full(8, EMAIL))
        np.testing.assert_array_equal(rewards, np.float32(-SCALE))
        assert [info["cost"] for info in infos] == [1.0] * 8
        assert dones.all() == (week == sim.config.horizon) and dones.any() == dones.all()
    assert all(info["TimeLimit.truncated"] for info in infos)
    assert all(info["terminal_observation"][OBS_WEEK] == 1.0 for info in infos)
    assert (obs[:, OBS_WEEK] == 0).all()

    willing = make(funnel, num_envs=8, simulator=FixedWillingness(sim, 0.0))
    willing.reset()
    obs, rewards, dones, infos = willing.step(np.full(8, WAIT))
    assert dones.all() and not any(info["TimeLimit.truncated"] for info in infos)
    np.testing.assert_array_equal(rewards, np.float32(sim.reward.subscription_value * SCALE))
    assert [info["business_reward"] for info in infos] == [sim.reward.subscription_value] * 8
    assert (obs[:, OBS_WEEK] == 0).all() and (obs[:, 2] == 0).all()  # new leads, stage "new"


def test_first_episodes_equal_the_batched_simulator(funnel):
    """VecEnv and simulator stepped on the same leads, thresholds and actions agree: one copy of the dynamics."""
    sim, codes = funnel
    n, horizon = 200, sim.config.horizon
    env = make(funnel, num_envs=n, seed=11)
    env_obs = [env.reset()]
    leads, thresholds = env.leads, env.state.u.copy()
    batch = sim.reset(codes[leads], np.random.default_rng(99))
    batch.u[:] = thresholds
    np.testing.assert_array_equal(env_obs[0], sim.observe(batch))
    actions = np.random.default_rng(5).integers(0, 6, size=(horizon, n))
    running = np.ones(n, dtype=bool)  # still in the first episode
    for week in range(horizon):
        obs, rewards, dones, infos = env.step(actions[week])
        result = sim.step(batch, actions[week])
        expected = sim.observe(batch)
        for i in np.flatnonzero(running):
            assert rewards[i] == np.float32(result.reward[i] * SCALE)
            assert infos[i]["business_reward"] == result.business_reward[i]
            assert infos[i]["cost"] == result.cost[i]
            assert dones[i] == result.done[i]
            if dones[i]:
                np.testing.assert_array_equal(infos[i]["terminal_observation"], expected[i])
                assert infos[i]["TimeLimit.truncated"] == (not (batch.subscribed[i] or batch.dropped[i]))
            else:
                np.testing.assert_array_equal(obs[i], expected[i])
        running &= ~dones
    assert not running.any() and batch.done.all()


def test_one_slot_repeats_the_gymnasium_env(funnel):
    """With one slot and the same seed, the VecEnv draws the same lead and thresholds as CRMFunnelEnv."""
    sim, codes = funnel
    single = CRMFunnelEnv(sim, codes)
    for seed in range(10):
        env = make(funnel, num_envs=1, seed=seed)
        obs, info = single.reset(seed=seed)
        np.testing.assert_array_equal(env.reset()[0], obs)
        assert env.leads[0] == info["lead"]
        np.testing.assert_array_equal(env.state.u, single.state.u)
        for action in np.random.default_rng(seed).integers(0, 6, size=sim.config.horizon):
            obs, reward, terminated, truncated, info = single.step(action)
            vec_obs, rewards, dones, infos = env.step(np.array([action]))
            assert rewards[0] == np.float32(reward * SCALE) and dones[0] == (terminated or truncated)
            assert infos[0]["TimeLimit.truncated"] == truncated
            if dones[0]:
                np.testing.assert_array_equal(infos[0]["terminal_observation"], obs)
                break
            np.testing.assert_array_equal(vec_obs[0], obs)


def test_vec_env_methods(funnel):
    sim = funnel[0]
    env = make(funnel, num_envs=4)
    assert env.render_mode is None and env.get_attr("render_mode") == [None] * 4
    assert env.get_attr("simulator", [1, 2]) == [sim, sim] and env.has_attr("reward_scale")
    assert not env.has_attr("no_such_attribute")
    env.set_attr("reward_scale", 0.5)
    assert env.get_attr("reward_scale", 3) == [0.5]
    with pytest.raises(NextbestError, match="share"):
        env.set_attr("reward_scale", 1.0, indices=[0])
    assert env.env_method("render") == [None] * 4
    assert env.env_method("seed", 7, indices=[0]) == [[7] * 4]
    assert env.env_is_wrapped(Monitor) == [False] * 4
    assert env.render() is None and env.render("rgb_array") is None
    assert env.get_images() == [None] * 4
    assert env.seed() == [None] * 4
    env.set_options({"lead": 1})  # accepted and ignored
    with pytest.raises(NextbestError, match="reset"):
        env.step(np.zeros(4, dtype=np.int64))
    env.reset()
    with pytest.raises(NextbestError, match="expected 4 actions"):
        env.step_async(np.zeros(3, dtype=np.int64))
    with pytest.raises(NextbestError, match="step_async"):
        env.step_wait()
    with pytest.raises(NextbestError, match="actions must be"):
        env.step(np.full(4, 6))
    obs, rewards, dones, infos = env.step(np.zeros(4, dtype=np.int64))
    assert obs.shape == (4, 16) and rewards.shape == dones.shape == (4,) and len(infos) == 4
    assert env.unwrapped is env
    env.close()
    with pytest.raises(NextbestError, match="reset"):
        env.step(np.zeros(4, dtype=np.int64))
    with pytest.raises(NextbestError, match="num_envs"):
        make(funnel, num_envs=0)
    with pytest.raises(NextbestError, match="lead pool"):
        FunnelVecEnv(sim, funnel[1][:, :1], num_envs=2)


def test_sb3_wrappers_accept_it(funnel):
    env = VecMonitor(make(funnel, num_envs=8))
    env.reset()
    episodes = []
    for _ in range(30):
        _, _, dones, infos = env.step(np.full(8, EMAIL))
        episodes += [info["episode"] for info, done in zip(infos, dones) if done]
    assert episodes and all(1 <= episode["l"] <= 10 for episode in episodes)
    env.close()


def test_copy_rows_overwrites_every_field(funnel):
    sim, codes = funnel
    rng = np.random.default_rng(0)
    target = sim.reset(codes[:6], rng)
    for _ in range(3):
        sim.step(target, rng.integers(0, 6, size=6))
    before = sim.observe(target)
    fresh = sim.reset(codes[10:12], rng)
    copy_rows(target, np.array([1, 4]), fresh)
    after = sim.observe(target)
    np.testing.assert_array_equal(after[[0, 2, 3, 5]], before[[0, 2, 3, 5]])
    np.testing.assert_array_equal(after[[1, 4]], sim.observe(fresh))
    np.testing.assert_array_equal(target.u[[1, 4]], fresh.u)
    assert target.t[1] == target.t[4] == 0 and not target.done[[1, 4]].any()
    with pytest.raises(NextbestError, match="rows"):
        copy_rows(target, np.array([0]), fresh)
