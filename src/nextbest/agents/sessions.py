"""Policies for the session simulator: vectorized tabular Q-learning against random, fixed and greedy baselines.

State for the table: purchase power (0-10) x depth bucket (1-4, 5-9, 10-19, 20-39, 40+) x hour bucket
(night 0-5, morning 6-11, afternoon 12-17, evening 18-23) = 220 states. Q-learning runs ``parallel`` sessions
at once through ``SessionSimulator.step``; the update of each visited (state, action) uses the mean temporal-
difference error of the sessions that visited it in that step, with a step size that falls with the visits
(a running average of the targets, floored at ``alpha``, since page rewards are rare and large):

    Q[s, a] += max(alpha, m / (N[s, a] + m)) * mean_i (r_i + gamma * (1 - done_i) * max_a' Q[s'_i, a'] - Q[s, a])

where ``m`` sessions visited (s, a) in the step and ``N[s, a]`` counts the earlier visits.

``evaluate`` runs a policy on fresh sessions and reports mean session revenue and length with 95% intervals
(normal approximation over independent sessions).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nextbest.sim.session_sim import SessionSimulator, SessionState

DEPTH_EDGES = np.array([5, 10, 20, 40])
N_STATES = 11 * 5 * 4
Policy = Callable[[SessionState, np.random.Generator], np.ndarray]


def state_index(state: SessionState) -> np.ndarray:
    """Row of the Q-table of every session."""
    depth_bucket = np.searchsorted(DEPTH_EDGES, state.depth + 1, side="right")
    hour = (state.hour + np.maximum(state.depth, 0) // 20) % 24
    return (np.clip(state.power, 0, 10) * 5 + depth_bucket) * 4 + hour // 6


@dataclass
class QLearningConfig:
    episodes: int = 200_000
    parallel: int = 2_000
    alpha: float = 0.01
    gamma: float = 0.99
    epsilon_start: float = 1.0
    epsilon_end: float = 0.02
    seed: int = 0


def train_q(simulator: SessionSimulator, config: QLearningConfig | None = None) -> np.ndarray:
    """The learned Q-table [N_STATES, strategies]."""
    c = config or QLearningConfig()
    rng = np.random.default_rng(c.seed)
    n_actions = len(simulator.names)
    q = np.zeros((N_STATES, n_actions))
    visits = np.zeros(N_STATES * n_actions)
    rounds = max(1, c.episodes // c.parallel)
    for round_ in range(rounds):
        epsilon = c.epsilon_start + (c.epsilon_end - c.epsilon_start) * round_ / max(rounds - 1, 1)
        state = simulator.reset(c.parallel, rng)
        while state.active.any():
            active = state.active.copy()
            s = state_index(state)
            greedy = q[s].argmax(axis=1)
            actions = np.where(rng.random(c.parallel) < epsilon, rng.integers(0, n_actions, c.parallel), greedy)
            reward, done = simulator.step(state, actions, rng)
            target = reward + c.gamma * (~done) * q[state_index(state)].max(axis=1)
            _update(q, visits, s[active], actions[active], target[active], c.alpha)
    return q


def _update(q: np.ndarray, visits: np.ndarray, s: np.ndarray, a: np.ndarray, target: np.ndarray,
            alpha: float) -> None:  # fmt: skip
    flat = q.reshape(-1)
    cell = s * q.shape[1] + a
    sums = np.bincount(cell, weights=target - flat[cell], minlength=q.size)
    counts = np.bincount(cell, minlength=q.size)
    seen = counts > 0
    step = np.maximum(alpha, counts[seen] / (visits[seen] + counts[seen]))
    flat[seen] += step * sums[seen] / counts[seen]
    visits[seen] += counts[seen]


def q_policy(q: np.ndarray) -> Policy:
    return lambda state, rng: q[state_index(state)].argmax(axis=1)


def fixed_policy(action: int) -> Policy:
    return lambda state, rng: np.full(state.hour.size, action)


def random_policy(n_actions: int) -> Policy:
    return lambda state, rng: rng.integers(0, n_actions, state.hour.size)


def greedy_policy(simulator: SessionSimulator) -> Policy:
    """The strategy with the highest expected spend on this page (mean engagement), ignoring churn."""

    def choose(state: SessionState, rng: np.random.Generator) -> np.ndarray:
        values = []
        for action in range(len(simulator.names)):
            values.append(simulator.expected_spend(state, action))
        return np.argmax(np.column_stack(values), axis=1)

    return choose


def evaluate(simulator: SessionSimulator, policy: Policy, sessions: int = 20_000, seed: int = 123) -> dict:
    """Mean session revenue and length with 95% intervals, and the share of each strategy chosen."""
    rng = np.random.default_rng(seed)
    state = simulator.reset(sessions, rng)
    revenue = np.zeros(sessions)
    chosen = np.zeros(len(simulator.names))
    while state.active.any():
        actions = policy(state, rng)
        chosen += np.bincount(actions[state.active], minlength=len(simulator.names))
        revenue += simulator.step(state, actions, rng)[0]
    length = state.depth.astype(float)
    return {"revenue": _mean_ci(revenue), "length": _mean_ci(length),
            "strategy_share": dict(zip(simulator.names, (chosen / chosen.sum()).round(4).tolist()))}  # fmt: skip


def _mean_ci(values: np.ndarray) -> dict:
    mean, se = float(values.mean()), float(values.std(ddof=1) / np.sqrt(values.size))
    return {"mean": mean, "ci": [mean - 1.96 * se, mean + 1.96 * se]}


def choices_table(q: np.ndarray, names: list[str]) -> pd.DataFrame:
    """The learned strategy by purchase power (rows) and depth bucket (columns), at evening hours."""
    rows = {}
    for power in range(11):
        rows[power] = [names[int(q[(power * 5 + bucket) * 4 + 3].argmax())] for bucket in range(5)]
    return pd.DataFrame.from_dict(rows, orient="index", columns=["1-4", "5-9", "10-19", "20-39", "40+"])
