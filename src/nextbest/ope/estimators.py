"""Off-policy estimators of a target policy's value from logged bandit decisions (no I/O).

Notation, for n logged decisions i: context x_i, logged action a_i, reward r_i, logging propensity
p_i = π₀(a_i | x_i); the target policy's probabilities π(a | x_i) for every action (``target`` [n, k]);
importance weight w_i = π(a_i | x_i) / p_i; a reward model q̂(x, a) (``reward_model`` [n, k]) where an estimator
needs one; its value under the target policy v̂_i = Σ_a π(a | x_i) q̂(x_i, a).

    DirectMethod              V = 1/n Σ v̂_i
    IPS                       V = 1/n Σ w_i r_i
    SelfNormalizedIPS         V = Σ w_i r_i / Σ w_i
    DoublyRobust              V = 1/n Σ [v̂_i + w_i (r_i − q̂(x_i, a_i))]
    SelfNormalizedDR          V = 1/n Σ v̂_i + Σ w_i (r_i − q̂(x_i, a_i)) / Σ w_i
    SwitchDR(τ)               V = 1/n Σ [v̂_i + 1{w_i ≤ τ} w_i (r_i − q̂(x_i, a_i))]

Every estimate carries an interval: by default (``interval="normal"``) the normal interval of the estimator's
influence function, V ± z · sd(ψ) / √n with ψ_i = (a_i − R b_i) / b̄ + (c_i − c̄) for V = Σa / Σb + mean c
(R = Σa / Σb); with ``interval="bootstrap"`` a percentile bootstrap over the logged rows (resampled with
replacement, the same rows for numerator and denominator) up to ``BOOTSTRAP_MAX_ROWS`` rows, the normal interval
beyond. In the shop world's coverage study (``benchmarks/ope_coverage.py``: 500 logs of 10,000 rows, 2,500
intervals per estimator) the normal interval covered the truth more often than the 200-replicate percentile
bootstrap (IPS 93.9% against 92.9%, SNIPS 94.7% and DR 94.8% against 94.0%): a percentile interval from few
replicates is too narrow, and the normal one has no Monte Carlo error. Each estimate also reports the effective
sample size ESS = (Σ w)² / Σ w², the largest weight and the target's probability mass the log does not support.
IPS and SNIPS refuse a target policy with unsupported mass (`SupportViolation`): no weighting recovers what was
never tried; the DR family reports it and lets the reward model speak there. References: Dudík et al. (2011) for DR,
Swaminathan & Joachims (2015) for self-normalization, Wang et al. (2017) for switch-DR; Open Bandit Pipeline
implements the same estimators.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nextbest.errors import NextbestError
from nextbest.results import Result
from nextbest.stats import percentile_interval, z_value


class SupportViolation(NextbestError):
    """The target policy puts probability on actions the logging policy never takes in those contexts."""


@dataclass(frozen=True)
class LoggedBandit:
    """n logged decisions: ``actions`` (int [n], in 0..n_actions−1), ``rewards`` (float [n]), ``pscores``
    (π₀(a_i | x_i), float [n] in (0, 1]) and, when known, the logging policy's full distribution
    ``logging`` (float [n, n_actions]) for the support check."""

    actions: np.ndarray
    rewards: np.ndarray
    pscores: np.ndarray
    n_actions: int
    logging: np.ndarray | None = None

    def __post_init__(self) -> None:
        actions, rewards, pscores = (np.asarray(a) for a in (self.actions, self.rewards, self.pscores))
        n = actions.shape[0]
        if n == 0 or rewards.shape != (n,) or pscores.shape != (n,) or actions.shape != (n,):
            raise NextbestError(f"a log needs as many actions, rewards and propensities, at least one "
                                f"(got {actions.shape}, {rewards.shape}, {pscores.shape})")  # fmt: skip
        bad = np.flatnonzero(~((pscores > 0) & (pscores <= 1)))
        if bad.size:
            raise NextbestError(f"propensity must be in (0, 1]: row {int(bad[0])} has {pscores[bad[0]]!r} "
                                f"({bad.size} such rows)")  # fmt: skip
        outside = np.flatnonzero((actions < 0) | (actions >= self.n_actions))
        if outside.size:
            raise NextbestError(f"action must be in 0..{self.n_actions - 1}: row {int(outside[0])} has "
                                f"{actions[outside[0]]!r}")  # fmt: skip
        if not np.isfinite(rewards).all():
            raise NextbestError(f"reward must be a number: row {int(np.flatnonzero(~np.isfinite(rewards))[0])}")

    def __len__(self) -> int:
        return int(np.asarray(self.actions).shape[0])

    def weights(self, target: np.ndarray) -> np.ndarray:
        """w_i = π(a_i | x_i) / π₀(a_i | x_i)."""
        rows = np.arange(len(self))
        return check_target(target, len(self), self.n_actions)[rows, self.actions] / self.pscores

    def unsupported_mass(self, target: np.ndarray) -> float:
        """Mean target probability on actions the logging policy never takes: Σ_a π(a|x) 1{π₀(a|x) = 0} when the
        logging distribution is known, else on actions absent from the whole log."""
        target = check_target(target, len(self), self.n_actions)
        if self.logging is not None:
            return float((target * (np.asarray(self.logging) <= 0)).sum(axis=1).mean())
        seen = np.bincount(self.actions, minlength=self.n_actions) > 0
        return float(target[:, ~seen].sum(axis=1).mean())


def check_target(target: np.ndarray, n: int, n_actions: int) -> np.ndarray:
    """The target policy's probabilities as float [n, n_actions], rows summing to 1 (else NextbestError)."""
    target = np.asarray(target, dtype=float)
    if target.shape != (n, n_actions):
        raise NextbestError(f"the target policy needs a probability for each of {n_actions} actions in each of the "
                            f"{n} logged contexts, got an array of shape {target.shape}")  # fmt: skip
    if (target < 0).any() or not np.allclose(target.sum(axis=1), 1.0, atol=1e-6):
        row = int(np.flatnonzero((target < 0).any(axis=1) | ~np.isclose(target.sum(axis=1), 1.0, atol=1e-6))[0])
        raise NextbestError(f"the target policy's probabilities must be >= 0 and sum to 1: context {row} sums to "
                            f"{target[row].sum():.6g}")  # fmt: skip
    return target


BOOTSTRAP_MAX_ROWS = 200_000


class OPEEstimate(Result):
    """One estimator's value of the target policy, its interval and weight diagnostics."""

    estimator: str
    estimate: float
    ci: list[float]
    interval: str  # "normal" (influence function) or "bootstrap" (percentile, over logged rows)
    level: float
    n: int
    ess: float | None
    max_weight: float | None
    unsupported_mass: float


@dataclass(frozen=True)
class _Terms:
    """Per-row numerators and denominators: V = Σ numerator / Σ denominator (+ offset of the mean-type part)."""

    numerator: np.ndarray
    denominator: np.ndarray
    baseline: np.ndarray | None = None  # per-row term averaged on its own (self-normalized DR's DM part)


class Estimator:
    """Base: ``estimate(log, target, reward_model=None, level=0.95, n_boot=200, seed=0, interval="normal")`` ->
    ``OPEEstimate``; ``contrast(log, target, control, ...)`` the same for V(target) − V(control)."""

    name = "estimator"
    needs_reward_model = False
    uses_weights = True
    needs_support = False

    def terms(self, log: LoggedBandit, target: np.ndarray, reward_model: np.ndarray | None) -> _Terms:
        raise NotImplementedError

    def estimate(self, log: LoggedBandit, target: np.ndarray, reward_model: np.ndarray | None = None,
                 level: float = 0.95, n_boot: int = 200, seed: int = 0, interval: str = "normal") -> OPEEstimate:
        """The target policy's value with its ``level`` interval (``interval``: normal or bootstrap, module doc)."""
        terms, weights, mass = self._checked_terms(log, target, reward_model)
        value = _value(terms)
        low, high, interval = _interval(terms, None, value, len(log), level, interval, n_boot, seed)
        ess = float(weights.sum() ** 2 / np.square(weights).sum()) if self.uses_weights and weights.any() else None
        return OPEEstimate(estimator=self.name, estimate=value, ci=[low, high], interval=interval,
                           level=level, n=len(log), ess=ess,
                           max_weight=float(weights.max()) if self.uses_weights else None,
                           unsupported_mass=mass)  # fmt: skip

    def contrast(self, log: LoggedBandit, target: np.ndarray, control: np.ndarray,
                 reward_model: np.ndarray | None = None, level: float = 0.95, n_boot: int = 200,
                 seed: int = 0, interval: str = "normal") -> OPEEstimate:  # fmt: skip
        """V(target) − V(control), both estimated from the same log; the interval resamples the same rows for both
        (paired), so the shared noise cancels. Diagnostics (ESS, largest weight, unsupported mass) are the target's;
        a support violation of either policy is refused by the IPS family."""
        target_terms, weights, mass = self._checked_terms(log, target, reward_model)
        control_terms, _, _ = self._checked_terms(log, control, reward_model)
        value = _value(target_terms) - _value(control_terms)
        low, high, interval = _interval(target_terms, control_terms, value, len(log), level, interval, n_boot, seed)
        ess = float(weights.sum() ** 2 / np.square(weights).sum()) if self.uses_weights and weights.any() else None
        return OPEEstimate(estimator=self.name, estimate=value, ci=[low, high], interval=interval, level=level,
                           n=len(log), ess=ess, max_weight=float(weights.max()) if self.uses_weights else None,
                           unsupported_mass=mass)  # fmt: skip

    def _checked_terms(self, log: LoggedBandit, target: np.ndarray,
                       reward_model: np.ndarray | None) -> tuple[_Terms, np.ndarray, float]:  # fmt: skip
        target = check_target(target, len(log), log.n_actions)
        if self.needs_reward_model:
            reward_model = check_reward_model(reward_model, len(log), log.n_actions, self.name)
        mass = log.unsupported_mass(target)
        if self.needs_support and mass > 0:
            raise SupportViolation(f"{self.name}: the target policy puts {mass:.2%} of its probability on actions the "
                                   "logging policy never takes; no weighting recovers them (use the direct method or "
                                   "doubly robust, or log with exploration)")  # fmt: skip
        return self.terms(log, target, reward_model), log.weights(target), mass


INTERVALS = ("normal", "bootstrap")


def _interval(terms: _Terms, control: _Terms | None, value: float, n: int, level: float, method: str, n_boot: int,
              seed: int) -> tuple[float, float, str]:  # fmt: skip
    """The interval of V(terms) − V(control) (control None: of V(terms)) and the method used: the influence
    function's normal interval, or (``method="bootstrap"``, up to ``BOOTSTRAP_MAX_ROWS`` rows) the percentile
    bootstrap resampling the same rows for both."""
    if method not in INTERVALS:
        raise NextbestError(f"interval {method!r}: choose one of {', '.join(INTERVALS)}")
    if method == "bootstrap" and n <= BOOTSTRAP_MAX_ROWS:
        replicates = _bootstrap(terms, n, n_boot, seed)
        if control is not None:
            replicates = replicates - _bootstrap(control, n, n_boot, seed)
        low, high = percentile_interval(replicates, level)
        return float(low), float(high), "bootstrap"
    psi = _influence(terms, _value(terms))
    if control is not None:
        psi = psi - _influence(control, _value(control))
    half = z_value(level) * float(psi.std(ddof=1) / np.sqrt(n))
    return value - half, value + half, "normal"


def check_reward_model(reward_model: np.ndarray | None, n: int, n_actions: int, name: str) -> np.ndarray:
    if reward_model is None:
        raise NextbestError(f"{name} needs a reward model: predicted rewards [n, n_actions]")
    reward_model = np.asarray(reward_model, dtype=float)
    if reward_model.shape != (n, n_actions) or not np.isfinite(reward_model).all():
        raise NextbestError(f"{name}: the reward model must give a finite reward for each of {n_actions} actions in "
                            f"each of the {n} contexts, got shape {reward_model.shape}")  # fmt: skip
    return reward_model


def _value(terms: _Terms) -> float:
    denominator = terms.denominator.sum()
    if denominator == 0:
        raise NextbestError("the target policy gives weight 0 to every logged decision: nothing to estimate from")
    value = terms.numerator.sum() / denominator
    if terms.baseline is not None:
        value += terms.baseline.mean()
    return float(value)


def _influence(terms: _Terms, value: float) -> np.ndarray:
    """ψ_i of V = Σa / Σb + mean(c): (a_i − R b_i) / b̄ + (c_i − c̄), R = Σa / Σb."""
    ratio = terms.numerator.sum() / terms.denominator.sum()
    psi = (terms.numerator - ratio * terms.denominator) / terms.denominator.mean()
    if terms.baseline is not None:
        psi = psi + terms.baseline - terms.baseline.mean()
    return psi


def _bootstrap(terms: _Terms, n: int, n_boot: int, seed: int, chunk_values: int = 4_000_000) -> np.ndarray:
    """The estimate on ``n_boot`` resamples of the rows: each replicate draws multinomial counts of the n rows,
    in chunks of about ``chunk_values`` counts."""
    rng = np.random.default_rng(seed)
    stacked = np.vstack([terms.numerator, terms.denominator, terms.baseline if terms.baseline is not None
                         else np.zeros(n)]).T  # fmt: skip
    values = np.empty(n_boot)
    chunk = max(1, chunk_values // n)
    for start in range(0, n_boot, chunk):
        size = min(chunk, n_boot - start)
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=size).astype(float)
        sums = counts @ stacked
        with np.errstate(divide="ignore", invalid="ignore"):
            values[start:start + size] = sums[:, 0] / sums[:, 1] + sums[:, 2] / n
    return values


def _dr_parts(log: LoggedBandit, target: np.ndarray, reward_model: np.ndarray) -> tuple[np.ndarray, ...]:
    """w_i, v̂_i = Σ_a π(a | x_i) q̂(x_i, a) and the residual r_i − q̂(x_i, a_i) of the DR family."""
    factual = reward_model[np.arange(len(log)), log.actions]
    return log.weights(target), (target * reward_model).sum(axis=1), log.rewards - factual


class DirectMethod(Estimator):
    """V = 1/n Σ_i Σ_a π(a | x_i) q̂(x_i, a): trusts the reward model entirely (biased where it is wrong). Its
    interval holds the reward model fixed, so it covers the spread of the contexts only, not the model's own
    error: read it as a lower bound on the uncertainty."""

    name = "dm"
    needs_reward_model = True
    uses_weights = False

    def terms(self, log: LoggedBandit, target: np.ndarray, reward_model: np.ndarray | None) -> _Terms:
        return _Terms((target * reward_model).sum(axis=1), np.ones(len(log)))


class IPS(Estimator):
    """V = 1/n Σ_i w_i r_i: unbiased under full support; its variance grows with the weights."""

    name = "ips"
    needs_support = True

    def terms(self, log: LoggedBandit, target: np.ndarray, reward_model: np.ndarray | None) -> _Terms:
        return _Terms(log.weights(target) * log.rewards, np.ones(len(log)))


class SelfNormalizedIPS(Estimator):
    """V = Σ_i w_i r_i / Σ_i w_i: slightly biased, far less variable when weights are large."""

    name = "snips"
    needs_support = True

    def terms(self, log: LoggedBandit, target: np.ndarray, reward_model: np.ndarray | None) -> _Terms:
        weights = log.weights(target)
        return _Terms(weights * log.rewards, weights)


class DoublyRobust(Estimator):
    """V = 1/n Σ_i [v̂_i + w_i (r_i − q̂(x_i, a_i))]: unbiased if the propensities or the reward model are right."""

    name = "dr"
    needs_reward_model = True

    def terms(self, log: LoggedBandit, target: np.ndarray, reward_model: np.ndarray | None) -> _Terms:
        weights, direct, residual = _dr_parts(log, target, reward_model)
        return _Terms(direct + weights * residual, np.ones(len(log)))


class SelfNormalizedDR(Estimator):
    """V = 1/n Σ_i v̂_i + Σ_i w_i (r_i − q̂(x_i, a_i)) / Σ_i w_i."""

    name = "sndr"
    needs_reward_model = True

    def terms(self, log: LoggedBandit, target: np.ndarray, reward_model: np.ndarray | None) -> _Terms:
        weights, direct, residual = _dr_parts(log, target, reward_model)
        return _Terms(weights * residual, weights, baseline=direct)


class SwitchDR(Estimator):
    """V = 1/n Σ_i [v̂_i + 1{w_i ≤ τ} w_i (r_i − q̂(x_i, a_i))]: DR, with the correction dropped where the weight
    exceeds τ (there the reward model alone speaks)."""

    name = "switch-dr"
    needs_reward_model = True

    def __init__(self, tau: float = 10.0) -> None:
        if not tau > 0:
            raise NextbestError(f"switch-dr: tau must be > 0, got {tau}")
        self.tau = float(tau)

    def terms(self, log: LoggedBandit, target: np.ndarray, reward_model: np.ndarray | None) -> _Terms:
        weights, direct, residual = _dr_parts(log, target, reward_model)
        return _Terms(direct + np.where(weights <= self.tau, weights, 0.0) * residual, np.ones(len(log)))


ESTIMATORS: dict[str, type[Estimator]] = {
    cls.name: cls for cls in (DirectMethod, IPS, SelfNormalizedIPS, DoublyRobust, SelfNormalizedDR, SwitchDR)
}
