"""Run a policy on a batch of simulated leads until every episode ends."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nextbest.sim.funnel import FunnelSimulator, FunnelState

#: A policy maps a batch of observations (n, 16) to actions (n,); it may use the generator.
PolicyFn = Callable[[np.ndarray, np.random.Generator], np.ndarray]


@dataclass
class Rollout:
    """Outcome of finished episodes: the final state, the actions taken and business value."""

    state: FunnelState
    actions: np.ndarray  # (n, horizon), -1 after the episode ended
    stages: np.ndarray  # (n, horizon) stage code before each week's action, -1 after the end
    rewards: np.ndarray  # (n, horizon) business reward of each week
    value: np.ndarray  # business value per lead: subscription value − costs
    steps: np.ndarray  # weeks each episode lasted


def run_episodes(sim: FunnelSimulator, state: FunnelState, policy: PolicyFn, rng: np.random.Generator) -> Rollout:
    """Step all leads of `state` with `policy` until done; record actions and business value."""
    n, horizon = len(state), sim.config.horizon
    actions = np.full((n, horizon), -1, dtype=np.int8)
    stages = np.full((n, horizon), -1, dtype=np.int8)
    rewards = np.zeros((n, horizon))
    for week in range(horizon):
        active = ~state.done
        if not active.any():
            break
        chosen = np.asarray(policy(sim.observe(state), rng), dtype=np.int64)
        actions[active, week] = chosen[active]
        stages[active, week] = state.stage[active]
        rewards[:, week] = sim.step(state, chosen).business_reward
    return Rollout(
        state=state, actions=actions, stages=stages, rewards=rewards, value=rewards.sum(axis=1), steps=state.t.copy()
    )
