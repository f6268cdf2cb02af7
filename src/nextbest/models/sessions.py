"""Churn and value models of a page: from-scratch gradient descent against scikit-learn and gradient boosting.

    churn  P(done_t = 1 | page t)      ScratchLogisticRegression | LogisticRegression | LGBMClassifier
    value  E[reward_t | page t]        ScratchLinearRegression   | LinearRegression   | LGBMRegressor

``page_features`` is the one feature builder (training, the simulator and the environment all call it): hour as
sin/cos of the day's angle, purchase power, engagement, depth, and for churn whether the page had a purchase.
Sessions are split (not pages), so no session is on both sides. Churn is imbalanced (~10% of pages): F1 at the
threshold that maximizes F1 on the training split, and PR-AUC (average precision); value: RMSE and MAE.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import msgspec
import numpy as np
import pandas as pd

from nextbest.models.scratch import ScratchLinearRegression, ScratchLogisticRegression
from nextbest.results import Result

VALUE_FEATURES = ["hour_sin", "hour_cos", "purchase_power", "engagement", "depth"]
CHURN_FEATURES = [*VALUE_FEATURES, "bought"]


def page_features(pages: pd.DataFrame | Mapping[str, np.ndarray], with_purchase: bool = True) -> np.ndarray:
    """The model inputs of each page (``CHURN_FEATURES`` or, without the purchase flag, ``VALUE_FEATURES``) from a
    page table or a mapping of its columns to arrays (the simulator's fast path)."""

    def column(name: str) -> np.ndarray:
        return np.asarray(pages[name], dtype=float)

    angle = 2 * np.pi * column("hour") / 24
    columns = [np.sin(angle), np.cos(angle), column("purchase_power"), column("engagement"), column("page_id")]
    if with_purchase:
        columns.append((column("page_value") > 0).astype(float))
    return np.column_stack(columns)


def feature_table(pages: pd.DataFrame) -> pd.DataFrame:
    """The models' training table, one row per page: ``session_id``, ``CHURN_FEATURES``, ``done``, ``reward``."""
    table = pd.DataFrame(page_features(pages), columns=CHURN_FEATURES)
    table.insert(0, "session_id", pages["session_id"].to_numpy())
    table["done"] = pages["done"].to_numpy()
    table["reward"] = pages["reward"].to_numpy(dtype=float)
    return table


def split_sessions(pages: pd.DataFrame, test_fraction: float = 0.25, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (train, test) of pages, split by session."""
    sessions = pages["session_id"].unique()
    rng = np.random.default_rng(seed)
    test_sessions = rng.choice(sessions, size=int(round(test_fraction * sessions.size)), replace=False)
    is_test = pages["session_id"].isin(test_sessions).to_numpy()
    return ~is_test, is_test


def _churn_models(seed: int) -> dict[str, Callable[[], Any]]:
    from lightgbm import LGBMClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler


    return {
        "scratch": lambda: make_pipeline(StandardScaler(), ScratchLogisticRegression(random_state=seed)),
        "sklearn": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        "gbm": lambda: LGBMClassifier(n_estimators=200, num_leaves=31, learning_rate=0.05, random_state=seed,
                                      verbose=-1),  # fmt: skip
    }


def _value_models(seed: int) -> dict[str, Callable[[], Any]]:
    from lightgbm import LGBMRegressor
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler


    return {
        "scratch": lambda: make_pipeline(StandardScaler(), ScratchLinearRegression(random_state=seed)),
        "sklearn": lambda: make_pipeline(StandardScaler(), LinearRegression()),
        "gbm": lambda: LGBMRegressor(n_estimators=200, num_leaves=31, learning_rate=0.05, random_state=seed,
                                     verbose=-1),  # fmt: skip
    }


def _best_f1(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(y, p)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(thresholds[min(int(np.argmax(f1[:-1])), len(thresholds) - 1)])


def _fit(model: Any, X: np.ndarray, y: np.ndarray) -> list[str]:
    """Fit ``model``; the convergence warnings it raised, as text for the metrics table (not the console)."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(X, y)
    return sorted({str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)})


class ChurnMetrics(Result, kw_only=True):
    """A churn model on the test sessions: F1 at ``threshold`` (the training split's best), PR-AUC, fit time and
    the convergence warnings of the fit."""

    f1: float
    threshold: float | None = None
    pr_auc: float
    fit_seconds: float
    warnings: list[str] = msgspec.field(default_factory=list)


class ValueMetrics(Result):
    """A value model on the test sessions: RMSE and MAE of the page's spend, fit time, convergence warnings."""

    rmse: float
    mae: float
    fit_seconds: float
    warnings: list[str] = msgspec.field(default_factory=list)


class ModelSplit(Result):
    """The session split the models were scored on."""

    train_pages: int
    test_pages: int
    churn_rate_test: float


class SessionModels(Result):
    """``models.json``: every churn and value model (name -> metrics) and the split."""

    churn: dict[str, ChurnMetrics]
    value: dict[str, ValueMetrics]
    split: ModelSplit | None = None


def fit_session_models(pages: pd.DataFrame, seed: int = 0) -> tuple[dict[str, Any], SessionModels]:
    """Fit every churn and value model on the training sessions of a page table (or of its ``feature_table``);
    return (fitted models, metrics table)."""
    from sklearn.metrics import average_precision_score, f1_score, mean_absolute_error, mean_squared_error

    table_in = pages if set(CHURN_FEATURES) <= set(pages.columns) else feature_table(pages)
    train, test = split_sessions(table_in, seed=seed)
    X_churn, X_value = table_in[CHURN_FEATURES].to_numpy(), table_in[VALUE_FEATURES].to_numpy()
    done, reward = table_in["done"].to_numpy(), table_in["reward"].to_numpy(dtype=float)
    fitted: dict[str, Any] = {}
    churn: dict[str, ChurnMetrics] = {}
    value: dict[str, ValueMetrics] = {}
    for name, make in _churn_models(seed).items():
        model, started = make(), time.perf_counter()
        notes = _fit(model, X_churn[train], done[train])
        seconds = time.perf_counter() - started
        threshold = _best_f1(done[train], model.predict_proba(X_churn[train])[:, 1])
        p = model.predict_proba(X_churn[test])[:, 1]
        fitted[f"churn_{name}"] = model
        churn[name] = ChurnMetrics(f1=float(f1_score(done[test], p >= threshold)), threshold=threshold,
                                   pr_auc=float(average_precision_score(done[test], p)),
                                   fit_seconds=round(seconds, 3), warnings=notes)  # fmt: skip
    for name, make in _value_models(seed).items():
        model, started = make(), time.perf_counter()
        notes = _fit(model, X_value[train], reward[train])
        seconds = time.perf_counter() - started
        predicted = model.predict(X_value[test])
        fitted[f"value_{name}"] = model
        value[name] = ValueMetrics(rmse=float(np.sqrt(mean_squared_error(reward[test], predicted))),
                                   mae=float(mean_absolute_error(reward[test], predicted)),
                                   fit_seconds=round(seconds, 3), warnings=notes)  # fmt: skip
    split = ModelSplit(train_pages=int(train.sum()), test_pages=int(test.sum()),
                       churn_rate_test=float(done[test].mean()))  # fmt: skip
    return fitted, SessionModels(churn=churn, value=value, split=split)
