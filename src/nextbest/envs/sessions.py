"""`nextbest/SessionRetention-v0`: choose what the next page shows; the learned session simulator answers.

    observation  [sin, cos of the hour angle, purchase power / 10, depth / max_depth,
                  min(cumulative engagement / 100, 1), min(cumulative spend / 1000, 1),
                  min(exposure to fatiguing strategies / 5, 1)]  (float32; ``observe``)
    action       index into the simulator's strategies (default: feed, mixed, discount)
    reward       the page's spend; terminated when the user churns, truncated at ``max_depth`` pages
    info         "spend", "depth", "strategy"

The environment steps ``SessionSimulator.step`` with one session: the same code as the batched path
(``SessionVecEnv`` in ``nextbest.envs.session_vector`` for Stable-Baselines3).
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from numba import njit

from nextbest.sim.session_sim import SessionSimulator, SessionState

ENV_ID = "nextbest/SessionRetention-v0"
OBS_DIM = 7


def observe(state: SessionState, max_depth: int) -> np.ndarray:
    """The (n, 7) observations of every session of ``state`` (module docstring; compiled, `observe_sessions`)."""
    out = np.empty((len(state), OBS_DIM), dtype=np.float32)
    observe_sessions(state.hour, state.power, state.depth, state.engagement, state.spend, state.exposure,
                     float(max_depth), _HOUR_ANGLES, out)  # fmt: skip
    return out


#: sin and cos of each hour's angle 2π·hour/24, computed by numpy as the observation always has been.
_HOUR_ANGLES = np.column_stack([np.sin(2 * np.pi * np.arange(24) / 24), np.cos(2 * np.pi * np.arange(24) / 24)])


@njit(cache=True)
def observe_sessions(hour, power, depth, engagement, spend, exposure, max_depth, angles, out):  # pragma: no cover
    """Each session's observation into out (n, 7) float32, every entry computed in float64 then rounded."""
    for i in range(hour.shape[0]):
        if 0 <= hour[i] < 24:
            out[i, 0], out[i, 1] = angles[hour[i], 0], angles[hour[i], 1]
        else:  # not an hour of the day: computed (libm's sin and cos)
            out[i, 0], out[i, 1] = math.sin(2 * math.pi * hour[i] / 24), math.cos(2 * math.pi * hour[i] / 24)
        out[i, 2] = power[i] / 10
        out[i, 3] = depth[i] / max_depth
        out[i, 4] = min(engagement[i] / 100, 1.0)
        out[i, 5] = min(spend[i] / 1000, 1.0)
        out[i, 6] = min(exposure[i] / 5, 1.0)


def default_session_simulator(sessions: int = 20_000, seed: int = 0) -> SessionSimulator:
    """A simulator learned from the ground-truth session world (scikit-learn churn and value models)."""
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from nextbest.models.sessions import page_features
    from nextbest.sim.sessions import SessionWorld, SessionWorldConfig

    pages = SessionWorld(SessionWorldConfig(seed=seed)).pages(sessions)
    churn = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(page_features(pages), pages.done)
    value = make_pipeline(StandardScaler(), LinearRegression()).fit(page_features(pages, with_purchase=False),
                                                                   pages.reward)  # fmt: skip
    return SessionSimulator.from_pages(pages, churn, value)


class SessionRetentionEnv(gymnasium.Env):
    """One session at a time over the shared simulator (see the module docstring)."""

    metadata = {"render_modes": []}

    def __init__(self, simulator: SessionSimulator | None = None) -> None:
        self.simulator = simulator or default_session_simulator()
        self.action_space = spaces.Discrete(len(self.simulator.names))
        self.observation_space = spaces.Box(low=-1.0, high=1.0, shape=(OBS_DIM,), dtype=np.float32)
        self._state: SessionState | None = None

    def _observe(self) -> np.ndarray:
        return observe(self._state, self.simulator.max_depth)[0]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._state = self.simulator.reset(1, self.np_random)
        return self._observe(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        if not self.action_space.contains(action):
            raise ValueError(f"action {action!r} is not in {self.action_space}")
        spend, done = self.simulator.step(self._state, np.array([action]), self.np_random)
        at_limit = bool(self._state.depth[0] >= self.simulator.max_depth)
        terminated = bool(done[0]) and not at_limit
        truncated = bool(done[0]) and at_limit
        info = {"spend": float(spend[0]), "depth": int(self._state.depth[0]),
                "strategy": self.simulator.names[int(action)]}  # fmt: skip
        return self._observe(), float(spend[0]), terminated, truncated, info
