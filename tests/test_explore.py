"""Exploration over scores: exact propensities (formulas and empirical frequencies), replay-safe draws."""

from __future__ import annotations

import numpy as np
import pytest

from nextbest.errors import NextbestError
from nextbest.policies import check_decision
from nextbest.policies.explore import Exploration, keyed_uniforms

SCORES = np.array([[0.0, 0.3], [0.0, -0.2], [0.0, 1e-12], [0.0, -np.inf]])


def test_epsilon_greedy_and_softmax_follow_their_formulas() -> None:
    epsilon = Exploration.parse("epsilon:0.1").distribution(SCORES)
    greedy = SCORES.argmax(axis=1)
    expected = np.full((4, 2), 0.05)
    expected[np.arange(4), greedy] = 0.9 + 0.05
    np.testing.assert_allclose(epsilon, expected)
    softmax = Exploration.parse("softmax:0.5").distribution(SCORES[:3])
    np.testing.assert_allclose(softmax[:, 1], 1 / (1 + np.exp(-SCORES[:3, 1] / 0.5)))
    never = Exploration.parse("softmax:0.5").distribution(SCORES[3:])
    np.testing.assert_allclose(never, [[1.0, 0.0]])  # a -inf score is never drawn
    none = Exploration.parse("none").decide(SCORES, np.arange(4))
    assert (none.probabilities == 1).all() and none.actions.tolist() == [1, 0, 1, 0]


@pytest.mark.parametrize("text", ["epsilon:0.2", "softmax:0.3"])
def test_drawn_actions_have_the_frequencies_they_report(text: str) -> None:
    exploration = Exploration.parse(text, seed=7)
    n = 40_000
    scores = np.column_stack([np.zeros(n), np.tile([0.3, -0.2, 0.05, 0.0], n // 4)])
    decision = exploration.decide(scores, np.arange(n) * 7919 + 11)
    check_decision(decision, n, 2)
    for group in range(4):
        rows = np.arange(group, n, 4)
        p_show = decision.distribution[rows[0], 1]
        observed = decision.actions[rows].mean()
        assert abs(observed - p_show) < 5 * np.sqrt(p_show * (1 - p_show) / rows.size), (group, observed, p_show)
    shown = decision.actions == 1
    np.testing.assert_allclose(decision.probabilities[shown], decision.distribution[shown, 1])


def test_a_replayed_uuid_gets_the_same_draw() -> None:
    keys = np.array([404180, 5, 2**53 - 1, 5])
    first, again = keyed_uniforms(keys, seed=3), keyed_uniforms(keys[::-1], seed=3)[::-1]
    np.testing.assert_array_equal(first, again)
    assert first[1] == first[3] and ((first >= 0) & (first < 1)).all()
    assert not np.array_equal(first, keyed_uniforms(keys, seed=4))


@pytest.mark.parametrize("text", ["epsilon:0", "epsilon:1.5", "softmax:0", "softmax:x", "greedy:0.1"])
def test_bad_settings_are_refused(text: str) -> None:
    with pytest.raises(NextbestError, match="--explore"):
        Exploration.parse(text)


def test_the_python_policy_api_explores_with_the_same_probabilities() -> None:
    """``Exploring`` puts any scoring policy on the policy contract: the worker's distribution, drawn with an rng."""
    from nextbest.policies.explore import Exploring

    class Scored:
        n_actions, name = 2, "scored"

        def action_scores(self, X: np.ndarray) -> np.ndarray:
            return np.column_stack([np.zeros(len(X)), X[:, 0]])

    X = np.tile([[0.3], [-0.2]], (20_000, 1))
    for text in ("epsilon:0.2", "softmax:0.3"):
        policy = Exploring(Scored(), Exploration.parse(text))
        decision = policy.choose(X, np.random.default_rng(1))
        check_decision(decision, len(X), 2)
        expected = Exploration.parse(text).distribution(Scored().action_scores(X))
        np.testing.assert_allclose(decision.distribution, expected)
        for row in (0, 1):
            observed = decision.actions[row::2].mean()
            assert abs(observed - expected[row, 1]) < 5 * np.sqrt(expected[row, 1] * (1 - expected[row, 1]) / 20_000)
        assert policy.name == f"scored ({text})"
    with pytest.raises(NextbestError, match="no action_scores"):
        Exploring(object(), Exploration.parse("epsilon:0.1"))
