"""Stable-Baselines3 adapters: training, the policy contract, save/load, and the missing-extra error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nextbest.agents.sb3 import SB3Config, SB3Policy, _model_class, train_sb3
from nextbest.errors import NextbestError
from nextbest.policies import check_decision

EPISODES = 200
rl = pytest.mark.rl


@pytest.fixture(scope="module")
def observations(funnel) -> np.ndarray:
    """Observations of 500 leads after two weeks of random actions (varied states)."""
    sim, codes = funnel
    rng = np.random.default_rng(0)
    state = sim.reset(codes[:500], rng)
    for _ in range(2):
        sim.step(state, rng.integers(0, 6, size=len(state)))
    return sim.observe(state)


@pytest.fixture(scope="module", params=["ppo", "dqn"])
def trained(request, funnel, tmp_path_factory) -> tuple[SB3Policy, Path, list[int]]:
    sim, codes = funnel
    out_dir = tmp_path_factory.mktemp(request.param)
    reported: list[int] = []
    policy = train_sb3(
        request.param, sim, codes, EPISODES, seed=0, out_dir=out_dir, progress=reported.append
    )
    return policy, out_dir, reported


@rl
def test_training_reports_episodes_and_curve(trained):
    policy, out_dir, reported = trained
    assert sum(reported) == EPISODES
    assert policy.curve.episode == list(range(1, EPISODES + 1))
    values = np.asarray(policy.curve.business_value)
    assert np.isfinite(values).all() and values.max() <= 1000.0
    assert policy.curve.rolling_mean(50).shape == (EPISODES,)
    assert (out_dir / f"{policy.name}_model.zip").is_file()


@rl
def test_policy_gives_valid_actions_for_a_batch(trained, observations):
    policy = trained[0]
    actions = policy(observations, np.random.default_rng(0))
    check_decision(policy.choose(observations), len(observations), 6)  # the one policy contract
    assert actions.shape == (len(observations),) and actions.dtype == np.int64
    assert ((actions >= 0) & (actions < 6)).all()
    assert policy(observations[:0], None).shape == (0,)
    np.testing.assert_array_equal(policy(observations[:1], None), actions[:1])


@rl
def test_save_load_round_trip(trained, observations, tmp_path):
    policy, out_dir, _ = trained
    loaded = SB3Policy.load(out_dir / f"{policy.name}_model.zip", policy.algorithm)
    np.testing.assert_array_equal(loaded(observations, None), policy(observations, None))
    written = policy.save(tmp_path / "again")
    assert written == tmp_path / "again.zip" and written.is_file()
    reloaded = SB3Policy.load(written, policy.algorithm)
    np.testing.assert_array_equal(reloaded(observations, None), policy(observations, None))


@rl
def test_same_seed_same_policy(funnel, observations):
    sim, codes = funnel
    config = SB3Config(n_envs=2, ppo_n_steps=64, ppo_batch_size=64)
    first, second = (train_sb3("ppo", sim, codes, 40, seed=5, config=config) for _ in range(2))
    assert first.curve.business_value == second.curve.business_value
    np.testing.assert_array_equal(first(observations, None), second(observations, None))


@rl
def test_bad_inputs_raise_nextbest_errors(funnel, tmp_path):
    sim, codes = funnel
    with pytest.raises(NextbestError, match="unknown algorithm"):
        train_sb3("a2c", sim, codes, 10, seed=0)
    with pytest.raises(NextbestError, match="must divide"):
        train_sb3("ppo", sim, codes, 10, seed=0, config=SB3Config(ppo_batch_size=100))
    with pytest.raises(NextbestError, match="no such model"):
        SB3Policy.load(tmp_path / "missing.zip", "ppo")
    broken = tmp_path / "broken.zip"
    broken.write_text("not a zip")
    with pytest.raises(NextbestError, match="not a ppo model"):
        SB3Policy.load(broken, "ppo")


def test_missing_rl_extra_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "stable_baselines3", None)
    with pytest.raises(NextbestError, match=r"install the rl extra: pip install torch==2\.13\.0"):
        _model_class("ppo")


def test_import_does_not_need_torch():
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['stable_baselines3'] = None; "
        "import nextbest.agents.sb3, nextbest.envs; print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
