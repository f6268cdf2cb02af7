"""Linear and logistic regression written from scratch: mini-batch gradient descent in numpy.

Read this file top to bottom. Both estimators share one training loop (`_ScratchGD._fit_gd`) and differ only
in their link function, loss and gradient, which each class states in its docstring.

Notation: ``X`` is ``(n, p)``, ``w`` the coefficients, ``b`` the intercept, ``alpha`` the L2 strength
(parameter ``l2``). The L2 penalty never touches the intercept.

Internal standardization. Training runs on standardized features ``z = (x - mu) / s`` (``mu`` and ``s`` are
the column means and standard deviations; ``s = 1`` for constant columns), which makes one learning rate fit
every feature. The standardized matrix is never materialised: ``z @ v = x @ (v / s) - mu @ (v / s)``. The
objective is still the one written on the original scale (the penalty is ``alpha / 2 * ||w||^2`` with ``w``
the original-scale coefficients), so the standardization is only a change of coordinates (a diagonal
preconditioner), and ``coef_``/``intercept_`` are folded back to the original scale at the end:
``w = v / s`` and ``b = c - mu @ w`` where ``(v, c)`` are the standardized-space parameters.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = ["ScratchLinearRegression", "ScratchLogisticRegression"]

SCHEDULES = ("constant", "inverse_scaling", "step")
STEP_EPOCHS = 5  # "step" schedule: the learning rate halves every STEP_EPOCHS epochs
STEP_FACTOR = 0.5


def learning_rate_at(schedule: str, learning_rate: float, epoch: int) -> float:
    """Learning rate for epoch ``epoch`` (0-based).

    * ``constant``:        ``eta_t = eta_0``
    * ``inverse_scaling``: ``eta_t = eta_0 / sqrt(1 + t)``
    * ``step``:            ``eta_t = eta_0 * 0.5 ** (t // 5)``
    """
    if schedule == "constant":
        return learning_rate
    if schedule == "inverse_scaling":
        return learning_rate / np.sqrt(1.0 + epoch)
    if schedule == "step":
        return learning_rate * STEP_FACTOR ** (epoch // STEP_EPOCHS)
    raise ValueError(f"learning_rate_schedule must be one of {SCHEDULES}, got {schedule!r}.")


def _sigmoid(t: np.ndarray) -> np.ndarray:
    # exp(-logaddexp(0, -t)) = 1 / (1 + exp(-t)) without overflow
    return np.exp(-np.logaddexp(0.0, -t))


def _softmax(t: np.ndarray) -> np.ndarray:
    t = t - t.max(axis=1, keepdims=True)
    e = np.exp(t)
    return e / e.sum(axis=1, keepdims=True)


class _ScratchGD(BaseEstimator):
    """Shared mini-batch gradient-descent loop. Subclasses define the model-specific pieces:

    * ``_link(t)``: mean prediction from the linear score ``t = z @ v + c`` (shape ``(m, k)``)
    * ``_pointwise_loss(t, Y)``: per-row loss, shape ``(m,)``
    * the gradient of the per-row loss w.r.t. the score is ``link(t) - Y`` for both models (canonical links).
    """

    def _check_params(self) -> None:
        if self.learning_rate_schedule not in SCHEDULES:
            raise ValueError(
                f"learning_rate_schedule must be one of {SCHEDULES}, got {self.learning_rate_schedule!r}."
            )
        checks = {
            "learning_rate": (self.learning_rate, 0.0, False),
            "l2": (self.l2, 0.0, True),
            "tol": (self.tol, 0.0, True),
        }
        for name, (value, low, allow_equal) in checks.items():
            if not isinstance(value, numbers.Real) or value < low or (value == low and not allow_equal):
                kind = "non-negative" if allow_equal else "positive"
                raise ValueError(f"{name} must be a {kind} number, got {value!r}.")
        for name in ("batch_size", "max_epochs", "n_iter_no_change"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in (0, 1), got {self.validation_fraction!r}.")

    # -- the training loop -------------------------------------------------------------------------------------
    def _fit_gd(self, X: np.ndarray, Y: np.ndarray, row_weight: np.ndarray, init_intercept: np.ndarray) -> None:
        """Minimise ``(1/n) sum_i r_i * loss_i + alpha/2 ||w||^2`` by mini-batch gradient descent.

        ``Y`` is ``(n, k)`` (targets or one-hot labels), ``row_weight`` the per-row weights ``r_i``. Sets
        ``coef_`` (``(k, p)``), ``intercept_`` (``(k,)``), ``n_iter_`` and ``loss_curve_``
        (and ``validation_scores_`` with early stopping: validation loss per epoch, lower is better).
        """
        self._check_params()
        rng = check_random_state(self.random_state)
        n, p = X.shape
        k = Y.shape[1]

        # Shuffle the rows once into a private copy (hold-out rows first when early stopping). Each epoch then
        # visits contiguous mini-batches of that copy in a fresh random order: one gather per fit instead of a
        # random gather per mini-batch, which is what makes an epoch over 500,000 rows cheap.
        perm = rng.permutation(n)
        n_val = 0
        if self.early_stopping:
            n_val = int(round(self.validation_fraction * n))
            if n_val < 1 or n - n_val < 1:
                raise ValueError(
                    f"validation_fraction={self.validation_fraction} leaves an empty train or validation split "
                    f"with n_samples={n}; use more samples or early_stopping=False."
                )
        X_val, Y_val, r_val = X[perm[:n_val]], Y[perm[:n_val]], row_weight[perm[:n_val]]
        X_tr, Y_tr, r_tr = X[perm[n_val:]], Y[perm[n_val:]], row_weight[perm[n_val:]]
        n_train = len(X_tr)

        # Standardization statistics (from the training rows only).
        if self.fit_intercept:
            mu, s = X_tr.mean(axis=0), X_tr.std(axis=0)
        else:  # without an intercept the origin must stay where it is: scale only
            mu, s = np.zeros(p), np.sqrt((X_tr**2).mean(axis=0))
        s = np.where(s > 1e-12 * np.maximum(1.0, np.abs(mu)), s, 1.0)

        # Parameters in standardized space: scores are t = z @ V.T + c.
        V = np.zeros((k, p))
        c = init_intercept.astype(float).copy() if self.fit_intercept else np.zeros(k)
        # L2 on original-scale w = v / s: alpha/2 sum (v/s)^2 -> gradient alpha * v / s^2
        penalty_scale = self.l2 / s**2

        def validation_loss() -> float:
            W = V / s  # original-scale coefficients
            t = X_val @ W.T + (c - W @ mu)
            return float(np.sum(r_val * self._pointwise_loss(t, Y_val)) / n_val)

        batch = min(self.batch_size, n_train)
        starts = np.arange(0, n_train, batch)
        self.loss_curve_ = []
        self.validation_scores_ = [] if n_val else None
        best, best_params, no_improvement = np.inf, (V.copy(), c.copy()), 0
        converged = False
        self.n_iter_ = 0
        for epoch in range(self.max_epochs):
            eta = learning_rate_at(self.learning_rate_schedule, self.learning_rate, epoch)
            epoch_loss = 0.0
            for start in starts[rng.permutation(len(starts))]:
                Xb, Yb, rb = X_tr[start : start + batch], Y_tr[start : start + batch], r_tr[start : start + batch]
                m = len(Xb)
                W = V / s
                t = Xb @ W.T + (c - W @ mu)
                # d loss / d score = r * (link(t) - y); chain rule to standardized coordinates:
                # dL/dV = G.T @ z / m = (G.T @ x - G.sum(0)[:, None] * mu) / s / m ; dL/dc = G.sum(0) / m
                G = rb[:, None] * (self._link(t) - Yb)
                g_sum = G.sum(axis=0)
                grad_V = ((G.T @ Xb) - g_sum[:, None] * mu) / s / m + penalty_scale * V
                grad_c = g_sum / m
                epoch_loss += float(np.sum(rb * self._pointwise_loss(t, Yb)))
                V -= eta * grad_V
                if self.fit_intercept:
                    c -= eta * grad_c
            self.n_iter_ = epoch + 1
            train_loss = epoch_loss / n_train + 0.5 * self.l2 * float(np.sum((V / s) ** 2))
            self.loss_curve_.append(train_loss)
            if not np.isfinite(train_loss):
                raise ValueError(
                    "Gradient descent diverged (loss is not finite); lower learning_rate or scale the features."
                )

            # Stopping rule (as in scikit-learn's SGD): stop after n_iter_no_change epochs whose loss
            # did not improve on the best one by more than tol. With early stopping the loss is the
            # validation loss and the best parameters are restored.
            current = validation_loss() if n_val else train_loss
            if n_val:
                self.validation_scores_.append(current)
            if current < best - self.tol:
                no_improvement = 0
            else:
                no_improvement += 1
            if current < best:
                best = current
                if n_val:
                    best_params = (V.copy(), c.copy())
            if no_improvement >= self.n_iter_no_change:
                converged = True
                break

        if n_val:
            V, c = best_params
        if not converged:
            warnings.warn(
                f"Maximum number of epochs ({self.max_epochs}) reached and the loss is still improving; "
                "increase max_epochs or the learning rate.",
                ConvergenceWarning,
                stacklevel=3,
            )
        W = V / s
        self.coef_ = W
        self.intercept_ = c - W @ mu if self.fit_intercept else np.zeros(k)

    def _scores(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return X @ self.coef_.T + self.intercept_


_PARAMS_DOC = """
    Parameters
    ----------
    learning_rate : float
        Initial step size ``eta_0`` (in standardized-feature coordinates).
    learning_rate_schedule : {"constant", "inverse_scaling", "step"}
        ``eta_t`` per epoch: constant; ``eta_0 / sqrt(1 + t)``; or halved every 5 epochs.
    batch_size : int
        Rows per gradient step (the last batch of an epoch may be smaller).
    max_epochs : int
        Maximum passes over the training rows.
    l2 : float
        L2 strength ``alpha`` on the coefficients (not the intercept).
    early_stopping : bool
        Hold out ``validation_fraction`` of the rows, stop on the validation loss and keep the best epoch.
    validation_fraction : float
        Share of rows held out when ``early_stopping`` is on.
    n_iter_no_change : int
        Stop after this many epochs without an improvement larger than ``tol``.
    tol : float
        Minimum improvement of the (training or validation) loss that counts.
    random_state : int, RandomState or None
        Seeds the shuffling and the validation split: same seed, same coefficients.
    fit_intercept : bool
        Learn an intercept.
"""


class ScratchLinearRegression(RegressorMixin, _ScratchGD):
    """Least-squares linear regression with L2 penalty, trained by mini-batch gradient descent.

    Model: ``y_hat = X @ w + b``.

    Loss (mean squared error / 2 plus ridge penalty)::

        L(w, b) = 1/(2n) * sum_i (x_i @ w + b - y_i)^2 + alpha/2 * ||w||^2

    Gradient on a mini-batch ``B`` of ``m`` rows, with residuals ``e_i = x_i @ w + b - y_i``::

        dL/dw = 1/m * sum_{i in B} e_i * x_i + alpha * w
        dL/db = 1/m * sum_{i in B} e_i

    The minimiser equals scikit-learn's ``Ridge(alpha=n * l2)`` (and ``LinearRegression`` for ``l2=0``).
    """ + _PARAMS_DOC + """
    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
    intercept_ : float
    n_iter_ : int
        Epochs run.
    loss_curve_ : list of float
        Training objective per epoch (mean over the epoch's mini-batches plus the penalty).
    n_features_in_ : int
    """

    def __init__(
        self,
        learning_rate: float = 0.05,
        learning_rate_schedule: str = "inverse_scaling",
        batch_size: int = 4096,
        max_epochs: int = 100,
        l2: float = 0.0,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 3,
        tol: float = 1e-5,
        random_state=None,
        fit_intercept: bool = True,
    ):
        self.learning_rate = learning_rate
        self.learning_rate_schedule = learning_rate_schedule
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.l2 = l2
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.random_state = random_state
        self.fit_intercept = fit_intercept

    @staticmethod
    def _link(t: np.ndarray) -> np.ndarray:
        return t

    @staticmethod
    def _pointwise_loss(t: np.ndarray, Y: np.ndarray) -> np.ndarray:
        return 0.5 * np.sum((t - Y) ** 2, axis=1)

    def fit(self, X, y):
        """Fit on ``X`` ``(n, p)`` and ``y`` ``(n,)``; returns ``self``."""
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True)
        Y = y.reshape(-1, 1)
        self._fit_gd(X, Y, np.ones(len(y)), init_intercept=np.array([y.mean()]))
        self.coef_ = self.coef_[0]
        self.intercept_ = float(self.intercept_[0])
        return self

    def predict(self, X) -> np.ndarray:
        """``X @ coef_ + intercept_``."""
        return self._scores(X)


class ScratchLogisticRegression(ClassifierMixin, _ScratchGD):
    """Logistic regression with L2 penalty and class weights, trained by mini-batch gradient descent.

    Binary (``k = 2``): ``p_i = sigmoid(x_i @ w + b)``, labels ``y_i in {0, 1}`` (``classes_[1]`` is 1).
    Weighted cross-entropy with class weight ``r_i = class_weight[y_i]``::

        L(w, b) = -1/n * sum_i r_i * [y_i log p_i + (1 - y_i) log(1 - p_i)] + alpha/2 * ||w||^2

    Gradient on a mini-batch ``B`` of ``m`` rows::

        dL/dw = 1/m * sum_{i in B} r_i (p_i - y_i) x_i + alpha * w
        dL/db = 1/m * sum_{i in B} r_i (p_i - y_i)

    The minimiser equals scikit-learn's ``LogisticRegression(C=1 / (n * l2))``.

    Multiclass (``k > 2``): softmax, ``P_ic = exp(t_ic) / sum_c' exp(t_ic')`` with ``t_i = W x_i + b``,
    loss ``-1/n sum_i r_i sum_c Y_ic log P_ic + alpha/2 ||W||^2`` and the same gradient with
    ``(P_i - Y_i)`` (one-hot ``Y``) in place of ``(p_i - y_i)``.
    """ + _PARAMS_DOC + """    class_weight : None, "balanced" or dict
        Weight ``r`` of each class in the loss; "balanced" uses ``n / (k * count(class))``.

    Attributes
    ----------
    classes_ : ndarray of shape (k,)
    coef_ : ndarray of shape (1, n_features) for binary, (k, n_features) for multiclass
    intercept_ : ndarray of shape (1,) or (k,)
    n_iter_ : int
    loss_curve_ : list of float
    n_features_in_ : int
    """

    def __init__(
        self,
        learning_rate: float = 1.0,
        learning_rate_schedule: str = "inverse_scaling",
        batch_size: int = 4096,
        max_epochs: int = 100,
        l2: float = 0.0,
        class_weight=None,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 3,
        tol: float = 1e-4,
        random_state=None,
        fit_intercept: bool = True,
    ):
        self.learning_rate = learning_rate
        self.learning_rate_schedule = learning_rate_schedule
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.l2 = l2
        self.class_weight = class_weight
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.random_state = random_state
        self.fit_intercept = fit_intercept

    def _link(self, t: np.ndarray) -> np.ndarray:
        return _sigmoid(t) if t.shape[1] == 1 else _softmax(t)

    @staticmethod
    def _pointwise_loss(t: np.ndarray, Y: np.ndarray) -> np.ndarray:
        if t.shape[1] == 1:
            # -[y log sigmoid(t) + (1-y) log(1-sigmoid(t))] = log(1 + e^t) - y t
            return np.logaddexp(0.0, t[:, 0]) - Y[:, 0] * t[:, 0]
        # -sum_c Y_c log softmax(t)_c = logsumexp(t) - sum_c Y_c t_c
        top = t.max(axis=1, keepdims=True)
        lse = top[:, 0] + np.log(np.exp(t - top).sum(axis=1))
        return lse - np.sum(Y * t, axis=1)

    def fit(self, X, y):
        """Fit on ``X`` ``(n, p)`` and labels ``y`` ``(n,)``; returns ``self``."""
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, y_index = np.unique(y, return_inverse=True)
        k = len(self.classes_)
        if k < 2:
            raise ValueError(
                "This solver needs samples of at least 2 classes in the data, but the data contains only one "
                f"class: {self.classes_[0]!r}."
            )
        weights = compute_class_weight(self.class_weight, classes=self.classes_, y=y)
        row_weight = weights[y_index]
        if k == 2:
            Y = (y_index == 1).astype(float).reshape(-1, 1)
            prior = np.clip(Y.mean(), 1e-6, 1 - 1e-6)
            init = np.array([np.log(prior / (1 - prior))])
        else:
            Y = np.eye(k)[y_index]
            init = np.log(np.clip(Y.mean(axis=0), 1e-6, None))
        self._fit_gd(X, Y, row_weight, init_intercept=init)
        return self

    def decision_function(self, X) -> np.ndarray:
        """Linear score ``X @ coef_.T + intercept_``.

        Shape ``(n,)`` for binary (log-odds of ``classes_[1]``), else ``(n, k)``.
        """
        t = self._scores(X)
        return t[:, 0] if t.shape[1] == 1 else t

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, ``(n, k)`` in the order of ``classes_``."""
        t = self._scores(X)
        if t.shape[1] == 1:
            p = _sigmoid(t[:, 0])
            return np.column_stack([1.0 - p, p])
        return _softmax(t)

    def predict_log_proba(self, X) -> np.ndarray:
        return np.log(self.predict_proba(X))

    def predict(self, X) -> np.ndarray:
        """Most probable class label."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]
