"""Benchmark: from-scratch gradient descent vs scikit-learn on the 500,000-row targeting set (one JSON line).

Data: the shop world's store training set (``World(seed=0).training_set(500_000)``, its own train/test split;
features age, man and the ~110 purchase flags, target ``bought``). When ``nextbest.sim.shop`` is not
importable, a synthetic numpy dataset of the same shape is used instead (``"data"`` says which).

* ``ScratchLogisticRegression`` vs ``LogisticRegression(solver="lbfgs")``, both with the same L2 strength
  (``C = 1 / (n_train * l2)``): test log-loss and fit seconds. Target: log-loss within 1 % of scikit-learn's
  and fit time <= 2x scikit-learn's (``meets_target``).
  Also reported, for information only: lbfgs on standardized features (``StandardScaler`` pipeline), which
  converges in far fewer iterations than lbfgs on the raw features (age is on a 18-80 scale).
* ``ScratchLinearRegression`` vs ``LinearRegression`` and ``Ridge`` (linear probability model of ``bought``):
  test RMSE and fit seconds (reported, no target).

Fit times are the best of ``REPEATS`` fits on the same machine.
"""

from __future__ import annotations

import json
import os
import platform
import time
import warnings

import numpy as np
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from nextbest.models import ScratchLinearRegression, ScratchLogisticRegression

N_ROWS = 500_000
SEED = 0
REPEATS = 2
L2 = 1e-6  # per-row L2 strength alpha (scratch); sklearn uses C = 1 / (n_train * alpha)
LOGLOSS_TOLERANCE, TIME_RATIO_TARGET = 0.01, 2.0


def shop_data() -> tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from nextbest.sim.shop import World

    train, test = World(seed=SEED).training_set(N_ROWS)
    features = [c for c in train.columns if c not in ("uuid", "woman", "bought")]
    return (
        "shop_world",
        train[features].to_numpy(np.float64),
        train["bought"].to_numpy(np.float64),
        test[features].to_numpy(np.float64),
        test["bought"].to_numpy(np.float64),
    )


def synthetic_data() -> tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(SEED)
    n, n_flags = N_ROWS, 110
    age = np.clip(np.rint(18 + rng.gamma(4.0, 6.0, n)), 18, 80)
    man = (rng.random(n) < 0.5).astype(float)
    factors = rng.standard_normal((n, 8))
    loadings = rng.uniform(0.0, 1.5, (8, n_flags)) * (rng.random((8, n_flags)) < 0.3)
    flags = (rng.random((n, n_flags)) < 1 / (1 + np.exp(-(rng.uniform(-3.5, -0.8, n_flags) + factors @ loadings))))
    X = np.column_stack([age, man, flags.astype(float)])
    logit = -2.5 - 0.03 * (age - 40) + 0.5 * man + flags[:, :5] @ np.array([0.8, 0.6, 0.5, -0.4, 0.3])
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    is_test = rng.random(n) < 0.2
    return "synthetic", X[~is_test], y[~is_test], X[is_test], y[is_test]


def best_fit_seconds(make, X, y) -> tuple[float, object]:
    seconds, model = [], None
    for _ in range(REPEATS):
        model = make()
        started = time.perf_counter()
        model.fit(X, y)
        seconds.append(time.perf_counter() - started)
    return min(seconds), model


def main() -> None:
    try:
        source, X_train, y_train, X_test, y_test = shop_data()
    except ImportError:
        source, X_train, y_train, X_test, y_test = synthetic_data()
    n_train = len(y_train)
    warnings.simplefilter("ignore")

    # --- logistic regression
    sk_seconds, sk_log = best_fit_seconds(
        lambda: LogisticRegression(C=1.0 / (n_train * L2), solver="lbfgs", max_iter=1000), X_train, y_train
    )
    sc_seconds, sc_log = best_fit_seconds(lambda: ScratchLogisticRegression(l2=L2, random_state=SEED), X_train, y_train)
    # for information: lbfgs on standardized features (scratch standardizes internally); not the target
    sks_seconds, sks_log = best_fit_seconds(
        lambda: make_pipeline(
            StandardScaler(), LogisticRegression(C=1.0 / (n_train * L2), solver="lbfgs", max_iter=1000)
        ),
        X_train,
        y_train,
    )
    sks_ll = log_loss(y_test, sks_log.predict_proba(X_test)[:, 1])
    sk_p, sc_p = sk_log.predict_proba(X_test)[:, 1], sc_log.predict_proba(X_test)[:, 1]
    sk_ll, sc_ll = log_loss(y_test, sk_p), log_loss(y_test, sc_p)
    logloss_gap = sc_ll / sk_ll - 1.0
    time_ratio = sc_seconds / sk_seconds

    # --- linear regression (linear probability model)
    lin_seconds, lin = best_fit_seconds(LinearRegression, X_train, y_train)
    ridge_seconds, ridge = best_fit_seconds(lambda: Ridge(alpha=n_train * L2), X_train, y_train)
    scl_seconds, scl = best_fit_seconds(lambda: ScratchLinearRegression(l2=L2, random_state=SEED), X_train, y_train)

    def rmse(model) -> float:
        return float(np.sqrt(np.mean((model.predict(X_test) - y_test) ** 2)))

    result = {
        "benchmark": "scratch_vs_sklearn",
        "data": source,
        "n_train": n_train,
        "n_test": len(y_test),
        "n_features": X_train.shape[1],
        "l2": L2,
        "logistic": {
            "sklearn_lbfgs": {"log_loss": sk_ll, "auc": roc_auc_score(y_test, sk_p), "fit_seconds": sk_seconds},
            "sklearn_lbfgs_standardized": {"log_loss": sks_ll, "fit_seconds": sks_seconds},
            "scratch": {
                "log_loss": sc_ll,
                "auc": roc_auc_score(y_test, sc_p),
                "fit_seconds": sc_seconds,
                "epochs": sc_log.n_iter_,
                "params": {k: v for k, v in sc_log.get_params().items() if k != "class_weight"},
            },
            "log_loss_gap": logloss_gap,
            "time_ratio": time_ratio,
            "time_ratio_vs_standardized": sc_seconds / sks_seconds,
            "targets": {"log_loss_gap_max": LOGLOSS_TOLERANCE, "time_ratio_max": TIME_RATIO_TARGET},
            "meets_target": bool(logloss_gap <= LOGLOSS_TOLERANCE and time_ratio <= TIME_RATIO_TARGET),
        },
        "linear": {
            "sklearn_linear_regression": {"rmse": rmse(lin), "fit_seconds": lin_seconds},
            "sklearn_ridge": {"rmse": rmse(ridge), "fit_seconds": ridge_seconds},
            "scratch": {"rmse": rmse(scl), "fit_seconds": scl_seconds, "epochs": scl.n_iter_},
            "rmse_gap_vs_ridge": rmse(scl) / rmse(ridge) - 1.0,
            "time_ratio_vs_ridge": scl_seconds / ridge_seconds,
        },
        "repeats": REPEATS,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
