"""Design of a two-arm experiment: sample size, power, minimum detectable effect, coherence check.

Notation: control arm ``n1 = n`` units, treatment arm ``n2 = ratio * n`` units, outcome standard
deviation ``sd`` (assumed equal in both arms at design time), true difference in means ``effect``
(treatment minus control), standardized effect ``d = effect / sd``, effective size
``m = n1 * n2 / (n1 + n2)`` and non-centrality ``delta = d * sqrt(m)``.

Power of the two-sample t-test (``method="t"``, the exact power of Student's pooled t-test, as
statsmodels' ``TTestIndPower``), with ``df = n1 + n2 - 2`` and ``T ~ noncentral t(df, delta)``::

    two-sided:  P(T > t_{1-alpha/2, df}) + P(T < t_{alpha/2, df})
    larger:     P(T > t_{1-alpha, df})
    smaller:    P(T < t_{alpha, df})

Normal approximation (``method="normal"``, as statsmodels' ``NormalIndPower``), ``Z ~ N(delta, 1)``::

    two-sided:  Phi(delta - z_{1-alpha/2}) + Phi(-delta - z_{1-alpha/2})
    larger:     Phi(delta - z_{1-alpha})            smaller: Phi(-delta - z_{1-alpha})

whose one-sided inverse is the textbook ``n1 = (z_{1-alpha} + z_{power})^2 (1 + 1/ratio) / d^2``.

The required sample size is the smallest integer ``n1`` (with ``n2 = ceil(ratio * n1)``) whose power
reaches the target: a ceiling, never a rounding. Worked example of the issue (sd 15 $, effect 0.7 $,
alpha 0.05, power 0.8): the exact t-test needs ``n1 = 7,209.10`` (statsmodels ``TTestIndPower``),
hence **7,210 per arm** two-sided, and ``5,678.54`` hence **5,679 per arm** one-sided. The figures
7,208 and 5,678 quoted in the issue are the normal approximation (``NormalIndPower``: 7,208.14 and
5,677.86) rounded; 7,208 per arm does *not* reach 80% power (ceiling of the normal approximation:
7,209 two-sided, 5,678 one-sided, available with ``method="normal"``).

Binary metrics use Cohen's arcsine effect size ``h = 2 asin(sqrt(p_t)) - 2 asin(sqrt(p_c))`` with the
normal method and ``sd = 1`` (statsmodels' ``proportion_effectsize`` + ``NormalIndPower``); the coherence of a
binary design (``validate_design_binary``) is checked with the same sizes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import optimize, special

from nextbest.errors import NextbestError

ALTERNATIVES = ("two-sided", "larger", "smaller")
METHODS = ("t", "normal")
_MAX_N = 10**10


class InvalidParameter(NextbestError, ValueError):
    """A design or analysis parameter outside its valid range (both a NextbestError and a ValueError)."""


# --------------------------------------------------------------------------------------------------
# validation helpers (shared by the other modules of the package)


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise InvalidParameter(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidParameter(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise InvalidParameter(f"{name} must be finite, got {value!r}")
    return number


def check_alpha(alpha: Any) -> float:
    alpha = _number("alpha", alpha)
    if not 0.0 < alpha <= 0.5:
        raise InvalidParameter(f"alpha must be in (0, 0.5], got {alpha:g}")
    return alpha


def check_alternative(alternative: Any) -> str:
    if alternative not in ALTERNATIVES:
        raise InvalidParameter(f"alternative must be one of {', '.join(ALTERNATIVES)}; got {alternative!r}")
    return alternative


def _check_power(power: Any, alpha: float) -> float:
    power = _number("power", power)
    if not 0.0 < power < 1.0:
        raise InvalidParameter(f"power must be in (0, 1), got {power:g}")
    if power <= alpha:
        raise InvalidParameter(
            f"power ({power:g}) must exceed alpha ({alpha:g}): any test rejects that often by chance"
        )
    return power


def _check_sd(sd: Any) -> float:
    sd = _number("sd", sd)
    if sd <= 0:
        raise InvalidParameter(f"sd must be > 0, got {sd:g}")
    return sd


def _check_ratio(ratio: Any) -> float:
    ratio = _number("ratio", ratio)
    if ratio <= 0:
        raise InvalidParameter(f"ratio (n_treatment / n_control) must be > 0, got {ratio:g}")
    return ratio


def _check_method(method: Any) -> str:
    if method not in METHODS:
        raise InvalidParameter(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    return method


def _check_effect(effect: Any, alternative: str, name: str = "effect") -> float:
    effect = _number(name, effect)
    if effect == 0:
        raise InvalidParameter(f"{name} must be non-zero: a design needs the difference it should detect")
    if alternative == "larger" and effect < 0:
        raise InvalidParameter(
            f"{name} {effect:g} is negative but alternative is 'larger': give a positive {name} or use 'smaller'"
        )
    if alternative == "smaller" and effect > 0:
        raise InvalidParameter(
            f"{name} {effect:g} is positive but alternative is 'smaller': give a negative {name} or use 'larger'"
        )
    return effect


def _check_n(name: str, n: Any) -> float:
    n = _number(name, n)
    if n < 2:
        raise InvalidParameter(f"{name} must be at least 2 per arm, got {n:g}")
    return n


# --------------------------------------------------------------------------------------------------
# power of the test for standardized effect d and arm sizes n1, n2 (floats allowed)


def _nct_cdf(df: float, delta: float, x: float) -> float:
    """P(T <= x) for T ~ noncentral t(df, delta); scipy returns NaN where the answer underflows, mapped to 0/1."""
    value = float(special.nctdtr(df, delta, x))
    if math.isnan(value):
        return 0.0 if delta > x else 1.0
    return value


def _power_arms(d: float, n1: float, n2: float, alpha: float, alternative: str, method: str) -> float:
    """Power for standardized effect ``d`` with ``n1`` control and ``n2`` treatment units (see module doc)."""
    delta = d * math.sqrt(n1 * n2 / (n1 + n2))
    tail = alpha / 2.0 if alternative == "two-sided" else alpha
    result = 0.0
    if method == "t":
        df = n1 + n2 - 2.0
        if alternative in ("two-sided", "larger"):
            result += 1.0 - _nct_cdf(df, delta, -float(special.stdtrit(df, tail)))
        if alternative in ("two-sided", "smaller"):
            result += _nct_cdf(df, delta, float(special.stdtrit(df, tail)))
    else:
        crit = -float(special.ndtri(tail))
        if alternative in ("two-sided", "larger"):
            result += float(special.ndtr(delta - crit))
        if alternative in ("two-sided", "smaller"):
            result += float(special.ndtr(-crit - delta))
    return result


def _treatment_n(n1: int, ratio: float) -> int:
    return max(2, math.ceil(ratio * n1 - 1e-9))


@dataclass(frozen=True)
class _Solved:
    exact: float
    n_control: int
    n_treatment: int
    achieved_power: float


def _solve_n(d: float, alpha: float, target: float, alternative: str, ratio: float, method: str) -> _Solved:
    """Smallest integer control size n1 (treatment ceil(ratio n1)) with power >= target, and the real root."""

    def gap(n: float) -> float:
        return _power_arms(d, n, n * ratio, alpha, alternative, method) - target

    low = 2.0
    if gap(low) >= 0:
        exact = low
    else:
        tail = alpha / 2.0 if alternative == "two-sided" else alpha
        guess = (special.ndtri(tail) - special.ndtri(target)) ** 2 * (1.0 + 1.0 / ratio) / d**2
        too_many = InvalidParameter(
            f"effect / sd = {d:.3g} is too small: more than {_MAX_N:,} units per arm would be needed"
        )
        if guess > _MAX_N:
            raise too_many
        high = max(4.0, 1.5 * guess)
        while gap(high) < 0:
            low, high = high, high * 2.0
            if high > 4 * _MAX_N:
                raise too_many
        exact = float(optimize.brentq(gap, low, high, xtol=1e-9, rtol=1e-12))

    def reaches(n1: int) -> bool:
        return _power_arms(d, n1, _treatment_n(n1, ratio), alpha, alternative, method) >= target

    n1 = max(2, math.ceil(exact - 1e-9))
    for _ in range(100):  # the root is within a unit or two of the integer answer
        if n1 > 2 and reaches(n1 - 1):
            n1 -= 1
        elif not reaches(n1):
            n1 += 1
        else:
            break
    n2 = _treatment_n(n1, ratio)
    return _Solved(exact, n1, n2, _power_arms(d, n1, n2, alpha, alternative, method))


def _solve_d(n1: float, alpha: float, target: float, alternative: str, ratio: float, method: str) -> float:
    """Smallest positive standardized effect whose power at (n1, ratio * n1) reaches the target (larger side)."""
    side = "larger" if alternative == "smaller" else alternative  # symmetric: solve for |d|
    n2 = n1 * ratio

    def gap(d: float) -> float:
        return _power_arms(d, n1, n2, alpha, side, method) - target

    high = 1.0
    while gap(high) < 0:
        high *= 2.0
        if high > 1e6:
            raise InvalidParameter("no finite effect reaches this power at this sample size")
    return float(optimize.brentq(gap, 0.0, high, xtol=1e-12, rtol=1e-12))


# --------------------------------------------------------------------------------------------------
# public API


class SampleSize(int):
    """The required control-arm size n1 as an ``int`` (so ``sample_size(...) == 7210`` works) that also carries
    the split: ``n_control``, ``n_treatment`` (= ceil(ratio * n_control)), ``total``, ``exact`` (the real-valued
    root, as statsmodels' ``solve_power`` returns it), ``achieved_power`` at the integer sizes, ``ratio``,
    ``method``. With ``ratio=1`` the int is the per-arm n."""

    n_control: int
    n_treatment: int
    total: int
    exact: float
    achieved_power: float
    ratio: float
    method: str

    def __new__(
        cls,
        n_control: int,
        n_treatment: int | None = None,
        exact: float | None = None,
        achieved_power: float = math.nan,
        ratio: float = 1.0,
        method: str = "t",
    ) -> SampleSize:
        obj = super().__new__(cls, n_control)
        obj.n_control = int(n_control)
        obj.n_treatment = int(n_control if n_treatment is None else n_treatment)
        obj.total = obj.n_control + obj.n_treatment
        obj.exact = float(n_control if exact is None else exact)
        obj.achieved_power = achieved_power
        obj.ratio = ratio
        obj.method = method
        return obj

    @classmethod
    def _from(cls, solved: _Solved, ratio: float, method: str) -> SampleSize:
        return cls(solved.n_control, solved.n_treatment, solved.exact, solved.achieved_power, ratio, method)

    def to_dict(self) -> dict[str, Any]:
        return {
            "per_arm": int(self),
            "n_control": self.n_control,
            "n_treatment": self.n_treatment,
            "total": self.total,
            "exact": self.exact,
            "achieved_power": self.achieved_power,
            "ratio": self.ratio,
            "method": self.method,
        }


def sample_size(
    effect: float,
    sd: float,
    alpha: float = 0.05,
    power: float = 0.8,
    alternative: str = "two-sided",
    ratio: float = 1.0,
    method: str = "t",
) -> SampleSize:
    """Units needed in the control arm (treatment: ``ceil(ratio * n)``) to detect ``effect`` with ``power``.

    ``effect`` is the difference in means (treatment - control) in outcome units; ``sd`` the outcome standard
    deviation; ``ratio = n_treatment / n_control``; ``method`` "t" (exact two-sample t-test power, default)
    or "normal" (z approximation). Returns a :class:`SampleSize`, an ``int`` equal to the smallest control
    size that reaches the power, carrying the control/treatment split. For a one-sided design the effect
    must point the way of the alternative (positive for "larger", negative for "smaller").

    Example (the issue's): ``sample_size(0.7, 15)`` -> 7,210 per arm (exact root 7,209.10, statsmodels
    ``TTestIndPower``); ``alternative="larger"`` -> 5,679 (root 5,678.54). The issue's 7,208 / 5,678 are the
    normal approximation 7,208.14 / 5,677.86 rounded; ``method="normal"`` gives the ceilings 7,209 / 5,678.
    """
    alpha = check_alpha(alpha)
    power = _check_power(power, alpha)
    alternative = check_alternative(alternative)
    effect = _check_effect(effect, alternative)
    sd = _check_sd(sd)
    ratio = _check_ratio(ratio)
    method = _check_method(method)
    solved = _solve_n(abs(effect) / sd, alpha, power, "larger" if alternative != "two-sided" else alternative, ratio,
                      method)  # fmt: skip
    return SampleSize._from(solved, ratio, method)


def power(
    n: float,
    effect: float,
    sd: float,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    ratio: float = 1.0,
    method: str = "t",
) -> float:
    """Probability that the test rejects H0 when the true difference is ``effect``, with ``n`` control units and
    ``ratio * n`` treatment units (real-valued, as statsmodels' ``power``). A one-sided test whose alternative
    points away from ``effect`` has power below alpha. Formulas in the module docstring."""
    alpha = check_alpha(alpha)
    alternative = check_alternative(alternative)
    n = _check_n("n", n)
    effect = _number("effect", effect)
    sd = _check_sd(sd)
    ratio = _check_ratio(ratio)
    method = _check_method(method)
    return _power_arms(effect / sd, n, n * ratio, alpha, alternative, method)


def minimum_detectable_effect(
    n: float,
    sd: float,
    alpha: float = 0.05,
    power: float = 0.8,
    alternative: str = "two-sided",
    ratio: float = 1.0,
    method: str = "t",
) -> float:
    """Smallest true difference in means (outcome units) detected with ``power`` given ``n`` control units and
    ``ratio * n`` treatment units: the root in ``effect`` of ``power(n, effect, sd, ...) = power``. Positive,
    except for ``alternative="smaller"`` where it is negative. Normal one-sided closed form:
    ``MDE = (z_{1-alpha} + z_{power}) * sd * sqrt(1/n + 1/(ratio n))``."""
    alpha = check_alpha(alpha)
    power = _check_power(power, alpha)
    alternative = check_alternative(alternative)
    n = _check_n("n", n)
    sd = _check_sd(sd)
    ratio = _check_ratio(ratio)
    method = _check_method(method)
    d = _solve_d(n, alpha, power, alternative, ratio, method)
    return -d * sd if alternative == "smaller" else d * sd


def _binary_effect(baseline: Any, lift: Any, relative: bool, alternative: str) -> tuple[float, float, float]:
    baseline = _number("baseline", baseline)
    if not 0.0 < baseline < 1.0:
        raise InvalidParameter(f"baseline rate must be in (0, 1), got {baseline:g}")
    lift = _number("lift", lift)
    treated = baseline * (1.0 + lift) if relative else baseline + lift
    if not 0.0 < treated < 1.0:
        raise InvalidParameter(
            f"baseline {baseline:g} with lift {lift:g} ({'relative' if relative else 'absolute'}) gives a treatment "
            f"rate of {treated:g}, outside (0, 1)"
        )
    h = 2.0 * math.asin(math.sqrt(treated)) - 2.0 * math.asin(math.sqrt(baseline))
    return baseline, treated, h


def sample_size_binary(
    baseline: float,
    lift: float,
    alpha: float = 0.05,
    power: float = 0.8,
    alternative: str = "two-sided",
    ratio: float = 1.0,
    relative: bool = True,
) -> SampleSize:
    """Sample size for a conversion rate: control rate ``baseline``, treatment rate ``baseline * (1 + lift)``
    (``relative=True``, e.g. lift 0.1 = +10 %) or ``baseline + lift`` (``relative=False``). Uses Cohen's
    ``h = 2 asin(sqrt(p_t)) - 2 asin(sqrt(p_c))`` and the normal power with sd 1, as statsmodels'
    ``NormalIndPower().solve_power(proportion_effectsize(p_t, p_c), ...)``."""
    alpha = check_alpha(alpha)
    power = _check_power(power, alpha)
    alternative = check_alternative(alternative)
    ratio = _check_ratio(ratio)
    _, _, h = _binary_effect(baseline, lift, relative, alternative)
    _check_effect(h, alternative, name="lift")
    solved = _solve_n(abs(h), alpha, power, "larger" if alternative != "two-sided" else alternative, ratio, "normal")
    return SampleSize._from(solved, ratio, "normal")


def power_binary(
    n: float,
    baseline: float,
    lift: float,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    ratio: float = 1.0,
    relative: bool = True,
) -> float:
    """Power for a conversion rate with ``n`` control and ``ratio * n`` treatment units (see
    :func:`sample_size_binary` for ``lift`` and the arcsine effect size)."""
    alpha = check_alpha(alpha)
    alternative = check_alternative(alternative)
    n = _check_n("n", n)
    ratio = _check_ratio(ratio)
    _, _, h = _binary_effect(baseline, lift, relative, alternative)
    return _power_arms(h, n, n * ratio, alpha, alternative, "normal")


# --------------------------------------------------------------------------------------------------
# coherence of a whole design


@dataclass(frozen=True)
class DesignCheck:
    """Whether a design's sample size reaches its power for its effect, and what to change if not.

    ``required_sample_size`` is the smallest control-arm size reaching ``power`` (treatment:
    ``required_n_treatment``); ``achieved_power`` the power of the given ``sample_size``;
    ``minimum_detectable_effect`` the smallest effect the given sample size detects with the stated power.
    """

    coherent: bool
    required_sample_size: int
    achieved_power: float
    message: str
    alpha: float
    power: float
    effect: float
    sd: float
    sample_size: int
    alternative: str
    ratio: float
    method: str
    n_treatment: int
    required_n_treatment: int
    minimum_detectable_effect: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def detectable_lift_binary(
    n: float, baseline: float, alpha: float = 0.05, power: float = 0.8, alternative: str = "two-sided",
    ratio: float = 1.0,
) -> float:
    """Smallest relative lift of a conversion rate ``baseline`` detected with ``power`` given ``n`` control and
    ``ratio * n`` treatment units: the arcsine effect size h of :func:`sample_size_binary` solved for the sizes,
    then p_t = sin²(asin(√p_c) + h / 2) and lift = p_t / p_c − 1 (an increase; ``inf`` when no rate up to 1 is
    detectable)."""
    baseline = _number("baseline", baseline)
    if not 0 < baseline < 1:
        raise InvalidParameter(f"baseline must be a rate in (0, 1), got {baseline:g}")
    treated = _detectable_rate(n, baseline, alpha, power, alternative, ratio, decrease=False)
    return treated / baseline - 1


def _detectable_rate(n: Any, baseline: float, alpha: Any, power: Any, alternative: Any, ratio: Any,
                     decrease: bool) -> float:  # fmt: skip
    """The treatment rate nearest ``baseline`` (above it, or below it when ``decrease``) detected with ``power``
    given ``n`` control and ``ratio * n`` treatment units: the arcsine effect size h solved for the sizes (normal
    power), then p_t = sin²(asin(√p_c) ± h / 2); ``inf`` (``-inf`` when ``decrease``) when no rate up to 1 (down to
    0) is detectable."""
    alternative = check_alternative(alternative)
    one_sided = "larger" if alternative != "two-sided" else alternative
    h = _solve_d(_check_n("n", n), check_alpha(alpha), _check_power(power, check_alpha(alpha)), one_sided,
                 _check_ratio(ratio), "normal")  # fmt: skip
    angle = math.asin(math.sqrt(baseline)) + (-h / 2 if decrease else h / 2)
    if angle >= math.pi / 2:
        return math.inf
    if angle <= 0:
        return -math.inf
    return math.sin(angle) ** 2


def _ceil_sig(value: float, digits: int = 3) -> float:
    """Round |value| up to ``digits`` significant digits (keeps the sign), so the stated bound is really met."""
    if value == 0:
        return 0.0
    scale = 10 ** (digits - 1 - math.floor(math.log10(abs(value))))
    return math.copysign(math.ceil(abs(value) * scale - 1e-9) / scale, value)


def _g(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def _check_sample_size(sample_size: Any) -> int:
    """A planned per-arm size as an int: a whole number >= 2 (InvalidParameter otherwise)."""
    size = _number("sample_size", sample_size)
    if size != int(size):
        raise InvalidParameter(f"sample_size must be a whole number of units per arm, got {sample_size!r}")
    size = int(size)
    if size < 2:
        raise InvalidParameter(f"sample_size must be at least 2 per arm, got {size}")
    return size


def _coherence_message(size: int, n_treatment: int, solved: _Solved, achieved: float, power: float, ratio: float,
                       effect: str, setting: str, bound: str, detectable: str | None) -> str:  # fmt: skip
    """The one line of a DesignCheck: enough, or the three ways out (the size, the effect, the power; the effect
    left out when ``detectable`` is None: no effect is detectable at this size). ``detectable`` is computed only
    for an incoherent design: a coherent one's may not be (an overflowing effect)."""
    arm = "per arm" if ratio == 1.0 else f"in control ({n_treatment:,} in treatment)"
    need_arm = "per arm" if ratio == 1.0 else f"in control ({solved.n_treatment:,} in treatment)"
    shown = math.floor(achieved * 100) / 100
    if size >= solved.n_control:
        return (
            f"coherent: sample_size {size:,} {arm} gives power {shown:.2f} >= {power:g} "
            f"for {effect} ({setting}); {solved.n_control:,} {need_arm} would suffice"
        )
    return (
        f"sample_size {size:,} {arm} gives power {shown:.2f} for {effect} "
        f"({setting}), below the stated power {power:g}; raise it to {solved.n_control:,} {need_arm}, "
        + (f"or accept an effect of {bound} {detectable}, " if detectable is not None else "")
        + f"or a power of {shown:.2f}"
    )


def validate_design(
    alpha: float,
    power: float,
    effect: float,
    sd: float,
    sample_size: int,
    alternative: str = "two-sided",
    ratio: float = 1.0,
    method: str = "t",
) -> DesignCheck:
    """Check that ``sample_size`` (control arm; treatment ``ceil(ratio * sample_size)``) reaches ``power`` for
    ``effect``. Invalid ranges (alpha in (0, 0.5], power in (alpha, 1), sd > 0, effect != 0 and in the direction
    of a one-sided alternative, sample_size an integer >= 2, alternative in two-sided/larger/smaller, ratio > 0)
    raise :class:`InvalidParameter` (a NextbestError). An incoherent design gets a message naming the three
    ways out: raise the sample size to the required n, or accept the detectable effect, or accept the power
    actually achieved (rounded down so that it is really reached)."""
    alpha = check_alpha(alpha)
    power = _check_power(power, alpha)
    alternative = check_alternative(alternative)
    effect = _check_effect(effect, alternative)
    sd = _check_sd(sd)
    ratio = _check_ratio(ratio)
    method = _check_method(method)
    size = _check_sample_size(sample_size)
    side = "larger" if alternative != "two-sided" else alternative
    d = abs(effect) / sd
    solved = _solve_n(d, alpha, power, side, ratio, method)
    n_treatment = _treatment_n(size, ratio)
    achieved = _power_arms(d, size, n_treatment, alpha, side, method)
    mde = _solve_d(size, alpha, power, alternative, ratio, method) * sd
    mde = -mde if alternative == "smaller" else mde
    coherent = size >= solved.n_control
    message = _coherence_message(size, n_treatment, solved, achieved, power, ratio, f"effect {_g(effect)}",
                                 f"alpha {alpha:g}, {alternative}, sd {sd:g}", "at least" if effect > 0 else "at most",
                                 None if coherent else _g(_ceil_sig(mde)))  # fmt: skip
    return DesignCheck(
        coherent=coherent,
        required_sample_size=solved.n_control,
        achieved_power=achieved,
        message=message,
        alpha=alpha,
        power=power,
        effect=effect,
        sd=sd,
        sample_size=size,
        alternative=alternative,
        ratio=ratio,
        method=method,
        n_treatment=n_treatment,
        required_n_treatment=solved.n_treatment,
        minimum_detectable_effect=mde,
    )


@dataclass(frozen=True)
class BinaryDesignCheck(DesignCheck):
    """A DesignCheck of a conversion rate: ``effect`` is the difference of rates (treatment − control) from
    ``baseline`` to ``treatment_rate``; ``sd`` the standard deviation of one conversion at the baseline,
    √(baseline (1 − baseline)); ``minimum_detectable_effect`` the smallest difference of rates the given sample
    size detects, in the direction of ``effect`` (±inf when no rate inside (0, 1) is detectable)."""

    baseline: float
    treatment_rate: float


def validate_design_binary(
    alpha: float,
    power: float,
    baseline: float,
    effect: float,
    sample_size: int,
    alternative: str = "two-sided",
    ratio: float = 1.0,
) -> BinaryDesignCheck:
    """:func:`validate_design` for a conversion rate: does ``sample_size`` (control arm; treatment
    ``ceil(ratio * sample_size)``) reach ``power`` for a change of the rate from ``baseline`` to ``baseline +
    effect``? The sizes are those of :func:`sample_size_binary` with ``relative=False`` (Cohen's arcsine effect
    size, normal power). Invalid parameters (a baseline or a treatment rate outside (0, 1), a zero effect or one
    against a one-sided alternative, the ranges of :func:`validate_design`) raise :class:`InvalidParameter`; an
    incoherent design gets a message naming the three ways out, as :func:`validate_design`'s."""
    alpha = check_alpha(alpha)
    power = _check_power(power, alpha)
    alternative = check_alternative(alternative)
    ratio = _check_ratio(ratio)
    effect = _check_effect(effect, alternative)
    baseline = _number("baseline", baseline)
    if 0.0 < baseline < 1.0 and not 0.0 < baseline + effect < 1.0:
        raise InvalidParameter(f"baseline {baseline:g} + effect {effect:+g} gives a treatment rate of "
                               f"{baseline + effect:g}, outside (0, 1)")  # fmt: skip
    baseline, treated, h = _binary_effect(baseline, effect, False, alternative)
    size = _check_sample_size(sample_size)
    side = "larger" if alternative != "two-sided" else alternative
    solved = _solve_n(abs(h), alpha, power, side, ratio, "normal")
    n_treatment = _treatment_n(size, ratio)
    achieved = _power_arms(abs(h), size, n_treatment, alpha, side, "normal")
    mde = _detectable_rate(size, baseline, alpha, power, alternative, ratio, decrease=effect < 0) - baseline
    coherent = size >= solved.n_control
    detectable = None if coherent or math.isinf(mde) else f"{_ceil_sig(mde):+.3g}"
    message = _coherence_message(size, n_treatment, solved, achieved, power, ratio,
                                 f"effect {effect:+.4g}", f"conversion rate {baseline:.4g} to {treated:.4g}, "
                                 f"alpha {alpha:g}, {alternative}",
                                 "at least" if effect > 0 else "at most", detectable)  # fmt: skip
    return BinaryDesignCheck(
        coherent=coherent,
        required_sample_size=solved.n_control,
        achieved_power=achieved,
        message=message,
        alpha=alpha,
        power=power,
        effect=effect,
        sd=math.sqrt(baseline * (1.0 - baseline)),
        sample_size=size,
        alternative=alternative,
        ratio=ratio,
        method="normal",
        n_treatment=n_treatment,
        required_n_treatment=solved.n_treatment,
        minimum_detectable_effect=mde,
        baseline=baseline,
        treatment_rate=treated,
    )


def _as_array(values: Any, name: str) -> np.ndarray:
    """Finite float64 1-d array (no copy when already float64), or InvalidParameter naming ``name``."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        array = array.reshape(-1)
    if not np.isfinite(array).all():
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise InvalidParameter(f"{name} has {bad:,} missing or infinite values; clean or drop them first")
    return array
