"""A targeting policy learned from a decision log (off-policy learning), servable like any exported model.

``learn_targeting_policy(X, log, reward_model, like)`` fits a LightGBM classifier to the doubly robust weighted
classification of the log (``nextbest.ope.learning.weighted_labels``: label = the action with the higher DR score,
weight = the gap), and returns it as a ``TargetingModel`` with threshold 0.5: show when the classifier says showing
is the better action. It keeps ``like``'s features, imputation, economics and world, so that it exports to ONNX
and serves through the same worker as the model that logged the data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nextbest.errors import NextbestError
from nextbest.models.targeting import TargetingModel
from nextbest.ope import LoggedBandit
from nextbest.ope.learning import weighted_labels


def learn_targeting_policy(X: pd.DataFrame, log: LoggedBandit, reward_model: np.ndarray, like: TargetingModel,
                           seed: int = 0, n_estimators: int = 200) -> TargetingModel:  # fmt: skip
    """The policy learned from ``log`` on the features ``X`` (rows aligned with the log; see the module doc)."""
    from lightgbm import LGBMClassifier

    problem = weighted_labels(log, reward_model)
    if problem.label.min() == problem.label.max():
        raise NextbestError("the decision log favours one action everywhere: nothing to learn a targeting from")
    missing = [name for name in like.features if name not in X.columns]
    if missing:
        raise NextbestError(f"the decision log lacks the features {missing[:5]} of the model it should replace")
    estimator = LGBMClassifier(n_estimators=n_estimators, learning_rate=0.05, num_leaves=15, min_child_samples=100,
                               random_state=seed, n_jobs=1, verbose=-1)  # fmt: skip
    estimator.fit(X[like.features], problem.label, sample_weight=problem.weight)
    return TargetingModel("gbm", estimator, 0.5, list(like.features), dict(like.economics), dict(like.world),
                          like.data_dir, validation={"rows": float(len(log))}, imputation=like.imputation)  # fmt: skip
