"""Analysis of a finished two-arm experiment: Welch's t-test, CUPED, bootstrap interval, sample-ratio check.

Welch's t-test (unequal variances). With arm means ``m_c, m_t``, sample variances ``s_c^2, s_t^2`` (ddof 1)
and sizes ``n_c, n_t``::

    effect = m_t - m_c                       se = sqrt(s_c^2 / n_c + s_t^2 / n_t)
    t = (effect - 0) / se                    df = se^4 / ((s_c^2/n_c)^2/(n_c-1) + (s_t^2/n_t)^2/(n_t-1))

p-value from Student's t with ``df`` (two-sided ``2 P(T > |t|)``, larger ``P(T > t)``, smaller ``P(T < t)``);
the interval is the dual of the test (two-sided ``effect +- t_{1-alpha/2} se``, one-sided with one infinite end);
``ci_two_sided`` is always the finite two-sided (1 - alpha) interval.

Target test: H0 ``effect <= target`` against ``effect > target`` (``effect >= target`` against ``<`` for
alternative "smaller", where lower is better): ``t_target = (effect - target) / se``, one-sided p-value
``target_p_value``. It is compared with ``target_alpha`` = alpha for one-sided analyses and alpha / 2 for
two-sided ones, so that ``improves_by_target`` holds exactly when the reported interval lies beyond the
target. Note: a design powered to detect ``effect = target`` against 0 has only ~50 % power for this test
when the true effect equals the target; power it for a larger effect, or for ``target`` as H0, if that matters.

CUPED (Deng et al. 2013) with a pre-period covariate X: ``theta = sum_arms sum_i (y_i - m_y)(x_i - m_x) /
sum_arms sum_i (x_i - m_x)^2`` (covariance and variance pooled over both arms, each arm centred on its own
means, so the treatment effect does not leak into theta), ``Y' = Y - theta (X - mean(X over both arms))``, then
Welch's test on ``Y'``. ``variance_reduction = 1 - se'^2 / se^2`` (about ``corr(X, Y)^2``). Unbiased because X
is measured before assignment: ``E[mean X_t - mean X_c] = 0``.

Bootstrap: percentile interval of ``mean(T*) - mean(C*)`` over ``n_boot`` resamples drawn with replacement
within each arm, vectorized in chunks.

Sample-ratio mismatch: Pearson's chi-square goodness of fit of the arm counts against the configured split,
``chi2 = sum (O_k - E_k)^2 / E_k`` with ``k - 1`` degrees of freedom; flagged when ``p < threshold`` (0.001).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from scipy import special, stats

from nextbest.experiments.design import InvalidParameter, _as_array, check_alpha, check_alternative
from nextbest.stats import percentile_interval


def _plain(value: Any) -> Any:
    """JSON-ready: tuples to lists, numpy scalars to Python, non-finite floats to None."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _fmt(value: float) -> str:
    if not math.isfinite(value):
        return "inf" if value > 0 else "-inf"
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.3g}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _fmt_p(p: float) -> str:
    return f"{p:.2g}"


def _interval(ci: tuple[float, float]) -> str:
    low, high = ci
    if math.isfinite(low) and not math.isfinite(high):
        return f"at least {_fmt(low)}"
    if math.isfinite(high) and not math.isfinite(low):
        return f"at most {_fmt(high)}"
    return f"{_fmt(low)} to {_fmt(high)}"


@dataclass(frozen=True)
class _Arm:
    n: int
    mean: float
    var: float  # ddof 1


def _summarize(values: np.ndarray, name: str) -> _Arm:
    if values.size < 2:
        raise InvalidParameter(f"{name} needs at least 2 observations, got {values.size}")
    mean = float(values.mean())
    centred = values - mean
    var = float(np.dot(centred, centred)) / (values.size - 1)
    return _Arm(values.size, mean, var)


@dataclass(frozen=True)
class _Welch:
    effect: float
    se: float
    statistic: float
    df: float
    p_value: float


def welch_from_moments(mean_c, var_c, n_c, mean_t, var_t, n_t, alternative: str = "two-sided", null: float = 0.0):
    """Welch's t statistic, df and p-value from arm moments; works elementwise on numpy arrays.

    Returns ``(effect, se, t, df, p_value)``."""
    v_c = np.asarray(var_c, dtype=np.float64) / n_c
    v_t = np.asarray(var_t, dtype=np.float64) / n_t
    se2 = v_c + v_t
    se = np.sqrt(se2)
    effect = np.asarray(mean_t, dtype=np.float64) - mean_c
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = (effect - null) / se
        df = se2**2 / (v_c**2 / (np.asarray(n_c) - 1) + v_t**2 / (np.asarray(n_t) - 1))
    if alternative == "two-sided":
        p_value = 2.0 * special.stdtr(df, -np.abs(statistic))
    elif alternative == "larger":
        p_value = special.stdtr(df, -statistic)
    else:
        p_value = special.stdtr(df, statistic)
    return effect, se, statistic, df, np.minimum(p_value, 1.0)


@dataclass(frozen=True)
class AnalysisResult:
    """Outcome of :func:`analyze`. ``effect`` = mean(treatment) - mean(control) (CUPED-adjusted when a covariate
    is used); ``ci`` the (1 - alpha) interval dual to the test; ``improves``: significant in the better direction
    (higher, or lower for alternative "smaller"); ``improves_by_target``: significantly beyond ``target_effect``."""

    effect: float
    ci: tuple[float, float]
    p_value: float
    statistic: float
    df: float
    standard_error: float
    relative_lift: float | None
    verdict: str
    improves: bool
    improves_by_target: bool
    target_effect: float
    target_p_value: float
    target_alpha: float
    n_control: int
    n_treatment: int
    mean_control: float
    mean_treatment: float
    sd_control: float
    sd_treatment: float
    alpha: float
    alternative: str
    method: str
    ci_two_sided: tuple[float, float]
    assumptions: list[str] = field(default_factory=list)
    cuped_theta: float | None = None
    variance_reduction: float | None = None
    effect_unadjusted: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}


def _pooled_theta(y_c: np.ndarray, x_c: np.ndarray, y_t: np.ndarray, x_t: np.ndarray) -> tuple[float, dict]:
    """CUPED theta from within-arm centred cross products pooled over the arms, plus per-arm moments of X."""
    moments = {}
    sxy = sxx = 0.0
    for name, y, x in (("c", y_c, x_c), ("t", y_t, x_t)):
        mx = float(x.mean())
        xc = x - mx
        cxx = float(np.dot(xc, xc))
        cxy = float(np.dot(xc, y))  # sum (x - mx)(y - my) = sum (x - mx) y
        moments[name] = (mx, cxx / (x.size - 1), cxy / (x.size - 1))
        sxx += cxx
        sxy += cxy
    if sxx <= 0:
        raise InvalidParameter("the covariate is constant in both arms: CUPED cannot use it")
    return sxy / sxx, moments


def analyze(
    control: Sequence[float] | np.ndarray,
    treatment: Sequence[float] | np.ndarray,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    target_effect: float = 0.0,
    covariate_control: Sequence[float] | np.ndarray | None = None,
    covariate_treatment: Sequence[float] | np.ndarray | None = None,
    labels: tuple[str, str] = ("control", "treatment"),
) -> AnalysisResult:
    """Welch's t-test of mean(treatment) - mean(control), with CUPED when pre-period covariates are given.

    ``alternative``: "two-sided" (default; higher is better), "larger" (H1: treatment higher) or "smaller"
    (H1: treatment lower, lower is better). ``target_effect``: the effect the treatment should beat (see the
    module docstring for the one-sided target test). ``labels`` name the arms in the verdict. Formulas in the
    module docstring. One pass or two over each array: 10 million rows take well under a second.
    """
    alpha = check_alpha(alpha)
    alternative = check_alternative(alternative)
    target_effect = _check_target(target_effect)
    name_c, name_t = labels
    y_c = _as_array(control, name_c)
    y_t = _as_array(treatment, name_t)
    arm_c = _summarize(y_c, name_c)
    arm_t = _summarize(y_t, name_t)
    if arm_c.var == 0 and arm_t.var == 0:
        raise InvalidParameter("the metric is constant in both arms: there is no variation to test")

    mean_c, var_c, mean_t, var_t = arm_c.mean, arm_c.var, arm_t.mean, arm_t.var
    assumptions = [
        "units were randomized independently to the arms and do not affect each other (SUTVA)",
        "Welch's t-test: unequal variances allowed; the means are close to normal by the central limit theorem "
        f"(n = {arm_c.n:,} and {arm_t.n:,}); for heavy-tailed metrics (revenue) compare with bootstrap_ci",
    ]
    theta = reduction = unadjusted = None
    method = "welch"
    if (covariate_control is None) != (covariate_treatment is None):
        raise InvalidParameter("CUPED needs the covariate of both arms (covariate_control and covariate_treatment)")
    if covariate_control is not None:
        x_c = _as_array(covariate_control, f"covariate of {name_c}")
        x_t = _as_array(covariate_treatment, f"covariate of {name_t}")
        if x_c.size != y_c.size or x_t.size != y_t.size:
            raise InvalidParameter(
                f"covariates must match the outcomes in length: {name_c} {y_c.size:,} vs {x_c.size:,}, "
                f"{name_t} {y_t.size:,} vs {x_t.size:,}"
            )
        theta, moments = _pooled_theta(y_c, x_c, y_t, x_t)
        (mx_c, vx_c, cxy_c), (mx_t, vx_t, cxy_t) = moments["c"], moments["t"]
        grand = (mx_c * x_c.size + mx_t * x_t.size) / (x_c.size + x_t.size)
        unadjusted = mean_t - mean_c
        raw_se2 = var_c / arm_c.n + var_t / arm_t.n
        mean_c, mean_t = mean_c - theta * (mx_c - grand), mean_t - theta * (mx_t - grand)
        var_c = max(var_c - 2 * theta * cxy_c + theta**2 * vx_c, 0.0)
        var_t = max(var_t - 2 * theta * cxy_t + theta**2 * vx_t, 0.0)
        reduction = 1.0 - (var_c / arm_c.n + var_t / arm_t.n) / raw_se2
        method = "welch+cuped"
        assumptions.append(
            "CUPED: the covariate was measured before assignment (unaffected by the treatment); theta = "
            f"{theta:.4g} estimated on both arms pooled (its one degree of freedom is ignored)"
        )
        if var_c == 0 and var_t == 0:
            raise InvalidParameter("the CUPED-adjusted metric is constant: the covariate explains it exactly")

    effect, se, _, df, _ = (
        float(v) for v in welch_from_moments(mean_c, var_c, arm_c.n, mean_t, var_t, arm_t.n, alternative)
    )
    return decide(
        effect, se, df, alpha=alpha, alternative=alternative, target_effect=target_effect, labels=labels,
        arms=((arm_c.n, arm_c.mean, math.sqrt(arm_c.var)), (arm_t.n, arm_t.mean, math.sqrt(arm_t.var))),
        method=method, assumptions=assumptions, cuped_theta=theta, variance_reduction=reduction,
        effect_unadjusted=unadjusted,
    )  # fmt: skip


@dataclass(frozen=True)
class _Tests:
    """What every two-arm test derives from its effect and standard error (see :func:`decide`)."""

    statistic: float
    p_value: float
    ci: tuple[float, float]
    ci_two_sided: tuple[float, float]
    target_p_value: float
    target_alpha: float


def _tests(effect: float, se: float, df: float, alpha: float, alternative: str, target: float) -> _Tests:
    """The test of effect = 0, its dual interval and the one-sided target test, on Student's t with ``df`` degrees
    of freedom (``df`` inf: the normal distribution)."""
    statistic = effect / se
    if alternative == "two-sided":
        p_value = 2.0 * float(special.stdtr(df, -abs(statistic)))
    elif alternative == "larger":
        p_value = float(special.stdtr(df, -statistic))
    else:
        p_value = float(special.stdtr(df, statistic))
    two = -float(special.stdtrit(df, alpha / 2)) * se
    one = -float(special.stdtrit(df, alpha)) * se
    ci_two_sided = (effect - two, effect + two)
    ci = {"two-sided": ci_two_sided, "larger": (effect - one, math.inf), "smaller": (-math.inf, effect + one)}[
        alternative
    ]
    t_target = (effect - target) / se
    target_p = float(special.stdtr(df, t_target) if alternative == "smaller" else special.stdtr(df, -t_target))
    target_alpha = alpha / 2 if alternative == "two-sided" else alpha
    return _Tests(statistic, min(p_value, 1.0), ci, ci_two_sided, target_p, target_alpha)


def decide(
    effect: float, se: float, df: float, *, alpha: float, alternative: str, target_effect: float,
    labels: tuple[str, str], arms: tuple[tuple[int, float, float], tuple[int, float, float]], method: str,
    assumptions: list[str], **extra: Any,
) -> AnalysisResult:  # fmt: skip
    """The one decision tail of every two-arm test (Welch, CUPED, two proportions, ratio by the delta method).

    Given the estimate ``effect`` of treatment − control, its standard error ``se`` and the degrees of freedom
    ``df`` of its t distribution (inf: normal), returns the :class:`AnalysisResult`: p-value of effect = 0 for
    ``alternative``, the dual (1 − alpha) interval, the one-sided target test (module docstring), ``improves``
    (significant in the better direction: higher, or lower for "smaller") and the verdict. ``arms`` are
    (n, mean, sd) of control and treatment; ``relative_lift`` = effect / control mean (None when that mean is 0);
    ``extra`` fills the remaining fields (CUPED's theta, ...)."""
    tests = _tests(effect, se, df, alpha, alternative, target_effect)
    (n_c, mean_c, sd_c), (n_t, mean_t, sd_t) = arms
    significant = tests.p_value < alpha
    improves = significant and (effect < 0 if alternative == "smaller" else effect > 0)
    improves_by_target = tests.target_p_value < tests.target_alpha
    relative = effect / mean_c if mean_c != 0 else None
    verdict = _verdict(
        labels[0], labels[1], effect, tests.ci, tests.p_value, alpha, alternative, significant, improves,
        target_effect, tests.target_p_value, improves_by_target, relative, method,
    )  # fmt: skip
    return AnalysisResult(
        effect=effect, ci=tests.ci, p_value=tests.p_value, statistic=tests.statistic, df=df, standard_error=se,
        relative_lift=relative, verdict=verdict, improves=improves, improves_by_target=improves_by_target,
        target_effect=target_effect, target_p_value=tests.target_p_value, target_alpha=tests.target_alpha,
        n_control=n_c, n_treatment=n_t, mean_control=mean_c, mean_treatment=mean_t, sd_control=sd_c,
        sd_treatment=sd_t, alpha=alpha, alternative=alternative, method=method, ci_two_sided=tests.ci_two_sided,
        assumptions=assumptions, **extra,
    )  # fmt: skip


def _check_target(target_effect: Any) -> float:
    """``target_effect`` as a finite float (InvalidParameter otherwise)."""
    try:
        target_effect = float(target_effect)
    except (TypeError, ValueError):
        raise InvalidParameter(f"target_effect must be a number, got {target_effect!r}") from None
    if not math.isfinite(target_effect):
        raise InvalidParameter(f"target_effect must be finite, got {target_effect!r}")
    return target_effect


def _count(name: str, value: Any, at_most: int | None = None) -> int:
    """A whole number of units or conversions, at least 0 (and at most ``at_most``); InvalidParameter otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer | float | np.floating):
        raise InvalidParameter(f"{name} must be a whole number, got {value!r}")
    if not math.isfinite(float(value)) or float(value) != int(value) or value < 0:
        raise InvalidParameter(f"{name} must be a whole number >= 0, got {value!r}")
    if at_most is not None and value > at_most:
        raise InvalidParameter(f"{name} ({int(value):,}) cannot exceed the units of its arm ({at_most:,})")
    return int(value)


def analyze_proportions(
    conversions_control: int,
    n_control: int,
    conversions_treatment: int,
    n_treatment: int,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    target_effect: float = 0.0,
    labels: tuple[str, str] = ("control", "treatment"),
) -> AnalysisResult:
    """Difference of two conversion rates, ``p_t - p_c`` with ``p = conversions / n`` per arm: the unpooled
    (Wald) z-test, as statsmodels' ``test_proportions_2indep`` / ``confint_proportions_2indep`` with
    ``method="wald"``::

        effect = p_t - p_c            se = sqrt(p_c (1 - p_c) / n_c + p_t (1 - p_t) / n_t)
        z = effect / se               p: two-sided 2 Φ(-|z|), larger Φ(-z), smaller Φ(z)
        ci = effect ∓ z_{1-alpha/2} se (two-sided; one-sided: one infinite end, z_{1-alpha})

    The target test, ``improves`` and ``improves_by_target`` are :func:`analyze`'s, with this se and the normal
    distribution (``df`` is inf): one standard error serves the test, the interval and the target, so the target
    is shown exactly when the reported interval lies beyond it. Returns an :class:`AnalysisResult` whose means are
    the rates and whose sds are √(p (1 − p)); ``method`` "two-proportion z-test". Counts are whole numbers with
    ``0 <= conversions <= n`` and ``n >= 2``; a rate of 0 or 1 in both arms leaves nothing to test
    (InvalidParameter). Below 5 conversions or 5 non-conversions in an arm the normal approximation is rough:
    the assumptions say so."""
    alpha = check_alpha(alpha)
    alternative = check_alternative(alternative)
    target_effect = _check_target(target_effect)
    name_c, name_t = labels
    n_c, n_t = _count(f"n of {name_c}", n_control), _count(f"n of {name_t}", n_treatment)
    for name, n in ((name_c, n_c), (name_t, n_t)):
        if n < 2:
            raise InvalidParameter(f"{name} needs at least 2 observations, got {n}")
    x_c = _count(f"conversions of {name_c}", conversions_control, n_c)
    x_t = _count(f"conversions of {name_t}", conversions_treatment, n_t)
    p_c, p_t = x_c / n_c, x_t / n_t
    var_c, var_t = p_c * (1.0 - p_c), p_t * (1.0 - p_t)
    if var_c == 0 and var_t == 0:
        raise InvalidParameter(f"the conversion rate is {p_c:g} in {name_c} and {p_t:g} in {name_t}: with no "
                               "variation in either arm there is nothing to test")  # fmt: skip
    effect = p_t - p_c
    se = math.sqrt(var_c / n_c + var_t / n_t)
    assumptions = [
        "units were randomized independently to the arms and do not affect each other (SUTVA)",
        "each unit converts or not independently; the normal approximation of each arm's rate (unpooled standard "
        f"error) needs about 5 conversions and 5 non-conversions per arm: {x_c:,} / {n_c - x_c:,} in {name_c}, "
        f"{x_t:,} / {n_t - x_t:,} in {name_t}",
    ]
    if min(x_c, n_c - x_c, x_t, n_t - x_t) < 5:
        assumptions.append("fewer than 5 conversions or non-conversions in an arm: the p-value and the interval "
                           "are rough; read them with care or collect more units")  # fmt: skip
    return decide(
        effect, se, math.inf, alpha=alpha, alternative=alternative, target_effect=target_effect, labels=labels,
        arms=((n_c, p_c, math.sqrt(var_c)), (n_t, p_t, math.sqrt(var_t))), method="two-proportion z-test",
        assumptions=assumptions,
    )  # fmt: skip


def _verdict(
    name_c, name_t, effect, ci, p_value, alpha, alternative, significant, improves,
    target, target_p, improves_by_target, relative, method,
) -> str:  # fmt: skip
    level = f"{1 - alpha:.0%}" if round((1 - alpha) * 100) == (1 - alpha) * 100 else f"{1 - alpha:.1%}"
    lift = f", {relative:+.2%} relative to {name_c}" if relative is not None else ""
    figures = f"effect {effect:+.4g}{lift} ({level} CI {_interval(ci)}; p = {_fmt_p(p_value)}, {method})"
    better = "lowers" if alternative == "smaller" else "raises"
    if improves:
        text = f"{name_t} is better than {name_c}: it {better} the metric, {figures}."
    elif significant:
        text = f"{name_t} is worse than {name_c}: {figures}."
    else:
        text = (
            f"No significant difference between {name_t} and {name_c} at alpha = {alpha:g}: {figures}; "
            "the data cannot tell the arms apart."
        )
    if target != 0:
        beyond = "below" if alternative == "smaller" else "above"
        if improves_by_target:
            text += (
                f" The effect is significantly {beyond} the target {target:+.4g} (one-sided p = {_fmt_p(target_p)})."
            )
        else:
            text += (
                f" It is not shown to be {beyond} the target {target:+.4g} (one-sided p = {_fmt_p(target_p)}): "
                "an effect short of the target is consistent with the data."
            )
    return text


# --------------------------------------------------------------------------------------------------
# bootstrap


@dataclass(frozen=True)
class BootstrapResult:
    """Percentile bootstrap of the difference in means; iterating yields the interval
    (``low, high = bootstrap_ci(...)``). ``p_value`` is the two-sided percentile p-value
    ``2 min(P*(d <= 0), P*(d >= 0))`` (resolution 1 / n_boot)."""

    effect: float
    ci: tuple[float, float]
    standard_error: float
    p_value: float
    n_boot: int
    alpha: float
    seed: int | None
    n_control: int
    n_treatment: int
    verdict: str
    assumptions: list[str]
    method: str = "percentile bootstrap"

    def __iter__(self) -> Iterator[float]:
        return iter(self.ci)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}


def bootstrap_differences(
    control: np.ndarray, treatment: np.ndarray, n_boot: int, rng: np.random.Generator, chunk_values: int = 4_000_000
) -> np.ndarray:
    """``n_boot`` bootstrap replicates of mean(treatment*) - mean(control*), each arm resampled with replacement on
    its own (``scipy.stats.bootstrap``'s distribution, vectorized in batches of ~chunk_values draws)."""
    batch = max(1, chunk_values // (control.size + treatment.size))
    result = stats.bootstrap((treatment, control), _difference_in_means, n_resamples=n_boot, batch=batch,
                             vectorized=True, method="percentile", rng=rng)  # fmt: skip
    return np.asarray(result.bootstrap_distribution, dtype=float)


def _difference_in_means(treatment: np.ndarray, control: np.ndarray, axis: int = -1) -> np.ndarray:
    return treatment.mean(axis=axis) - control.mean(axis=axis)


def bootstrap_ci(
    control: Sequence[float] | np.ndarray,
    treatment: Sequence[float] | np.ndarray,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int | None = 0,
) -> BootstrapResult:
    """Percentile bootstrap (1 - alpha) interval of mean(treatment) - mean(control): resample each arm with
    replacement ``n_boot`` times and take the alpha/2 and 1 - alpha/2 quantiles of the replicated differences.
    Makes no normality assumption (useful for skewed revenue); the same seed gives the same interval."""
    alpha = check_alpha(alpha)
    if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer) or n_boot < 10:
        raise InvalidParameter(f"n_boot must be an integer >= 10, got {n_boot!r}")
    y_c = _as_array(control, "control")
    y_t = _as_array(treatment, "treatment")
    for name, y in (("control", y_c), ("treatment", y_t)):
        if y.size < 2:
            raise InvalidParameter(f"{name} needs at least 2 observations, got {y.size}")
    rng = np.random.default_rng(seed)
    diffs = bootstrap_differences(y_c, y_t, int(n_boot), rng)
    low, high = percentile_interval(diffs, 1 - alpha)
    effect = float(y_t.mean() - y_c.mean())
    p_value = min(1.0, 2 * min(float(np.mean(diffs <= 0)), float(np.mean(diffs >= 0))))
    p_value = max(p_value, 1.0 / n_boot)
    level = f"{1 - alpha:.0%}"
    if low > 0 or high < 0:
        verdict = (
            f"The bootstrap {level} interval {_interval((low, high))} excludes 0: the arms differ "
            f"(effect {effect:+.4g})."
        )
    else:
        verdict = f"The bootstrap {level} interval {_interval((low, high))} contains 0: no clear difference."
    return BootstrapResult(
        effect=effect,
        ci=(low, high),
        standard_error=float(diffs.std(ddof=1)),
        p_value=p_value,
        n_boot=int(n_boot),
        alpha=alpha,
        seed=seed,
        n_control=y_c.size,
        n_treatment=y_t.size,
        verdict=verdict,
        assumptions=[
            "units are independent; each arm is resampled with replacement on its own",
            "percentile interval: first-order accurate, can under-cover for very small samples or extreme skew",
        ],
    )


# --------------------------------------------------------------------------------------------------
# sample-ratio mismatch


@dataclass(frozen=True)
class SRMResult:
    """Chi-square goodness-of-fit test of the arm counts against the configured split."""

    statistic: float
    p_value: float
    df: int
    flagged: bool
    threshold: float
    counts: list[int]
    expected_counts: list[float]
    observed_ratios: list[float]
    expected_ratios: list[float]
    arms: list[str]
    message: str
    assumptions: list[str]

    @property
    def verdict(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: _plain(getattr(self, f.name)) for f in fields(self)}
        out["verdict"] = self.message
        return out


def srm_test(
    counts: Sequence[int] | Mapping[str, int],
    expected_ratios: Sequence[float] | Mapping[str, float] | None = None,
    threshold: float = 0.001,
) -> SRMResult:
    """Sample-ratio-mismatch check. ``counts``: units per arm (a sequence, or a mapping arm -> count);
    ``expected_ratios``: the configured split (same order or keys; default equal; normalized); flagged when the
    chi-square p-value is below ``threshold`` (default 0.001, strict because the check runs on every experiment).
    Example: 50/50 configured, 10,400 / 9,600 served -> chi2 = 32, p = 1.5e-8, flagged."""
    if isinstance(counts, Mapping):
        arms = [str(k) for k in counts]
        observed = np.asarray(list(counts.values()), dtype=np.float64)
        if isinstance(expected_ratios, Mapping):
            missing = [a for a in counts if a not in expected_ratios]
            if missing:
                raise InvalidParameter(f"expected_ratios has no share for arm(s) {', '.join(map(str, missing))}")
            expected_ratios = [expected_ratios[a] for a in counts]
    else:
        observed = np.asarray(counts, dtype=np.float64).reshape(-1)
        arms = [f"arm {i}" for i in range(observed.size)]
    if observed.size < 2:
        raise InvalidParameter("srm_test needs the counts of at least two arms")
    if not np.isfinite(observed).all() or (observed < 0).any() or (observed != np.round(observed)).any():
        raise InvalidParameter(f"counts must be non-negative whole numbers, got {observed.tolist()}")
    total = observed.sum()
    if total <= 0:
        raise InvalidParameter("counts sum to 0: no units to check")
    if expected_ratios is None:
        shares = np.full(observed.size, 1.0 / observed.size)
    else:
        shares = np.asarray(expected_ratios, dtype=np.float64).reshape(-1)
        if shares.size != observed.size:
            raise InvalidParameter(f"{observed.size} counts but {shares.size} expected ratios")
        if not np.isfinite(shares).all() or (shares <= 0).any():
            raise InvalidParameter(f"expected ratios must be positive, got {shares.tolist()}")
        shares = shares / shares.sum()
    threshold = float(threshold)
    if not 0 < threshold < 1:
        raise InvalidParameter(f"threshold must be in (0, 1), got {threshold:g}")
    expected = total * shares
    statistic = float(np.sum((observed - expected) ** 2 / expected))
    df = observed.size - 1
    p_value = float(special.chdtrc(df, statistic))
    flagged = p_value < threshold
    seen = " / ".join(f"{v:.1%}" for v in observed / total)
    wanted = " / ".join(f"{v:.1%}" for v in shares)
    figures = (
        f"observed {seen} vs configured {wanted} of {int(total):,} units (chi2 = {statistic:.3g}, p = {p_value:.2g})"
    )
    if flagged:
        message = (
            f"Sample ratio mismatch: {figures} < {threshold:g}. The split is broken; find the cause (assignment, "
            "logging, bots, redirects) before trusting any effect."
        )
    else:
        message = f"No sample ratio mismatch: {figures} >= {threshold:g}."
    assumptions = ["units are counted once each and assigned independently with the configured shares"]
    if expected.min() < 5:
        assumptions.append("some expected counts are below 5: the chi-square approximation is rough")
    return SRMResult(
        statistic=statistic,
        p_value=p_value,
        df=df,
        flagged=flagged,
        threshold=threshold,
        counts=[int(v) for v in observed],
        expected_counts=[float(v) for v in expected],
        observed_ratios=[float(v) for v in observed / total],
        expected_ratios=[float(v) for v in shares],
        arms=arms,
        message=message,
        assumptions=assumptions,
    )
