"""Exploration over a model's action scores, with exact propensities and replay-safe draws.

    exploration = Exploration.parse("epsilon:0.05")     # or "softmax:0.5", or "none"
    decision = exploration.decide(scores, keys)          # scores float [n, k]; keys int [n] (e.g. customer uuids)

* ``none``: the best-scoring action, probability 1;
* ``epsilon:ε``: π(a | x) = (1 − ε) 1{a = argmax s(x)} + ε / k;
* ``softmax:T``: π(a | x) = exp(s(x, a) / T) / Σ_b exp(s(x, b) / T).

The draw for each row is one uniform made from its key and ``seed`` (SplitMix64), not from a shared generator, so
a replayed message gets the same action and propensity as the first time, whatever else the worker saw between.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nextbest.errors import NextbestError
from nextbest.policies.contract import Decision, Policy, sample

KINDS = ("none", "epsilon", "softmax")
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@dataclass(frozen=True)
class Exploration:
    """How a served policy explores: ``kind`` in none | epsilon | softmax and its ``parameter`` (ε or T)."""

    kind: str = "none"
    parameter: float = 0.0
    seed: int = 0

    @classmethod
    def parse(cls, text: str | None, seed: int = 0) -> Exploration:
        """``none``, ``epsilon:ε`` (0 < ε <= 1) or ``softmax:T`` (T > 0); NextbestError naming the problem."""
        if text is None or text.strip().lower() in ("", "none"):
            return cls("none", 0.0, seed)
        kind, _, value = text.strip().lower().partition(":")
        try:
            parameter = float(value)
        except ValueError:
            parameter = float("nan")
        if kind == "epsilon" and 0 < parameter <= 1:
            return cls(kind, parameter, seed)
        if kind == "softmax" and parameter > 0 and np.isfinite(parameter):
            return cls(kind, parameter, seed)
        raise NextbestError(f"--explore {text!r}: give none, epsilon:E with 0 < E <= 1, or softmax:T with T > 0")

    @property
    def label(self) -> str:
        return "none" if self.kind == "none" else f"{self.kind}:{self.parameter:g}"

    def distribution(self, scores: np.ndarray) -> np.ndarray:
        """π(· | x) [n, k] from the scores [n, k] (see the module doc; ties go to the first best action)."""
        scores = np.asarray(scores, dtype=np.float64)
        n, k = scores.shape
        if self.kind == "softmax":
            shifted = (scores - scores.max(axis=1, keepdims=True)) / self.parameter
            weights = np.exp(shifted)
            return weights / weights.sum(axis=1, keepdims=True)
        best = np.zeros((n, k))
        best[np.arange(n), scores.argmax(axis=1)] = 1.0
        if self.kind == "epsilon":
            return (1.0 - self.parameter) * best + self.parameter / k
        return best

    def decide(self, scores: np.ndarray, keys: np.ndarray) -> Decision:
        """One action per row drawn from ``distribution(scores)`` with the row's own uniform (from its key)."""
        distribution = self.distribution(scores)
        if self.kind == "none":
            actions = distribution.argmax(axis=1).astype(np.int64)
            return Decision(actions, np.ones(actions.size), distribution)
        cumulative = np.cumsum(distribution, axis=1)
        draws = keyed_uniforms(keys, self.seed)[:, None] * cumulative[:, -1:]
        actions = np.minimum((draws >= cumulative).sum(axis=1), distribution.shape[1] - 1).astype(np.int64)
        return Decision(actions, distribution[np.arange(actions.size), actions], distribution)


class Exploring(Policy):
    """A scoring policy served with exploration, on the policy contract: ``scored.action_scores(observations)``
    [n, k] -> π(· | x) = ``exploration.distribution(scores)``; ``choose`` draws from it with ``rng`` (the worker
    draws with each uuid's own uniform instead: ``Exploration.decide``) and reports each action's probability."""

    def __init__(self, scored: Any, exploration: Exploration) -> None:
        if not callable(getattr(scored, "action_scores", None)):
            raise NextbestError(f"{type(scored).__name__} has no action_scores(observations): nothing to explore over")
        self.scored, self.exploration = scored, exploration
        self.n_actions = int(getattr(scored, "n_actions", 2))
        self.name = f"{getattr(scored, 'name', type(scored).__name__)} ({exploration.label})"

    def choose(self, observations: Any, rng: np.random.Generator | None = None) -> Decision:
        distribution = self.exploration.distribution(self.scored.action_scores(observations))
        return sample(distribution, rng if rng is not None else np.random.default_rng())


def keyed_uniforms(keys: np.ndarray, seed: int = 0) -> np.ndarray:
    """A uniform in [0, 1) per key: SplitMix64 of (key + seed · golden ratio), top 53 bits."""
    with np.errstate(over="ignore"):  # wrapping uint64 arithmetic is the point
        z = np.asarray(keys).astype(np.uint64) + np.uint64(seed % 2**64) * _GOLDEN + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(2**53)
