"""Uplift learners: each estimates tau(x) = E[Y | T=1, x] - E[Y | T=0, x] from a randomized experiment.

All share one contract: parameters in ``__init__``, ``fit(X, y, t) -> self``, ``predict_uplift(X)`` → a score
per row (higher = treat first). Base learners are LightGBM models (``base="lgbm"``) or scikit-learn
linear models on standardized features (``base="linear"``), seeded.

- :class:`TLearner` — two outcome models, mu1 on treated and mu0 on control; tau = mu1(x) - mu0(x).
- :class:`XLearner` — imputed effects D1 = Y1 - mu0(X1), D0 = mu1(X0) - Y0, regressed into tau1, tau0;
  tau = g·tau0 + (1-g)·tau1 with g = the known randomization share P(T=1).
- :class:`ClassTransformation` — binary Y: Z = Y·T + (1-Y)(1-T); tau = 2·P(Z=1 | x) - 1 (exact for p = 1/2).
- :class:`OutcomeTransformation` — any Y: Z = Y·(T-p)/(p(1-p)) has E[Z | x] = tau(x); regress Z on x.
- :class:`ResponseModel` — the baseline without a control group: trained on treated customers only,
  predicting the outcome; its score is the predicted outcome, not an uplift.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nextbest.policies import Decision, Policy
from nextbest.policies.contract import deterministic


def make_regressor(base: str = "lgbm", seed: int = 0):
    """A seeded regression model: LightGBM (regularized for noisy, heavy-tailed outcomes) or ridge."""
    if base == "lgbm":
        from lightgbm import LGBMRegressor

        return LGBMRegressor(
            n_estimators=200, learning_rate=0.03, num_leaves=15, min_child_samples=200, subsample=0.8,
            subsample_freq=1, colsample_bytree=0.8, reg_lambda=5.0, random_state=seed, n_jobs=1, verbose=-1,
        )  # fmt: skip
    if base == "linear":
        from sklearn.linear_model import Ridge
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(StandardScaler(), Ridge(alpha=1.0))
    raise ValueError(f"unknown base learner {base!r} (lgbm or linear)")


def make_classifier(base: str = "lgbm", seed: int = 0):
    """A seeded probabilistic classifier: LightGBM or logistic regression."""
    if base == "lgbm":
        from lightgbm import LGBMClassifier

        return LGBMClassifier(
            n_estimators=200, learning_rate=0.03, num_leaves=15, min_child_samples=200, subsample=0.8,
            subsample_freq=1, colsample_bytree=0.8, reg_lambda=5.0, random_state=seed, n_jobs=1, verbose=-1,
        )  # fmt: skip
    if base == "linear":
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=seed))
    raise ValueError(f"unknown base learner {base!r} (lgbm or linear)")


def _as_array(X) -> np.ndarray:
    return np.asarray(X, dtype=float)


class _OutcomeModelMixin:
    """Outcome models: classifiers (probabilities) for binary outcomes, regressors otherwise."""

    def _new_model(self, y: np.ndarray, seed_offset: int = 0):
        binary = self.binary if self.binary is not None else bool(np.isin(y, (0.0, 1.0)).all())
        if binary and len(np.unique(y)) == 2:
            return make_classifier(self.base, self.seed + seed_offset)
        return make_regressor(self.base, self.seed + seed_offset)

    @staticmethod
    def _predict(model, X: np.ndarray) -> np.ndarray:
        if hasattr(model, "predict_proba"):
            return model.predict_proba(X)[:, 1]
        return model.predict(X)


class TLearner(_OutcomeModelMixin):
    """Two-model learner: tau(x) = mu1(x) - mu0(x), mu_a fitted on arm a only."""

    def __init__(self, base: str = "lgbm", seed: int = 0, binary: bool | None = None):
        self.base, self.seed, self.binary = base, seed, binary

    def fit(self, X, y, t) -> TLearner:
        X, y, t = _as_array(X), np.asarray(y, float), np.asarray(t).astype(bool)
        self.model_treated_ = self._new_model(y[t], 1).fit(X[t], y[t])
        self.model_control_ = self._new_model(y[~t], 2).fit(X[~t], y[~t])
        return self

    def predict_uplift(self, X) -> np.ndarray:
        X = _as_array(X)
        return self._predict(self.model_treated_, X) - self._predict(self.model_control_, X)


class XLearner(_OutcomeModelMixin):
    """X-learner (Künzel et al. 2019) with the known propensity g = P(T=1) as the blending weight."""

    def __init__(self, propensity: float = 0.5, base: str = "lgbm", seed: int = 0, binary: bool | None = None):
        self.propensity, self.base, self.seed, self.binary = propensity, base, seed, binary

    def fit(self, X, y, t) -> XLearner:
        X, y, t = _as_array(X), np.asarray(y, float), np.asarray(t).astype(bool)
        self.model_treated_ = self._new_model(y[t], 1).fit(X[t], y[t])
        self.model_control_ = self._new_model(y[~t], 2).fit(X[~t], y[~t])
        d1 = y[t] - self._predict(self.model_control_, X[t])
        d0 = self._predict(self.model_treated_, X[~t]) - y[~t]
        self.effect_treated_ = make_regressor(self.base, self.seed + 3).fit(X[t], d1)
        self.effect_control_ = make_regressor(self.base, self.seed + 4).fit(X[~t], d0)
        return self

    def predict_uplift(self, X) -> np.ndarray:
        X, g = _as_array(X), self.propensity
        return g * self.effect_control_.predict(X) + (1.0 - g) * self.effect_treated_.predict(X)


class ClassTransformation:
    """Class-variable transformation (Jaskowski & Jaroszewicz 2012) for binary outcomes.

    Z = Y·T + (1-Y)·(1-T); with P(T=1) = 1/2, tau(x) = 2·P(Z=1 | x) - 1."""

    def __init__(self, base: str = "lgbm", seed: int = 0):
        self.base, self.seed = base, seed

    def fit(self, X, y, t) -> ClassTransformation:
        y, t = np.asarray(y, float), np.asarray(t).astype(int)
        if not np.isin(y, (0.0, 1.0)).all():
            raise ValueError("ClassTransformation needs a binary (0/1) outcome; use OutcomeTransformation")
        z = (y * t + (1 - y) * (1 - t)).astype(int)
        self.model_ = make_classifier(self.base, self.seed).fit(_as_array(X), z)
        return self

    def predict_uplift(self, X) -> np.ndarray:
        return 2.0 * self.model_.predict_proba(_as_array(X))[:, 1] - 1.0


class OutcomeTransformation:
    """Transformed-outcome regression (Athey & Imbens 2016): Z = Y·(T-p)/(p(1-p)), E[Z | x] = tau(x)."""

    def __init__(self, propensity: float = 0.5, base: str = "lgbm", seed: int = 0):
        self.propensity, self.base, self.seed = propensity, base, seed

    def fit(self, X, y, t) -> OutcomeTransformation:
        p = self.propensity
        z = np.asarray(y, float) * (np.asarray(t, float) - p) / (p * (1.0 - p))
        self.model_ = make_regressor(self.base, self.seed).fit(_as_array(X), z)
        return self

    def predict_uplift(self, X) -> np.ndarray:
        return self.model_.predict(_as_array(X))


class ResponseModel(_OutcomeModelMixin):
    """The shop's baseline without a control group: E[Y | T=1, x] fitted on treated customers only."""

    def __init__(self, base: str = "lgbm", seed: int = 0, binary: bool | None = None):
        self.base, self.seed, self.binary = base, seed, binary

    def fit(self, X, y, t) -> ResponseModel:
        X, y, t = _as_array(X), np.asarray(y, float), np.asarray(t).astype(bool)
        self.model_ = self._new_model(y[t], 5).fit(X[t], y[t])
        return self

    def predict_uplift(self, X) -> np.ndarray:
        return self._predict(self.model_, _as_array(X))


def make_learners(propensity: float, binary: bool, base: str = "lgbm", seed: int = 0) -> dict[str, object]:
    """The compared methods, by the names used in ``uplift.json``."""
    transformation = (
        ("class_transformation", ClassTransformation(base, seed))
        if binary
        else ("outcome_transformation", OutcomeTransformation(propensity, base, seed))
    )
    return {
        "t_learner": TLearner(base, seed, binary),
        "x_learner": XLearner(propensity, base, seed, binary),
        transformation[0]: transformation[1],
        "response_model": ResponseModel(base, seed, binary),
    }


class UpliftPolicy(Policy):
    """Treat (action 1) the customers whose predicted uplift reaches ``cutoff`` (chosen on validation data), else
    not (action 0); deterministic: probability 1 for the chosen action."""

    n_actions = 2

    def __init__(self, learner: Any, cutoff: float, name: str = "uplift") -> None:
        self.learner, self.cutoff, self.name = learner, cutoff, name

    def choose(self, X: Any, rng: np.random.Generator | None = None) -> Decision:
        return deterministic((np.asarray(self.learner.predict_uplift(X)) >= self.cutoff).astype(np.int64), 2)
