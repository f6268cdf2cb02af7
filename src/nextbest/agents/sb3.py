"""Stable-Baselines3 PPO and DQN on the CRM funnel, as policies like every other one.

Read top to bottom: hyper-parameters (`SB3Config`), the trained policy (`SB3Policy`), training
(`train_sb3`) and the episode callback behind the reward curve.

Training runs SB3's MlpPolicy on CPU on a `FunnelVecEnv` (`nextbest.envs.vector`): `n_envs` leads
of the pool stepped together by ONE `FunnelSimulator.step` call per vector step, each finished lead
replaced at once by a fresh one (the dynamics of `CRMFunnelEnv`, without one Python env per lead).
The simulator reward is multiplied by `reward_scale` for the learner only (a subscription is worth
1000 against action costs of 0–20; unscaled, the value targets are too large for a small network);
the curve and `info["business_reward"]` stay in money. The step budget is `episodes · horizon`;
training stops earlier once `episodes` episodes have ended (leads that subscribe or drop out end
early).

torch and stable-baselines3 are imported inside the functions: `import nextbest.agents.sb3`
works without the rl extra, and using it without them raises a NextbestError saying how to
install them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from nextbest.errors import NextbestError
from nextbest.policies import Decision, Policy
from nextbest.policies.contract import deterministic
from nextbest.sim.funnel import FunnelSimulator

Algorithm = Literal["ppo", "dqn"]
ALGORITHMS: tuple[str, ...] = ("ppo", "dqn")
INSTALL_HINT = "install the rl extra: pip install torch==2.13.0 'nextbest[rl]'"


@dataclass
class SB3Config:
    """Hyper-parameters of both algorithms (small defaults for 16 inputs, 6 actions, sparse reward).

    Shared: n_envs leads stepped together (one simulator batch), discount gamma (episodes last at
    most 10 weeks, so close to 1), learning rate, hidden layers, reward scale for the learner,
    torch threads.
    ppo_*: steps per environment per rollout (a rollout is ppo_n_steps · n_envs transitions, 2,048
    by default), minibatch size, epochs per rollout, GAE λ, clip range, entropy bonus (keeps
    exploring while rewards are rare).
    dqn_*: replay buffer size, transitions before learning starts, minibatch size, vector steps
    (of n_envs transitions each) between updates, gradient steps per update, target network
    update interval (transitions), share of training over which ε falls from 1 to `dqn_final_eps`.
    The defaults replay each transition 8 times on average (gradient_steps · batch_size / n_envs).
    """

    n_envs: int = 64
    gamma: float = 0.99
    learning_rate: float = 3e-4
    net_arch: list[int] = field(default_factory=lambda: [64, 64])
    reward_scale: float = 0.01
    torch_threads: int = 1
    ppo_n_steps: int = 32
    ppo_batch_size: int = 128
    ppo_n_epochs: int = 4
    ppo_gae_lambda: float = 0.95
    ppo_clip_range: float = 0.2
    ppo_ent_coef: float = 0.01
    dqn_buffer_size: int = 50_000
    dqn_learning_starts: int = 500
    dqn_batch_size: int = 128
    dqn_train_freq: int = 1
    dqn_gradient_steps: int = 4
    dqn_target_update_interval: int = 1000
    dqn_exploration_fraction: float = 0.3
    dqn_final_eps: float = 0.05

    def validate(self) -> None:
        """Raise NextbestError for settings SB3 would reject later with a traceback."""
        if self.n_envs < 1 or self.torch_threads < 1:
            raise NextbestError("n_envs and torch_threads must be at least 1")
        if not 0 <= self.gamma <= 1 or self.learning_rate <= 0 or self.reward_scale <= 0:
            raise NextbestError("gamma must be in [0, 1], learning_rate and reward_scale positive")
        if (self.ppo_n_steps * self.n_envs) % self.ppo_batch_size:
            raise NextbestError(
                f"ppo_batch_size ({self.ppo_batch_size}) must divide ppo_n_steps · n_envs "
                f"({self.ppo_n_steps * self.n_envs})"
            )

    def algorithm_kwargs(self, algorithm: Algorithm) -> dict[str, Any]:
        """Constructor arguments of SB3's PPO or DQN (without policy, env, seed and device)."""
        common = {
            "gamma": self.gamma,
            "learning_rate": self.learning_rate,
            "policy_kwargs": {"net_arch": self.net_arch},
        }
        if algorithm == "ppo":
            return common | {
                "n_steps": self.ppo_n_steps,
                "batch_size": self.ppo_batch_size,
                "n_epochs": self.ppo_n_epochs,
                "gae_lambda": self.ppo_gae_lambda,
                "clip_range": self.ppo_clip_range,
                "ent_coef": self.ppo_ent_coef,
            }
        return common | {
            "buffer_size": self.dqn_buffer_size,
            "learning_starts": self.dqn_learning_starts,
            "batch_size": self.dqn_batch_size,
            "train_freq": self.dqn_train_freq,
            "gradient_steps": self.dqn_gradient_steps,
            "target_update_interval": self.dqn_target_update_interval,
            "exploration_fraction": self.dqn_exploration_fraction,
            "exploration_final_eps": self.dqn_final_eps,
        }


@dataclass
class RewardCurve:
    """Business value (subscription value − costs) of every finished training episode, in order."""

    episode: list[int] = field(default_factory=list)
    business_value: list[float] = field(default_factory=list)

    def rolling_mean(self, window: int) -> np.ndarray:
        """Mean business value of the last `window` episodes at each episode (fewer at the start)."""
        values = np.asarray(self.business_value, dtype=float)
        sums = np.cumsum(np.concatenate([[0.0], values]))
        ends = np.arange(1, values.size + 1)
        starts = np.maximum(ends - window, 0)
        return (sums[ends] - sums[starts]) / (ends - starts)


class SB3Policy(Policy):
    """A trained SB3 model as a policy: `choose(obs (n, obs_dim), rng)`, its deterministic action with probability 1.

    `curve` holds the training reward curve (None after `load`).
    """

    def __init__(self, model: Any, algorithm: Algorithm, curve: RewardCurve | None = None) -> None:
        self.model = model
        self.algorithm = _check_algorithm(algorithm)
        self.name = algorithm
        self.curve = curve
        self.n_actions = int(model.action_space.n)

    def choose(self, obs: np.ndarray, rng: np.random.Generator | None = None) -> Decision:
        return deterministic(self.greedy(obs), self.n_actions)

    def greedy(self, obs: np.ndarray) -> np.ndarray:
        """Deterministic action of each observation row, in one batched forward pass."""
        batch = np.asarray(obs, dtype=np.float32).reshape(-1, self.model.observation_space.shape[0])
        if batch.shape[0] == 0:
            return np.zeros(0, dtype=np.int64)
        actions, _ = self.model.predict(batch, deterministic=True)
        return np.asarray(actions, dtype=np.int64).reshape(-1)

    def save(self, path: str | Path) -> Path:
        """Write the SB3 model zip to `path` (SB3 appends .zip when missing); return the written file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.model.save(path)
        return path if path.suffix == ".zip" else path.with_name(path.name + ".zip")

    @classmethod
    def load(cls, path: str | Path, algorithm: Algorithm) -> SB3Policy:
        """Read a model written by `save` (or by `train_sb3`'s out_dir) for `algorithm`, on CPU."""
        model_class = _model_class(algorithm)
        path = Path(path)
        if not path.is_file() and not path.with_name(path.name + ".zip").is_file():
            raise NextbestError(f"{path}: no such model file")
        try:
            model = model_class.load(path, device="cpu")
        except Exception as error:  # SB3 raises zipfile, pickle and key errors for a wrong file
            raise NextbestError(f"{path}: not a {algorithm} model ({type(error).__name__}: {error})") from error
        return cls(model, algorithm)


def train_sb3(
    algorithm: Algorithm,
    simulator: FunnelSimulator,
    codes: np.ndarray,
    episodes: int,
    seed: int,
    out_dir: Path | None = None,
    progress: Callable[[int], None] | None = None,
    config: SB3Config | None = None,
) -> SB3Policy:
    """Train PPO or DQN on `config.n_envs` leads of the pool (covariate codes (n, C)) for `episodes` episodes.

    Budget: total_timesteps = (episodes + n_envs) · horizon, enough for `episodes` episodes to end
    while n_envs run side by side; training stops as soon as `episodes` episodes have ended.
    `progress(k)` is called with the number of episodes that ended at each step where some did.
    The returned policy carries the reward curve; with `out_dir` the model is saved as
    `out_dir/<algorithm>_model.zip`. The same seed gives the same model. Side effects of SB3 and
    torch on the process: torch's CPU thread count is set to `config.torch_threads`, and the seed
    is applied to the global random, numpy and torch generators.
    """
    config = config or SB3Config()
    config.validate()
    if episodes < 1:
        raise NextbestError(f"episodes must be at least 1, got {episodes}")
    model_class = _model_class(algorithm)
    _torch().set_num_threads(config.torch_threads)
    env = _vector_env(simulator, codes, config)
    model = model_class("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **config.algorithm_kwargs(algorithm))
    callback = _episode_callback(episodes, progress)
    budget = (episodes + config.n_envs) * simulator.config.horizon
    model.set_logger(silent_logger())
    model.learn(total_timesteps=budget, callback=callback)
    env.close()
    policy = SB3Policy(model, algorithm, curve=callback.curve)
    if out_dir is not None:
        policy.save(Path(out_dir) / f"{algorithm}_model.zip")
    return policy


# --------------------------------------------------------------------- helpers (SB3 imported lazily)
def silent_logger() -> Any:
    """An SB3 logger that writes nowhere: SB3's default makes a `SB3-<time>` folder in the temp dir per `learn`."""
    from stable_baselines3.common.logger import Logger

    return Logger(folder=None, output_formats=[])


def _check_algorithm(algorithm: str) -> Algorithm:
    if algorithm not in ALGORITHMS:
        raise NextbestError(f"unknown algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")
    return algorithm  # type: ignore[return-value]


def _torch() -> Any:
    try:
        import torch
    except ImportError as error:
        raise NextbestError(f"PyTorch is not installed ({error}); {INSTALL_HINT}") from None
    return torch


def _model_class(algorithm: str) -> Any:
    """SB3's PPO or DQN class."""
    _check_algorithm(algorithm)
    _torch()
    try:
        from stable_baselines3 import DQN, PPO
    except ImportError as error:
        raise NextbestError(f"stable-baselines3 is not installed ({error}); {INSTALL_HINT}") from None
    return PPO if algorithm == "ppo" else DQN


def _vector_env(simulator: FunnelSimulator, codes: np.ndarray, config: SB3Config) -> Any:
    """FunnelVecEnv of n_envs leads stepped as one simulator batch, reward scaled for the learner.

    SB3 seeds it through `VecEnv.seed` when the model is built.
    """
    from nextbest.envs.vector import FunnelVecEnv

    return FunnelVecEnv(simulator, codes, num_envs=config.n_envs, reward_scale=config.reward_scale)


def _episode_callback(episodes: int, progress: Callable[[int], None] | None) -> Any:
    """An SB3 callback that sums business reward per environment, records ended episodes and stops at `episodes`."""
    from stable_baselines3.common.callbacks import BaseCallback

    class EpisodeCallback(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.curve = RewardCurve()
            self._running: np.ndarray | None = None

        def _on_step(self) -> bool:
            infos, dones = self.locals["infos"], self.locals["dones"]
            if self._running is None:
                self._running = np.zeros(len(infos))
            self._running += [info["business_reward"] for info in infos]
            ended = 0
            for i in np.flatnonzero(dones):
                if len(self.curve.episode) >= episodes:
                    break
                self.curve.episode.append(len(self.curve.episode) + 1)
                self.curve.business_value.append(float(self._running[i]))
                ended += 1
            self._running[dones] = 0.0
            if ended and progress is not None:
                progress(ended)
            return len(self.curve.episode) < episodes

    return EpisodeCallback()
