"""The policy contract, shared by the funnel agents and baselines, the session agents, the targeting models, the
uplift policies and the original age/sex rule.

A policy maps a batch of ``n`` observations (an array, a table of features, a simulator state: whatever its use
case observes) to a ``Decision``:

* ``actions``: int64 [n], the action taken for each observation, in ``0 .. n_actions - 1``;
* ``probabilities``: float64 [n], the probability π(actions[i] | observation i) with which the policy takes that
  action. A deterministic policy reports 1. These numbers are logged with every served decision and feed
  off-policy estimators (IPS weights are 1 / probability), so they must be exact, never approximations;
* ``distribution``: float64 [n, n_actions], the whole π(· | observation i) where it is cheap (None otherwise);
  when given, ``distribution[i, actions[i]] == probabilities[i]`` and every row sums to 1.

``Policy`` is the base: a subclass implements ``choose``; calling the policy returns ``choose(...).actions`` so the
simulators' rollouts, which take ``policy(obs, rng) -> actions``, run every policy unchanged.
``check_decision`` verifies a Decision against the contract (the tests run it on every policy of the package).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Decision:
    """Actions, the probability of each chosen action, and (where cheap) the full action distribution."""

    actions: np.ndarray
    probabilities: np.ndarray
    distribution: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.actions.shape[0])


def _rows(observations: Any) -> int:
    return len(observations) if not hasattr(observations, "shape") else int(observations.shape[0])


class Policy:
    """Base of every policy: ``n_actions``, ``choose(observations, rng) -> Decision``; calling gives the actions."""

    n_actions: int = 2
    name: str = "policy"

    def choose(self, observations: Any, rng: np.random.Generator | None = None) -> Decision:
        raise NotImplementedError

    def __call__(self, observations: Any, rng: np.random.Generator | None = None) -> np.ndarray:
        return self.choose(observations, rng).actions


def deterministic(actions: np.ndarray, n_actions: int) -> Decision:
    """The Decision of a deterministic choice: probability 1, a one-hot distribution."""
    actions = np.asarray(actions, dtype=np.int64).reshape(-1)
    distribution = np.zeros((actions.size, n_actions))
    distribution[np.arange(actions.size), actions] = 1.0
    return Decision(actions, np.ones(actions.size), distribution)


def sample(distribution: np.ndarray, rng: np.random.Generator) -> Decision:
    """Draw one action per row of ``distribution`` (inverse CDF with one uniform each) and report its probability."""
    distribution = np.asarray(distribution, dtype=np.float64)
    cumulative = np.cumsum(distribution, axis=1)
    draws = rng.random(distribution.shape[0])[:, None] * cumulative[:, -1:]
    actions = np.minimum((draws >= cumulative).sum(axis=1), distribution.shape[1] - 1).astype(np.int64)
    return Decision(actions, distribution[np.arange(actions.size), actions], distribution)


class DeterministicPolicy(Policy):
    """A deterministic rule ``rule(observations) -> actions`` as a policy (probability 1 for its action)."""

    def __init__(self, rule: Callable[[Any], np.ndarray], n_actions: int, name: str = "rule") -> None:
        self.rule, self.n_actions, self.name = rule, n_actions, name

    def choose(self, observations: Any, rng: np.random.Generator | None = None) -> Decision:
        return deterministic(self.rule(observations), self.n_actions)


class FixedAction(Policy):
    """Always the same action."""

    def __init__(self, action: int, n_actions: int, name: str | None = None) -> None:
        if not 0 <= action < n_actions:
            raise ValueError(f"action {action} is not one of 0..{n_actions - 1}")
        self.action, self.n_actions, self.name = action, n_actions, name or f"always {action}"

    def choose(self, observations: Any, rng: np.random.Generator | None = None) -> Decision:
        return deterministic(np.full(_rows(observations), self.action), self.n_actions)


class UniformRandom(Policy):
    """Every action with probability 1 / n_actions."""

    name = "random"

    def __init__(self, n_actions: int) -> None:
        self.n_actions = n_actions

    def choose(self, observations: Any, rng: np.random.Generator | None = None) -> Decision:
        n = _rows(observations)
        rng = rng if rng is not None else np.random.default_rng()
        actions = rng.integers(0, self.n_actions, size=n).astype(np.int64)
        return Decision(actions, np.full(n, 1.0 / self.n_actions), np.full((n, self.n_actions), 1.0 / self.n_actions))


class EpsilonGreedy(Policy):
    """Explores around a base policy: with probability ε a uniformly random action, else the base policy's.

    π(a | x) = (1 − ε) π_base(a | x) + ε / n_actions, exact whatever the base policy (deterministic or not)."""

    def __init__(self, base: Policy, epsilon: float) -> None:
        if not 0 <= epsilon <= 1:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        self.base, self.epsilon, self.n_actions = base, epsilon, base.n_actions
        self.name = f"{base.name} (ε = {epsilon:g})"

    def choose(self, observations: Any, rng: np.random.Generator | None = None) -> Decision:
        rng = rng if rng is not None else np.random.default_rng()
        base = self.base.choose(observations, rng)
        if base.distribution is None:
            raise ValueError(f"{self.base.name} gives no action distribution: ε-greedy needs one")
        return sample((1 - self.epsilon) * base.distribution + self.epsilon / self.n_actions, rng)


def check_decision(decision: Decision, n: int, n_actions: int) -> None:
    """AssertionError unless ``decision`` keeps the contract for ``n`` observations and ``n_actions`` actions."""
    actions, probabilities = decision.actions, decision.probabilities
    assert actions.shape == (n,) and actions.dtype == np.int64, (actions.shape, actions.dtype)
    assert probabilities.shape == (n,) and probabilities.dtype == np.float64, (probabilities.shape,)
    assert ((actions >= 0) & (actions < n_actions)).all(), "an action out of range"
    assert ((probabilities > 0) & (probabilities <= 1 + 1e-12)).all(), "a probability outside (0, 1]"
    if decision.distribution is not None:
        distribution = decision.distribution
        assert distribution.shape == (n, n_actions), distribution.shape
        assert np.allclose(distribution.sum(axis=1), 1.0), "a distribution row does not sum to 1"
        assert np.allclose(distribution[np.arange(n), actions], probabilities), "probability != distribution"
