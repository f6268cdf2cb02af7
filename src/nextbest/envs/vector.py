"""The CRM funnel as a Stable-Baselines3 VecEnv: `num_envs` leads stepped as one simulator batch.

`FunnelVecEnv` holds no dynamics of its own either. Its `num_envs` slots are the rows of ONE
`FunnelState`, and a vector step is ONE `FunnelSimulator.step` call on all of them, instead of
`num_envs` single-lead `CRMFunnelEnv.step` calls behind a DummyVecEnv. A slot whose episode ended
is started again at once (SB3's auto-reset): a fresh lead is drawn from the pool, `simulator.reset`
is called for the finished rows only, and `copy_rows` writes every field of that fresh state into
those rows of the batch.

Contract (SB3 VecEnv; the spaces are those of `CRMFunnelEnv`):
    reset()            draws num_envs leads uniformly from the pool with the env's generator
                       (`seed(s)` replaces it by `np.random.default_rng(s)`) and returns (num_envs, 16)
    step(actions)      returns obs, rewards, dones, infos; rewards are the simulator's training
                       reward times `reward_scale` (float32). For a slot that is done, obs is the
                       first observation of its next episode and `infos[i]["terminal_observation"]`
                       the last observation of the ended one.
    infos[i]           "business_reward" and "cost" of the week in money (unscaled), "lead" (pool row
                       of the episode the week belonged to), "TimeLimit.truncated": the episode ended
                       at the simulator's horizon without subscription or drop-out (SB3 then bootstraps).

All slots share one simulator, one generator and one pool, so `get_attr`, `set_attr` and
`env_method` act on the vector env itself (the same value for every index), and nothing is
wrapped or rendered.

This module imports stable-baselines3 at the top: import it only where SB3 is needed
(`nextbest.agents.sb3`), so that `import nextbest.envs` works without the rl extra.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn

from nextbest.envs.crm import check_pool
from nextbest.errors import NextbestError
from nextbest.sim.funnel import FunnelSimulator, FunnelState


def copy_rows(target: Any, rows: np.ndarray, source: Any) -> None:
    """Overwrite `rows` of every per-lead field of the dataclass state `target` (a `FunnelState`, a
    `SessionState`) with the rows of `source`, a state of the same class with len(rows) rows; fields whose
    metadata says "shared" hold one value for the whole batch and are left alone."""
    size = len(getattr(source, fields(source)[0].name))
    if size != len(rows):
        raise NextbestError(f"{len(rows)} rows to overwrite but a source state of {size} rows")
    for item in fields(source):
        if not item.metadata.get("shared"):
            getattr(target, item.name)[rows] = getattr(source, item.name)


class SharedSlotsVecEnv(VecEnv):
    """The plumbing of a VecEnv whose slots are rows of ONE simulator batch: one generator (``_rng``), one state
    (``_state``), pending actions (``_actions``); attributes and methods are the vector env's own."""

    _rng: np.random.Generator
    _state: Any
    _actions: np.ndarray | None

    def step_async(self, actions: np.ndarray) -> None:
        """Remember one action per slot for `step_wait`."""
        actions = np.asarray(actions).reshape(-1)
        if actions.shape != (self.num_envs,):
            raise NextbestError(f"expected {self.num_envs} actions, got {actions.size}")
        self._actions = actions.astype(np.int64)

    def close(self) -> None:
        """Nothing to release; the current episodes are dropped."""
        self._state = None
        self._actions = None

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Replace the env's generator by `np.random.default_rng(seed)` (all slots share it).

        Takes effect for the next draw (the next `reset()` or auto-reset); returns `seed` once per slot.
        """
        self._rng = np.random.default_rng(seed)
        return [seed] * self.num_envs

    # ------------------------------------------------------------------ VecEnv plumbing (one shared env)
    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The vector env's attribute, once per index (the slots share it)."""
        value = getattr(self, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set an attribute of the vector env; only for all slots at once, since they share it."""
        if sorted(set(self._get_indices(indices))) != list(range(self.num_envs)):
            raise NextbestError("the slots of this vector env share their attributes: set them for all indices")
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        """Call a method of the vector env once per index (the slots share it)."""
        method = getattr(self, method_name)
        return [method(*method_args, **method_kwargs) for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        """No slot is a wrapped Gymnasium env."""
        return [False for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        """No images: nothing is rendered."""
        return [None for _ in self._get_indices(None)]

    def render(self, mode: str | None = None) -> np.ndarray | None:
        """No rendering."""
        return None


class FunnelVecEnv(SharedSlotsVecEnv):
    """`num_envs` leads of a lead pool stepped together through one FunnelSimulator (see module docstring).

    Args:
        simulator: the dynamics (shared, it keeps no episode state).
        codes: integer covariate codes (n, C) of the pool leads (`simulator.model.encode_leads`).
        num_envs: leads stepped together (the SB3 environments).
        reward_scale: factor applied to the rewards returned to the learner; infos stay in money.
        seed: seed of the env's generator (leads and latent thresholds); `seed()` sets it again.
    """

    def __init__(
        self,
        simulator: FunnelSimulator,
        codes: np.ndarray,
        num_envs: int,
        reward_scale: float = 1.0,
        seed: int | None = None,
    ) -> None:
        if num_envs < 1:
            raise NextbestError(f"num_envs must be at least 1, got {num_envs}")
        self.simulator = simulator
        self.codes = check_pool(simulator, codes)
        self.reward_scale = float(reward_scale)
        self.render_mode = None  # read by VecEnv.__init__ through get_attr
        super().__init__(
            num_envs,
            gym.spaces.Box(0.0, 1.0, shape=(simulator.layout.obs_dim,), dtype=np.float32),
            gym.spaces.Discrete(simulator.n_actions),
        )
        self._rng = np.random.default_rng(seed)
        self._state: FunnelState | None = None
        self._leads = np.full(num_envs, -1, dtype=np.int64)
        self._actions: np.ndarray | None = None

    @property
    def state(self) -> FunnelState:
        """The simulator state of the num_envs current leads (one row per slot); read it, do not change it."""
        if self._state is None:
            raise NextbestError("call reset() before reading the state")
        return self._state

    @property
    def leads(self) -> np.ndarray:
        """Pool row of each slot's current episode (-1 before the first reset)."""
        return self._leads.copy()

    @property
    def pool_size(self) -> int:
        """Number of leads an episode samples from."""
        return int(self.codes.shape[0])

    # ------------------------------------------------------------------ episodes
    def _new_leads(self, count: int) -> tuple[np.ndarray, FunnelState]:
        """Draw `count` pool rows and start their episodes (same draw order as CRMFunnelEnv.reset)."""
        leads = self._rng.integers(self.pool_size, size=count)
        return leads, self.simulator.reset(self.codes[leads], rng=self._rng)

    def reset(self) -> VecEnvObs:
        """Start new episodes in every slot; returns the (num_envs, obs_dim) first observations."""
        self._leads, self._state = self._new_leads(self.num_envs)
        self._actions = None
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [{"lead": int(lead)} for lead in self._leads]
        return self.simulator.observe(self._state)

    def step_wait(self) -> VecEnvStepReturn:
        """One simulator step of all slots, then the auto-reset of the slots whose episode ended."""
        state = self.state
        if self._actions is None:
            raise NextbestError("call step_async(actions) before step_wait()")
        actions, self._actions = self._actions, None
        result = self.simulator.step(state, actions)
        obs = self.simulator.observe(state)
        dones = result.done
        truncated = dones & ~(state.subscribed | state.dropped)
        rewards = (result.reward * self.reward_scale).astype(np.float32)
        infos: list[dict[str, Any]] = [
            {"business_reward": float(b), "cost": float(c), "lead": int(lead), "TimeLimit.truncated": bool(t)}
            for b, c, lead, t in zip(result.business_reward, result.cost, self._leads, truncated)
        ]
        rows = np.flatnonzero(dones)
        if rows.size:
            for i in rows:
                infos[i]["terminal_observation"] = obs[i].copy()
            leads, fresh = self._new_leads(rows.size)
            copy_rows(state, rows, fresh)
            self._leads[rows] = leads
            obs[rows] = self.simulator.observe(fresh)
        return obs, rewards, dones, infos
