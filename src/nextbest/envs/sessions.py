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

from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from nextbest.sim.session_sim import SessionSimulator, SessionState

ENV_ID = "nextbest/SessionRetention-v0"
OBS_DIM = 7


def observe(state: SessionState, max_depth: int) -> np.ndarray:
    """The (n, 7) observations of every session of ``state`` (module docstring)."""
    angle = 2 * np.pi * state.hour / 24
    return np.column_stack([np.sin(angle), np.cos(angle), state.power / 10, state.depth / max_depth,
                            np.minimum(state.engagement / 100, 1.0), np.minimum(state.spend / 1000, 1.0),
                            np.minimum(state.exposure / 5, 1.0)]).astype(np.float32)  # fmt: skip


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
