"""The session simulator as a Stable-Baselines3 VecEnv: `num_envs` sessions stepped as one simulator batch.

Like `FunnelVecEnv`, it holds no dynamics: its slots are the rows of ONE `SessionState`, a vector step is ONE
`SessionSimulator.step` call, and a slot whose session ended starts a fresh session at once (SB3's auto-reset;
``infos[i]["terminal_observation"]`` keeps the last observation, ``"TimeLimit.truncated"`` marks sessions cut at
``max_depth``). Observations are those of `SessionRetentionEnv` (`nextbest.envs.sessions.observe`); rewards are
the page spend times ``reward_scale`` (float32), ``infos[i]["spend"]`` keeps the money.

Imports stable-baselines3 at the top: import it only where SB3 is needed.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn

from nextbest.envs.sessions import OBS_DIM, observe
from nextbest.envs.vector import SharedSlotsVecEnv, copy_rows
from nextbest.errors import NextbestError
from nextbest.sim.session_sim import SessionSimulator, SessionState


class SessionVecEnv(SharedSlotsVecEnv):
    """`num_envs` sessions of one `SessionSimulator` stepped together (see the module docstring)."""

    def __init__(self, simulator: SessionSimulator, num_envs: int, reward_scale: float = 1.0,
                 seed: int | None = None) -> None:  # fmt: skip
        if num_envs < 1:
            raise NextbestError(f"num_envs must be at least 1, got {num_envs}")
        self.simulator = simulator
        self.reward_scale = float(reward_scale)
        self.render_mode = None  # read by VecEnv.__init__ through get_attr
        box = gym.spaces.Box(-1.0, 1.0, shape=(OBS_DIM,), dtype=np.float32)
        super().__init__(num_envs, box, gym.spaces.Discrete(len(simulator.names)))
        self._rng = np.random.default_rng(seed)
        self._state: SessionState | None = None
        self._actions: np.ndarray | None = None

    def reset(self) -> VecEnvObs:
        """Start a session in every slot; returns the (num_envs, 7) first observations."""
        self._state = self.simulator.reset(self.num_envs, self._rng)
        self._actions = None
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return observe(self._state, self.simulator.max_depth)

    def step_wait(self) -> VecEnvStepReturn:
        """One simulator step of all slots, then a fresh session in each slot whose session ended."""
        if self._state is None or self._actions is None:
            raise NextbestError("call reset() and step_async(actions) before step_wait()")
        state, actions, self._actions = self._state, self._actions, None
        spend, dones = self.simulator.step(state, actions, self._rng)
        reward = (state.last_expected_spend * self.reward_scale).astype(np.float32)  # before a restart overwrites it
        obs = observe(state, self.simulator.max_depth)
        truncated = dones & (state.depth >= self.simulator.max_depth)
        infos: list[dict[str, Any]] = [{"spend": float(s), "TimeLimit.truncated": bool(t)}
                                       for s, t in zip(spend, truncated)]  # fmt: skip
        rows = np.flatnonzero(dones)
        if rows.size:
            for i in rows:
                infos[i]["terminal_observation"] = obs[i].copy()
            fresh = self.simulator.reset(rows.size, self._rng)
            copy_rows(state, rows, fresh)
            obs[rows] = observe(fresh, self.simulator.max_depth)
        return obs, reward, dones, infos
