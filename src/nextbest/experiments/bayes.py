"""Bayesian analysis of a two-arm experiment, beside the frequentist one (no I/O).

Conversions (beta-binomial): each arm's rate has a Beta(a0, b0) prior (default 1, 1: uniform); with k conversions
of n units its posterior is Beta(a0 + k, b0 + n − k). The difference δ = p_t − p_c and the relative lift
δ / p_c are summarised from ``draws`` seeded posterior draws per arm.

Means (normal model): with a flat prior each arm's mean has the large-sample posterior N(m, s² / n), so
δ = μ_t − μ_c ~ N(m_t − m_c, s_t² / n_t + s_c² / n_c) = N(μ, σ²) and, in closed form,

    chance_to_beat_control = P(δ > 0)          = Φ(μ / σ)
    expected_loss          = E[max(−δ, 0)]     = σ φ(μ / σ) − μ Φ(−μ / σ)   (the loss of shipping treatment)
    expected_loss_control  = E[max(δ, 0)]      = σ φ(μ / σ) + μ Φ(μ / σ)    (the loss of keeping control)
    credible interval      = μ ± z_{1−α/2} σ   (equal-tailed)

For conversions the same four quantities are the means and quantiles of the draws. With the uniform prior and
large arms the two answers agree; with few conversions the beta-binomial one is the right model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from nextbest.experiments.design import InvalidParameter, check_alpha
from nextbest.stats import z_value

#: Posterior draws per arm for the beta-binomial summaries.
DRAWS = 100_000


@dataclass(frozen=True)
class BayesResult:
    """The posterior of treatment − control: chance to beat control, expected losses, credible intervals."""

    model: str  # "beta-binomial" or "normal"
    effect: float  # posterior mean of δ
    credible_interval: tuple[float, float]
    chance_to_beat_control: float
    expected_loss: float  # E[max(control − treatment, 0)]: what shipping treatment risks
    expected_loss_control: float  # E[max(treatment − control, 0)]: what keeping control risks
    relative_lift: float | None = None  # posterior mean of δ / control (conversions only)
    relative_credible_interval: tuple[float, float] | None = None
    level: float = 0.95
    prior: tuple[float, float] | None = None  # Beta(a0, b0) for conversions; None: flat

    def to_dict(self) -> dict:
        return asdict(self)


def bayes_proportions(conversions_c: int, n_c: int, conversions_t: int, n_t: int, alpha: float = 0.05,
                      prior: tuple[float, float] = (1.0, 1.0), draws: int = DRAWS,
                      seed: int = 0) -> BayesResult:  # fmt: skip
    """Beta-binomial posterior of the conversion rates of control and treatment (module doc)."""
    alpha = check_alpha(alpha)
    for name, k, n in (("control", conversions_c, n_c), ("treatment", conversions_t, n_t)):
        if n < 1 or not 0 <= k <= n:
            raise InvalidParameter(f"{name}: conversions must be in [0, units] with at least 1 unit, got {k} of {n}")
    a0, b0 = prior
    if a0 <= 0 or b0 <= 0:
        raise InvalidParameter(f"prior: Beta parameters must be positive, got {prior}")
    rng = np.random.default_rng(seed)
    control = rng.beta(a0 + conversions_c, b0 + n_c - conversions_c, draws)
    treatment = rng.beta(a0 + conversions_t, b0 + n_t - conversions_t, draws)
    delta, relative = treatment - control, treatment / control - 1.0
    tails = (alpha / 2, 1 - alpha / 2)
    relative_interval = tuple(float(q) for q in np.quantile(relative, tails))
    return BayesResult(
        model="beta-binomial", effect=float(delta.mean()),
        credible_interval=tuple(float(q) for q in np.quantile(delta, tails)),
        chance_to_beat_control=float((delta > 0).mean()),
        expected_loss=float(np.maximum(-delta, 0).mean()), expected_loss_control=float(np.maximum(delta, 0).mean()),
        relative_lift=float(relative.mean()), relative_credible_interval=relative_interval,
        level=1 - alpha, prior=(float(a0), float(b0)),
    )  # fmt: skip


def bayes_means(mean_c: float, var_c: float, n_c: int, mean_t: float, var_t: float, n_t: int,
                alpha: float = 0.05) -> BayesResult:  # fmt: skip
    """Normal-model posterior of the difference in means under a flat prior (closed forms of the module doc)."""
    if min(n_c, n_t) < 2 or min(var_c, var_t) < 0:
        raise InvalidParameter("each arm needs at least 2 units and a non-negative variance")
    return bayes_normal(mean_t - mean_c, float(np.sqrt(var_c / n_c + var_t / n_t)), alpha)


def bayes_normal(effect: float, standard_error: float, alpha: float = 0.05) -> BayesResult:
    """The posterior δ ~ N(effect, standard_error²) of a flat prior and a normal likelihood, summarised in the
    closed forms of the module doc: what :func:`bayes_means` computes from arm moments, and what any estimate with
    a standard error (CUPED-adjusted means, a ratio by the delta method) yields."""
    alpha = check_alpha(alpha)
    mu, sigma = float(effect), float(standard_error)
    if not sigma > 0:
        raise InvalidParameter("the standard error is zero (zero variance in both arms): the posterior is a point")
    ratio = mu / sigma
    half = z_value(1 - alpha) * sigma
    return BayesResult(
        model="normal", effect=mu, credible_interval=(mu - half, mu + half),
        chance_to_beat_control=float(stats.norm.cdf(ratio)),
        expected_loss=float(sigma * stats.norm.pdf(ratio) - mu * stats.norm.cdf(-ratio)),
        expected_loss_control=float(sigma * stats.norm.pdf(ratio) + mu * stats.norm.cdf(ratio)),
        level=1 - alpha,
    )  # fmt: skip


__all__ = ["BayesResult", "bayes_means", "bayes_normal", "bayes_proportions"]
