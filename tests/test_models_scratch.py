"""From-scratch gradient-descent estimators: sklearn contract, gradients, convergence, options, validation."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.utils.estimator_checks import parametrize_with_checks

from nextbest.models import ScratchLinearRegression, ScratchLogisticRegression
from nextbest.models.scratch import learning_rate_at


@parametrize_with_checks([ScratchLinearRegression(), ScratchLogisticRegression()])
def test_sklearn_estimator_contract(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


def _regression(n=400, p=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)) * np.array([1.0, 3.0, 0.5, 10.0, 1.0])[:p] + np.arange(p)
    w = rng.normal(size=p)
    y = X @ w + 2.0 + rng.normal(scale=0.5, size=n)
    return X, y


def _classification(n=600, p=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)) * np.array([1.0, 2.0, 0.5, 4.0])[:p]
    logit = X @ np.array([1.0, -0.5, 1.5, 0.2])[:p] - 0.3
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y


def _objective(model, X, Y, r, V, c, l2):
    """The documented objective (1/n) sum r_i loss_i + l2/2 ||w||^2 at original-scale (V, c)."""
    t = X @ V.T + c
    return np.sum(r * model._pointwise_loss(t, Y)) / len(X) + 0.5 * l2 * np.sum(V**2)


@pytest.mark.parametrize("kind", ["linear", "binary", "softmax"])
def test_gradient_matches_finite_differences(kind):
    rng = np.random.default_rng(1)
    n, p, l2 = 7, 3, 0.3
    X = rng.normal(size=(n, p))
    r = rng.uniform(0.5, 2.0, n)
    if kind == "linear":
        model, Y = ScratchLinearRegression(), rng.normal(size=(n, 1))
    elif kind == "binary":
        model, Y = ScratchLogisticRegression(), rng.integers(0, 2, (n, 1)).astype(float)
    else:
        model, Y = ScratchLogisticRegression(), np.eye(3)[rng.integers(0, 3, n)]
    k = Y.shape[1]
    V, c = rng.normal(size=(k, p)), rng.normal(size=k)
    # analytic gradient as written in the docstrings: (1/n) sum r_i (link(t_i) - y_i) x_i + l2 w
    G = r[:, None] * (model._link(X @ V.T + c) - Y)
    grad_V, grad_c = G.T @ X / n + l2 * V, G.sum(axis=0) / n
    eps = 1e-6
    for idx in np.ndindex(V.shape):
        step = np.zeros_like(V)
        step[idx] = eps
        up, down = _objective(model, X, Y, r, V + step, c, l2), _objective(model, X, Y, r, V - step, c, l2)
        numeric = (up - down) / (2 * eps)
        assert numeric == pytest.approx(grad_V[idx], abs=1e-7)
    for j in range(k):
        step = np.zeros(k)
        step[j] = eps
        up, down = _objective(model, X, Y, r, V, c + step, l2), _objective(model, X, Y, r, V, c - step, l2)
        numeric = (up - down) / (2 * eps)
        assert numeric == pytest.approx(grad_c[j], abs=1e-7)


def test_linear_converges_to_ridge():
    X, y = _regression()
    l2 = 0.01
    ours = ScratchLinearRegression(
        l2=l2, batch_size=32, learning_rate=0.05, max_epochs=500, tol=1e-10, n_iter_no_change=10, random_state=0
    ).fit(X, y)
    ref = Ridge(alpha=len(y) * l2).fit(X, y)
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=5e-3)
    assert ours.intercept_ == pytest.approx(ref.intercept_, abs=2e-2)
    assert ours.score(X, y) == pytest.approx(ref.score(X, y), abs=1e-4)


def test_logistic_converges_to_sklearn():
    X, y = _classification()
    l2 = 0.01
    # one batch = full-batch gradient descent with a constant step: converges to the exact optimum
    ours = ScratchLogisticRegression(
        l2=l2,
        batch_size=len(y),
        learning_rate=1.0,
        learning_rate_schedule="constant",
        max_epochs=3000,
        tol=1e-12,
        n_iter_no_change=10,
        random_state=0,
    ).fit(X, y)
    ref = LogisticRegression(C=1.0 / (len(y) * l2), tol=1e-10, max_iter=10_000).fit(X, y)
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-4)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, atol=1e-4)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-5)


def test_predict_proba_and_decision_function_agree():
    X, y = _classification()
    model = ScratchLogisticRegression(random_state=0).fit(X, y)
    proba = model.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(proba[:, 1], 1 / (1 + np.exp(-model.decision_function(X))))
    np.testing.assert_array_equal(model.predict(X), model.classes_[(model.decision_function(X) > 0).astype(int)])
    assert model.coef_.shape == (1, X.shape[1]) and model.intercept_.shape == (1,)


def test_class_weight_shifts_the_boundary():
    X, y = _classification(n=2000)
    y = np.where(np.random.default_rng(2).random(len(y)) < 0.6, 0, y)  # make class 1 a minority
    plain = ScratchLogisticRegression(random_state=0).fit(X, y)
    heavy = ScratchLogisticRegression(class_weight={0: 1.0, 1: 5.0}, random_state=0).fit(X, y)
    balanced = ScratchLogisticRegression(class_weight="balanced", random_state=0).fit(X, y)
    assert heavy.intercept_[0] > plain.intercept_[0] + 0.5
    assert heavy.predict(X).mean() > plain.predict(X).mean()
    assert balanced.predict_proba(X)[:, 1].mean() > plain.predict_proba(X)[:, 1].mean()


def test_early_stopping_stops_and_keeps_best_epoch():
    X, y = _classification(n=3000)
    model = ScratchLogisticRegression(
        early_stopping=True, validation_fraction=0.2, n_iter_no_change=3, tol=1e-3, max_epochs=500, random_state=0
    ).fit(X, y)
    assert model.n_iter_ < 500
    assert len(model.validation_scores_) == model.n_iter_ == len(model.loss_curve_)
    best = int(np.argmin(model.validation_scores_))
    assert model.n_iter_ - 1 - best >= 3 or model.n_iter_ >= 4
    lin = ScratchLinearRegression(
        early_stopping=True, batch_size=32, tol=1e-3, max_epochs=500, random_state=0
    ).fit(*_regression())
    assert lin.n_iter_ < 500


def test_max_epochs_warns():
    X, y = _regression()
    with pytest.warns(ConvergenceWarning):
        ScratchLinearRegression(max_epochs=1, tol=0.0, random_state=0).fit(X, y)


@pytest.mark.parametrize("schedule", ["constant", "inverse_scaling", "step"])
def test_same_random_state_same_coef(schedule):
    X, y = _classification()
    a = ScratchLogisticRegression(learning_rate_schedule=schedule, batch_size=16, random_state=7).fit(X, y)
    b = ScratchLogisticRegression(learning_rate_schedule=schedule, batch_size=16, random_state=7).fit(X, y)
    c = ScratchLogisticRegression(learning_rate_schedule=schedule, batch_size=16, random_state=8).fit(X, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    assert a.loss_curve_ == b.loss_curve_
    assert not np.array_equal(a.coef_, c.coef_)


def test_learning_rate_schedules():
    assert learning_rate_at("constant", 0.5, 9) == 0.5
    assert learning_rate_at("inverse_scaling", 0.5, 3) == pytest.approx(0.25)
    assert learning_rate_at("step", 0.8, 4) == 0.8 and learning_rate_at("step", 0.8, 5) == pytest.approx(0.4)


def test_multiclass_softmax():
    rng = np.random.default_rng(0)
    centers = np.array([[0, 0], [4, 0], [0, 4]])
    y = rng.integers(0, 3, 600)
    X = centers[y] + rng.normal(size=(600, 2))
    labels = np.array(["a", "b", "c"])[y]
    model = ScratchLogisticRegression(batch_size=32, random_state=0).fit(X, labels)
    assert list(model.classes_) == ["a", "b", "c"]
    assert model.coef_.shape == (3, 2) and model.predict_proba(X).shape == (600, 3)
    assert model.score(X, labels) > 0.9


@pytest.mark.parametrize("estimator", [ScratchLinearRegression(), ScratchLogisticRegression()])
def test_bad_input_raises(estimator):
    X, y = _classification(n=50)
    X_nan = X.copy()
    X_nan[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        estimator.fit(X_nan, y)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        estimator.fit(X, y[:-1])
    with pytest.raises(ValueError, match="2D array"):
        estimator.fit(X[:, 0], y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = estimator.fit(X, y)
    with pytest.raises(ValueError, match="features"):
        model.predict(X[:, :2])
    with pytest.raises(ValueError, match="learning_rate_schedule"):
        type(estimator)(learning_rate_schedule="cosine").fit(X, y)
    with pytest.raises(ValueError, match="learning_rate"):
        type(estimator)(learning_rate=-1.0).fit(X, y)


def test_logistic_rejects_continuous_and_single_class_targets():
    X, _ = _classification(n=50)
    with pytest.raises(ValueError, match="Unknown label type"):
        ScratchLogisticRegression().fit(X, np.linspace(0, 1, 50))
    with pytest.raises(ValueError, match="at least 2 classes"):
        ScratchLogisticRegression().fit(X, np.ones(50))
