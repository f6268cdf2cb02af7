"""Off-policy learning from logged bandit decisions: the doubly robust scores a policy learner fits.

For a log (x_i, a_i, r_i, p_i) and a reward model q̂, the doubly robust score of every action a is

    Γ_i(a) = q̂(x_i, a) + 1{a = a_i} (r_i − q̂(x_i, a_i)) / p_i

an unbiased estimate of the reward a would have earned in context x_i when either the propensities or the reward
model are right (Dudík et al. 2011); the value of any policy π is then estimated by 1/n Σ_i Σ_a π(a | x_i) Γ_i(a)
(the DR estimator). Maximizing that over a policy class is off-policy learning. For two actions it reduces to a
weighted classification (Zhou, Athey & Wager 2023; Beygelzimer & Langford 2009): label the better action by the
sign of Γ_i(1) − Γ_i(0) and weight the row by its size, |Γ_i(1) − Γ_i(0)|: the weighted error of a classifier is
the DR estimate of its regret.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nextbest.errors import NextbestError
from nextbest.ope.estimators import LoggedBandit, check_reward_model


def dr_scores(log: LoggedBandit, reward_model: np.ndarray) -> np.ndarray:
    """Γ [n, n_actions]: the doubly robust score of every action in every logged context (module doc)."""
    reward_model = check_reward_model(reward_model, len(log), log.n_actions, "dr_scores")
    scores = reward_model.copy()
    rows = np.arange(len(log))
    scores[rows, log.actions] += (log.rewards - reward_model[rows, log.actions]) / log.pscores
    return scores


@dataclass(frozen=True)
class WeightedLabels:
    """A two-action policy learning problem as weighted classification: ``label`` 1 where action 1 scores higher,
    ``weight`` = |Γ(1) − Γ(0)|."""

    label: np.ndarray
    weight: np.ndarray


def weighted_labels(log: LoggedBandit, reward_model: np.ndarray) -> WeightedLabels:
    """The weighted classification of a two-action log (module doc); NextbestError for other action counts."""
    if log.n_actions != 2:
        raise NextbestError(f"policy learning by weighted classification needs two actions, the log has "
                            f"{log.n_actions}")  # fmt: skip
    scores = dr_scores(log, reward_model)
    gain = scores[:, 1] - scores[:, 0]
    return WeightedLabels((gain > 0).astype(np.int8), np.abs(gain))
