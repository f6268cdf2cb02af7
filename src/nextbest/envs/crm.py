"""The CRM funnel as a Gymnasium environment: one lead per episode, one week per step.

`CRMFunnelEnv` holds no dynamics of its own. It is a batch of one on top of
`nextbest.sim.funnel.FunnelSimulator`: `reset` samples a lead from a pool of category codes and
calls `simulator.reset` on that single lead, `step` runs the simulator's compiled kernel on that
lead (`simulator.step_into`: the kernel of `simulator.step`, without the checks and allocations a
batch needs), and the observation is `simulator.observe(state)[0]`. The same simulator object
is the vectorized path: to step thousands of leads at once (training loops, evaluation), call
`FunnelSimulator.reset/step/observe` on a whole batch, or `nextbest.sim.rollout.run_episodes`
with a policy. For Stable-Baselines3, `nextbest.envs.vector.FunnelVecEnv` is the same batch as an
SB3 VecEnv (num_envs leads, one `simulator.step` per vector step, finished leads auto-reset); it
imports SB3, so only `nextbest.agents.sb3` imports it. Neither env has dynamics of its own, so there
is one copy of them.

Episode contract:
    observation  Box(0, 1, (obs_dim,), float32): `FunnelSimulator.observe` of the lead (16 for SalesCRM,
                 `simulator.layout.columns` names them)
    action       Discrete(actions of the spec): SalesCRM's email, call, demo, survey, wait, manager
    reward       the simulator's training reward (business value, or the shaped reward when the
                 simulator's RewardConfig says so); `info["business_reward"]` is always business value
    terminated   the lead subscribed or dropped out
    truncated    the simulator's horizon was reached without either (the simulator ends the episode
                 itself, so the registration adds no TimeLimit wrapper)
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import gymnasium as gym
import numpy as np

from nextbest.data.prepared import load_or_prepare
from nextbest.errors import NextbestError
from nextbest.sim.funnel import STAGES, FunnelSimulator, FunnelState, simulator_from_frame
from nextbest.sim.journeys import journeys_from_frame

ENV_ID = "nextbest/CRMFunnel-v0"


class CRMFunnelEnv(gym.Env[np.ndarray, np.int64]):
    """One lead through the CRM funnel, stepped by a FunnelSimulator (see module docstring).

    Args:
        simulator: the dynamics; None builds one from the train split of `data_dir`
            (`load_or_prepare(data_dir)`, the embedded default data when None) and uses its train
            leads as the pool.
        codes: integer covariate codes (n, C) (`simulator.model.encode_leads`) of the leads an
            episode samples from, uniformly; required together with `simulator`.
        data_dir: a folder written by `nextbest crm prepare`; only used without `simulator`.
        render_mode: None or "ansi" (`render()` returns a one-line text of the lead's state).
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(
        self,
        simulator: FunnelSimulator | None = None,
        codes: np.ndarray | None = None,
        data_dir: str | None = None,
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise NextbestError(f"render_mode {render_mode!r} is not supported; use None or 'ansi'")
        if simulator is None:
            if codes is not None:
                raise NextbestError("covariate codes need the simulator that encoded them")
            simulator, codes = default_simulator(data_dir)
        self.simulator = simulator
        self.codes = check_pool(simulator, codes)
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(simulator.layout.obs_dim,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(simulator.n_actions)
        self._state: FunnelState | None = None
        self._lead = -1
        self._n_actions = simulator.n_actions
        self._action = np.zeros(1, dtype=np.int64)  # the kernel's one-lead buffers
        self._week = np.zeros((3, 1))  # the week's training reward, business reward, cost

    @property
    def state(self) -> FunnelState:
        """The simulator state of the current lead (a batch of one); read it, do not change it."""
        if self._state is None:
            raise NextbestError("call reset() before reading the state")
        return self._state

    @property
    def pool_size(self) -> int:
        """Number of leads an episode samples from."""
        return int(self.codes.shape[0])

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode for one lead drawn uniformly from the pool with `self.np_random`.

        `options={"lead": i}` picks pool row i instead. The lead's latent thresholds are drawn by
        `simulator.reset` from `self.np_random` too, so the seed fixes the whole episode.
        """
        super().reset(seed=seed)
        lead = (options or {}).get("lead")
        if lead is None:
            lead = int(self.np_random.integers(self.pool_size))
        elif not 0 <= int(lead) < self.pool_size:
            raise NextbestError(f"lead {lead} is outside the pool of {self.pool_size} leads")
        self._lead = int(lead)
        self._state = self.simulator.reset(self.codes[self._lead : self._lead + 1], rng=self.np_random)
        return self.simulator.observe(self._state)[0], self._info()

    def step(self, action: int | np.integer) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """One week for the lead under `action`; returns (obs, reward, terminated, truncated, info)."""
        state = self.state
        if state.done[0]:
            raise NextbestError("the episode has ended; call reset()")
        fast = type(action) is int and 0 <= action < self._n_actions  # a plain int in range needs no more checks
        if not fast and not self.action_space.contains(action):
            names = self.simulator.spec.action_names
            raise NextbestError(f"action {action!r} is not one of 0..{len(names) - 1} ({', '.join(names)})")
        self._action[0] = action
        self.simulator.step_into(state, self._action, self._week)
        reward, business, cost = self._week[:, 0].tolist()
        subscribed, dropped = bool(state.reached[0, state.conversion]), bool(state.dropped[0])
        terminated = subscribed or dropped
        truncated = bool(state.done[0]) and not terminated
        week, stage = state.t.item(), state.stage.item()
        info = {"lead": self._lead, "week": week, "stage": STAGES[stage], "subscribed": subscribed, "dropped": dropped,
                "business_reward": business, "cost": cost}  # fmt: skip
        return self.simulator.observe(state)[0], reward, terminated, truncated, info

    def _info(self) -> dict[str, Any]:
        state = self.state
        return {
            "lead": self._lead,
            "week": int(state.t[0]),
            "stage": STAGES[int(state.stage[0])],
            "subscribed": bool(state.subscribed[0]),
            "dropped": bool(state.dropped[0]),
        }

    def render(self) -> str | None:
        """With render_mode "ansi": week, stage, contacts and money spent of the current lead."""
        if self.render_mode != "ansi" or self._state is None:
            return None
        state = self._state
        return (
            f"lead {self._lead} week {int(state.t[0])}/{self.simulator.config.horizon} "
            f"stage {STAGES[int(state.stage[0])]} contacts {int(state.contacts[0])} cost {float(state.cost[0]):.0f}"
        )


def check_pool(simulator: FunnelSimulator, codes: np.ndarray | None) -> np.ndarray:
    """Validated integer covariate codes (n, C) of the lead pool (codes up to the 'unseen' code are allowed)."""
    covariates = simulator.spec.covariates
    if codes is None:
        raise NextbestError(f"a simulator needs its lead pool: pass the codes of {', '.join(covariates)}")
    codes = np.asarray(codes, dtype=np.int64)
    codes = codes.reshape(-1, len(covariates)) if codes.ndim == 1 else codes
    if codes.shape[0] == 0 or codes.shape[1] != len(covariates):
        raise NextbestError(f"the lead pool needs at least one lead with one code per covariate {list(covariates)}, "
                            f"got an array of shape {codes.shape}")  # fmt: skip
    for c, (name, vocabulary) in enumerate(zip(covariates, simulator.model.vocabularies_, strict=True)):
        limit = len(vocabulary)
        if codes[:, c].min() < 0 or codes[:, c].max() > limit:
            raise NextbestError(f"{name} codes must be in 0..{limit} (the simulator's vocabulary plus 'unseen')")
    return codes


@lru_cache(maxsize=4)
def default_simulator(data_dir: str | None = None) -> tuple[FunnelSimulator, np.ndarray]:
    """Simulator fitted on the train split of `data_dir` (embedded default when None) and its train lead codes.

    Cached per folder, so that many environments share one simulator (it keeps no episode state).
    """

    prepared = load_or_prepare(data_dir)
    simulator = simulator_from_frame(prepared.train, spec=prepared.spec)
    codes = simulator.model.encode_leads(journeys_from_frame(prepared.train, prepared.spec))
    codes.flags.writeable = False
    return simulator, codes
