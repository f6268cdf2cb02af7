"""Policies for the session simulator: tabular Q-learning and PPO against random, fixed and greedy baselines.

State for the table: purchase power (0-10) x depth bucket (1-4, 5-9, 10-19, 20-39, 40+) x exposure bucket
(<0.5, 0.5-1.5, 1.5-2.5, 2.5+: how worn-out the session is by recent discounts) = 220 states. The hour is left
out: it moves churn and spend but not which strategy is best, and every extra cell dilutes the rare rewards.
Q-learning (the package's one ``QLearningConfig`` and ``q_update``, with `QLearningConfig.for_sessions()`) runs
``batch_size`` sessions at once through ``SessionSimulator.step``; the update of each visited (state, action)
uses the mean temporal-difference error of the sessions that visited it in that step, with a step size that falls
with the visits (a running average of the targets, floored at ``alpha``, since page rewards are rare and large):

    Q[s, a] += max(alpha, m / (N[s, a] + m)) * mean_i (r_i + gamma * (1 - done_i) * max_a' Q[s'_i, a'] - Q[s, a])

where ``m`` sessions visited (s, a) in the step and ``N[s, a]`` counts the earlier visits. Learners (Q-learning
and PPO) are rewarded with the page's expected spend given its engagement (``SessionState.last_expected_spend``,
the same mean as the spend without the purchase coin flip); every evaluation counts the money actually spent.

``evaluate`` runs a policy on fresh sessions and reports mean session revenue and length with 95% intervals
(normal approximation over independent sessions), and the strategies it chose by purchase power and depth
(a ``SessionEvaluation``); ``compare_policies`` returns the whole study (``SessionStudy``, the agent JSON).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
import pandas as pd

from nextbest.agents.qlearning import QLearningConfig, q_update
from nextbest.policies import DeterministicPolicy, FixedAction, Policy, UniformRandom
from nextbest.results import Result
from nextbest.sim.session_sim import SessionSimulator, SessionState, SimulatorDescription
from nextbest.stats import MeanInterval, difference_interval, mean_interval, z_value

DEPTH_EDGES = np.array([5, 10, 20, 40])
DEPTH_LABELS = ["1-4", "5-9", "10-19", "20-39", "40+"]
EXPOSURE_EDGES = np.array([0.5, 1.5, 2.5])
N_STATES = 11 * 5 * 4


class MeanCI(Result):
    """A mean with its 95% interval ``ci`` = [low, high] and standard error (``se`` is None in files that lack it)."""

    mean: float
    ci: list[float]
    se: float | None = None

    @classmethod
    def of(cls, interval: MeanInterval) -> MeanCI:
        return cls(mean=interval.mean, ci=[interval.low, interval.high], se=interval.se)


class SessionEvaluation(Result):
    """``evaluate``: mean session revenue and length, the share of each strategy, and ``choices``: pages of each
    strategy by purchase power and depth bucket ([power][depth bucket][strategy] counts)."""

    revenue: MeanCI
    length: MeanCI
    strategy_share: dict[str, float]
    choices: list[list[list[int]]]


class PolicyResult(Result):
    """One policy of the study: baseline or agent, its training time (None for baselines) and its evaluation."""

    kind: str
    train_seconds: float | None
    revenue: MeanCI
    length: MeanCI
    strategy_share: dict[str, float]
    choices: list[list[list[int]]]


class EvaluationSetup(Result):
    """The fresh sessions every policy was evaluated on."""

    sessions: int
    seed: int


class RetainedRevenue(Result):
    """Best agent - best fixed strategy: revenue per session, its 95% interval, and relative to the best fixed."""

    per_session: float
    ci: list[float]
    relative: float


class Verdict(Result):
    """``verdict``: the best fixed strategy against the best agent."""

    best_fixed: str
    best_agent: str
    agent_beats_best_fixed: bool
    retained_revenue: RetainedRevenue


class SessionStudy(Result):
    """``compare_policies``: the agent JSON (the session report's input)."""

    evaluation: EvaluationSetup
    strategies: SimulatorDescription
    policies: dict[str, PolicyResult]
    best_fixed: str
    best_agent: str
    agent_beats_best_fixed: bool
    retained_revenue: RetainedRevenue


def state_index(state: SessionState) -> np.ndarray:
    """Row of the Q-table of every session."""
    depth_bucket = np.searchsorted(DEPTH_EDGES, state.depth + 1, side="right")
    exposure_bucket = np.searchsorted(EXPOSURE_EDGES, state.exposure, side="right")
    return (np.clip(state.power, 0, 10) * 5 + depth_bucket) * 4 + exposure_bucket


def train_q(simulator: SessionSimulator, config: QLearningConfig | None = None,
            progress: Callable[[int], None] | None = None) -> np.ndarray:  # fmt: skip
    """The learned Q-table [N_STATES, strategies] (config: `QLearningConfig.for_sessions()` by default);
    ``progress(sessions)`` after every batch of sessions."""
    c = config or QLearningConfig.for_sessions()
    c.validate()
    rng = np.random.default_rng(c.seed)
    n_actions = len(simulator.names)
    q = np.zeros((N_STATES, n_actions))
    visits = np.zeros(N_STATES * n_actions)
    rounds = max(1, c.episodes // c.batch_size)
    for round_ in range(rounds):
        epsilon = c.epsilon(round_ * c.batch_size, rounds * c.batch_size)
        state = simulator.reset(c.batch_size, rng)
        while state.active.any():
            active = state.active.copy()
            s = state_index(state)
            greedy = q[s].argmax(axis=1)
            actions = np.where(rng.random(c.batch_size) < epsilon, rng.integers(0, n_actions, c.batch_size), greedy)
            done = simulator.step(state, actions, rng)[1]
            reward = state.last_expected_spend
            target = reward + c.gamma * (~done) * q[state_index(state)].max(axis=1)
            q_update(q, s[active], actions[active], target[active], c, visits=visits)
        if progress is not None:
            progress((round_ + 1) * c.batch_size)
    return q


def q_policy(q: np.ndarray) -> Policy:
    """The greedy policy of a Q-table (probability 1 for the best strategy of each session's state)."""
    return DeterministicPolicy(lambda state: q[state_index(state)].argmax(axis=1), q.shape[1], "q-learning")


def fixed_policy(action: int, n_actions: int) -> Policy:
    return FixedAction(action, n_actions)


def random_policy(n_actions: int) -> Policy:
    return UniformRandom(n_actions)


def greedy_policy(simulator: SessionSimulator) -> Policy:
    """The strategy with the highest expected spend on this page (mean engagement), ignoring churn."""

    def best(state: SessionState) -> np.ndarray:
        values = [simulator.expected_spend(state, action) for action in range(len(simulator.names))]
        return np.argmax(np.column_stack(values), axis=1)

    return DeterministicPolicy(best, len(simulator.names), "greedy one-step")


def evaluate(simulator: SessionSimulator, policy: Policy, sessions: int = 20_000, seed: int = 123) -> SessionEvaluation:
    """Mean session revenue and length with 95% intervals, the share of each strategy chosen, and the pages of
    each strategy by purchase power and depth bucket (``choices``: [power][depth bucket][strategy] counts)."""
    rng = np.random.default_rng(seed)
    state = simulator.reset(sessions, rng)
    revenue = np.zeros(sessions)
    n_actions = len(simulator.names)
    choices = np.zeros((11, len(DEPTH_LABELS), n_actions), dtype=np.int64)
    while state.active.any():
        actions = policy(state, rng)
        active = state.active
        depth_bucket = np.searchsorted(DEPTH_EDGES, state.depth[active] + 1, side="right")
        np.add.at(choices, (np.clip(state.power[active], 0, 10), depth_bucket, actions[active]), 1)
        revenue += simulator.step(state, actions, rng)[0]
    length = state.depth.astype(float)
    chosen = choices.sum(axis=(0, 1))
    return SessionEvaluation(revenue=MeanCI.of(mean_interval(revenue)), length=MeanCI.of(mean_interval(length)),
                             strategy_share=dict(zip(simulator.names, (chosen / chosen.sum()).round(4).tolist())),
                             choices=choices.tolist())  # fmt: skip


def choices_table(choices: list | np.ndarray, names: list[str], strategy: str, min_pages: int = 1) -> pd.DataFrame:
    """Share of pages shown ``strategy`` by purchase power (rows) and depth bucket (columns), from ``evaluate``'s
    ``choices``; NaN where the policy showed fewer than ``min_pages`` pages."""
    counts = np.asarray(choices, dtype=float)
    total = counts.sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = counts[:, :, names.index(strategy)] / total
    return pd.DataFrame(np.where(total >= max(min_pages, 1), share, np.nan), index=range(11), columns=DEPTH_LABELS)


@dataclass
class SessionPPOConfig:
    """Stable-Baselines3 PPO on ``SessionVecEnv``: ``timesteps`` pages in all, ``n_envs`` sessions per batch step,
    rewards scaled by ``reward_scale`` for the learner (page spend is tens of dollars)."""

    timesteps: int = 1_000_000
    n_envs: int = 256
    n_steps: int = 16
    batch_size: int = 1024
    n_epochs: int = 4
    learning_rate: float = 3e-4
    gamma: float = 0.99
    ent_coef: float = 0.01
    reward_scale: float = 0.05
    net_arch: tuple[int, ...] = (64, 64)
    seed: int = 0


def train_ppo(simulator: SessionSimulator, config: SessionPPOConfig | None = None,
              progress: Callable[[int], None] | None = None) -> Policy:  # fmt: skip
    """PPO's greedy policy after ``config.timesteps`` pages; ``progress(pages)`` after every rollout."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback

    from nextbest.agents.sb3 import silent_logger
    from nextbest.envs.session_vector import SessionVecEnv

    c = config or SessionPPOConfig()
    torch.set_num_threads(1)
    env = SessionVecEnv(simulator, num_envs=c.n_envs, reward_scale=c.reward_scale)
    model = PPO("MlpPolicy", env, n_steps=c.n_steps, batch_size=c.batch_size, n_epochs=c.n_epochs,
                learning_rate=c.learning_rate, gamma=c.gamma, ent_coef=c.ent_coef, seed=c.seed, device="cpu",
                policy_kwargs={"net_arch": list(c.net_arch)}, verbose=0)  # fmt: skip

    class Progress(BaseCallback):
        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            if progress is not None:
                progress(self.num_timesteps)

    model.set_logger(silent_logger())
    model.learn(total_timesteps=c.timesteps, callback=Progress())
    return sb3_policy(model, simulator.max_depth)


def sb3_policy(model: Any, max_depth: int) -> Policy:
    """A trained SB3 model's deterministic choice for every session of a state (probability 1)."""
    from nextbest.envs.sessions import observe

    def best(state: SessionState) -> np.ndarray:
        actions, _ = model.predict(observe(state, max_depth), deterministic=True)
        return np.asarray(actions, dtype=np.int64).reshape(-1)

    policy = DeterministicPolicy(best, int(model.action_space.n), "ppo")
    policy.model = model  # type: ignore[attr-defined]
    return policy


def compare_policies(simulator: SessionSimulator, q_config: QLearningConfig | None = None,
                     ppo_config: SessionPPOConfig | None = None, sessions: int = 100_000, seed: int = 123,
                     progress: Callable[[str], None] | None = None) -> SessionStudy:  # fmt: skip
    """Baselines (random, every fixed strategy, greedy one-step) and agents (Q-learning; PPO unless
    ``ppo_config`` is None) evaluated on the same ``sessions`` fresh sessions; the best fixed strategy against the
    best agent, with the retained revenue per session (agent - best fixed, 95% interval of the difference)."""
    say = progress or (lambda message: None)
    policies: dict[str, tuple[str, Policy, float | None]] = {}
    policies["random"] = ("baseline", random_policy(len(simulator.names)), None)
    for action, name in enumerate(simulator.names):
        policies[f"always {name}"] = ("baseline", fixed_policy(action, len(simulator.names)), None)
    policies["greedy one-step"] = ("baseline", greedy_policy(simulator), None)
    say("training Q-learning")
    started = time.perf_counter()
    episodes = f"{(q_config or QLearningConfig.for_sessions()).episodes:,}"
    q = train_q(simulator, q_config, lambda done: say(f"training Q-learning: {done:,}/{episodes} sessions"))
    policies["q-learning"] = ("agent", q_policy(q), time.perf_counter() - started)
    if ppo_config is not None:
        say("training PPO")
        started = time.perf_counter()
        total = f"{ppo_config.timesteps:,}"
        ppo = train_ppo(simulator, ppo_config, lambda pages: say(f"training PPO: {pages:,}/{total} pages"))
        policies["ppo"] = ("agent", ppo, time.perf_counter() - started)
    results: dict[str, PolicyResult] = {}
    for name, (kind, policy, seconds) in policies.items():
        say(f"evaluating {name}")
        evaluation = evaluate(simulator, policy, sessions=sessions, seed=seed)
        results[name] = PolicyResult(kind=kind, train_seconds=None if seconds is None else round(seconds, 2),
                                     **msgspec.structs.asdict(evaluation))  # fmt: skip
    return SessionStudy(evaluation=EvaluationSetup(sessions=sessions, seed=seed), strategies=simulator.describe(),
                        policies=results, **msgspec.structs.asdict(verdict(results)))  # fmt: skip


def verdict(results: dict[str, PolicyResult]) -> Verdict:
    """The best fixed strategy and the best agent by mean revenue; whether their intervals are disjoint; the
    retained revenue per session (difference of means, 95% interval from ``nextbest.stats.difference_interval``)."""
    fixed = {k: v for k, v in results.items() if k.startswith("always ")}
    agents = {k: v for k, v in results.items() if v.kind == "agent"}
    best_fixed = max(fixed, key=lambda k: fixed[k].revenue.mean)
    best_agent = max(agents, key=lambda k: agents[k].revenue.mean)
    a, f = agents[best_agent].revenue, fixed[best_fixed].revenue
    difference = difference_interval(_as_interval(a), _as_interval(f))
    retained = RetainedRevenue(per_session=difference.mean, ci=[difference.low, difference.high],
                               relative=difference.mean / f.mean)  # fmt: skip
    return Verdict(best_fixed=best_fixed, best_agent=best_agent, agent_beats_best_fixed=bool(a.ci[0] > f.ci[1]),
                   retained_revenue=retained)  # fmt: skip


def _as_interval(figure: MeanCI) -> MeanInterval:
    """A ``MeanCI`` as a 95% MeanInterval (``se`` from the width when an older file lacks it)."""
    low, high = figure.ci
    se = figure.se if figure.se is not None else (high - low) / (2 * z_value(0.95))
    return MeanInterval(figure.mean, se, low, high, 0.95, 0)
