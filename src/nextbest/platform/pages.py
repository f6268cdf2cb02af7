"""Server-rendered web pages of the experiment platform (Jinja2 templates, inline CSS, a little inline JS).

Routes of :data:`pages_router` (``app.include_router(pages_router)`` in ``create_app``):

- ``GET /`` — every experiment: design, progress per arm, status and verdict.
- ``GET /experiments/new`` — the create form (metric continuous, binary or ratio; Bayesian analysis; CUPED for a
  continuous metric; secondary metrics and guardrails as JSON lists with their correction); its inline script asks
  ``GET /api/design`` (``/api/design/binary`` for a conversion) for the required sample size as the parameters
  change and shows why an incoherent design would be refused.
- ``POST /experiments/new`` — creates the experiment through the Store and shows its token once (never again);
  an invalid or incoherent design re-renders the form with the explanation (422).
- ``GET /experiments/{id}`` — configuration, progress, the recommendation with its summary, the verdict (with the
  CUPED variance reduction when used), the Bayesian block when asked for, the table of secondary metrics and
  guardrails, and two server-side plots (PNG, matplotlib Agg): the cumulative effect with its interval over the
  outcomes in arrival order (the difference of ratios for a ratio metric), and revenue per arm.
- ``GET /api/design`` — JSON: required sample size per arm, achieved power, coherence and the message of
  :func:`nextbest.experiments.validate_design` (no token needed: it records nothing). Parameters off the schema
  get 422 {detail: [{loc, msg, type}]}; every well-formed design gets 200, an incoherent one with
  ``coherent: false`` and the reason (and null figures when its parameters contradict each other).
- ``GET /api/design/binary`` — the same for a conversion rate (``baseline``, ``effect`` a difference of rates):
  :func:`nextbest.experiments.validate_design_binary`, the sizes of ``sample_size_binary``.

Every user-supplied text reaches the page through Jinja2 autoescaping; every response carries a Content Security
Policy whose scripts must bear the response's nonce. Figures come from :func:`cumulative_effect`,
:func:`cumulative_effect_png` and :func:`revenue_distribution_png`, which the tests call as well.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import json
import math
import secrets
import threading
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from pydantic import AfterValidator, BaseModel, ValidationError
from scipy import stats
from starlette.exceptions import HTTPException as StarletteHTTPException

from nextbest.errors import NextbestError
from nextbest.experiments import InvalidParameter, validate_design, validate_design_binary
from nextbest.experiments import sample_size as required_size
from nextbest.experiments.analysis import welch_from_moments
from nextbest.experiments.ratio import ratio_arm
from nextbest.platform.schemas import (
    ALPHA_MAX,
    ALPHA_MIN,
    ARMS,
    DESIGNS,
    METRICS,
    POWER_MIN,
    SAMPLE_SIZE_MAX,
    SAMPLE_SIZE_MIN,
    Alternative,
    ExperimentOut,
    ExperimentSummary,
    Result,
    ValidationErrorOut,
    non_zero,
)
from nextbest.platform.store import DesignRejected, Store, UnknownExperiment, finite_or_none
from nextbest.stats import z_value

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
#: Points of the cumulative-effect curve.
PLOT_CHECKPOINTS = 50
#: At most this many outcomes per arm (the first ones, in arrival order) feed the plots of one page.
MAX_PLOT_PER_ARM = 1_000_000
#: Fixed colour of each arm, the same in the bars and in both figures.
ARM_COLORS: dict[str, str] = {"original": "#4C78A8", "new": "#E8871E"}
FORM_FIELDS = ("owner", "name", "metric", "alpha", "power", "effect", "sd", "baseline", "alternative", "sample_size",
               "bayesian", "cuped", "correction", "secondary", "guardrails")  # fmt: skip
#: Form fields that are numbers in the API (the form sends text; see :func:`_form_design`).
FORM_NUMBERS = ("alpha", "power", "effect", "sd", "baseline", "sample_size")
#: Form fields that are JSON lists in the API (text areas), and check boxes (sent as "on" when ticked).
FORM_LISTS = ("secondary", "guardrails")
FORM_FLAGS = ("bayesian", "cuped")
DEFAULT_FORM: dict[str, str] = {
    "owner": "",
    "name": "",
    "metric": "continuous",
    "alpha": "0.05",
    "power": "0.8",
    "effect": "0.7",
    "sd": "15",
    "baseline": "0.1",
    "alternative": "two-sided",
    "sample_size": "",
    "bayesian": "",
    "cuped": "",
    "correction": "holm",
    "secondary": "",
    "guardrails": "",
}
METRIC_LABELS: dict[str, str] = {
    "continuous": "continuous: revenue per unit",
    "binary": "binary: a conversion (0 or 1)",
    "ratio": "ratio: revenue per session (or another denominator)",
}
CORRECTION_LABELS: dict[str, str] = {"holm": "Holm (family-wise error)", "bh": "Benjamini-Hochberg (false discovery)",
                                     "none": "none"}  # fmt: skip
RECOMMENDATION_CSS: dict[str, str] = {"ship": "good", "do not ship": "bad", "no decision": "neutral"}
GUARDRAIL_CSS: dict[str, str] = {"fails": "bad", "passes": "good", "inconclusive": "partial"}
#: What the verdict's test is called on the page, by the analysis' method.
METHOD_LABELS: dict[str, str] = {
    "welch": "Welch's t-test", "welch+cuped": "Welch's t-test with CUPED",
    "two-proportion z-test": "Two-proportion z-test", "delta method (ratio of means)": "Delta method (ratio of means)",
}  # fmt: skip
ALTERNATIVE_LABELS: dict[str, str] = {
    "two-sided": "two-sided (new ≠ original)",
    "larger": "one-sided: new > original",
    "smaller": "one-sided: new < original (lower is better)",
}
_MAX_DESIGN_N = 10**9
_ID_MAX = 2**31 - 1

pages_router = APIRouter()
#: matplotlib's font caches are shared between threads: figures are drawn one at a time.
_DRAWING = threading.Lock()


# ------------------------------------------------------------------------------------------------ formatting


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def fmt_count(value: Any) -> str:
    """An integer with thousands separators ('7,210'); None as 'n/a'."""
    return "n/a" if _missing(value) else f"{value:,.0f}"


def fmt_num(value: Any, digits: int = 4) -> str:
    """A number with ``digits`` significant digits ('0.7', '1.234'); None or non-finite as 'n/a' or '±∞'."""
    if value is None:
        return "n/a"
    if isinstance(value, float) and math.isinf(value):
        return "+∞" if value > 0 else "−∞"
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    return f"{value:,.{digits}g}" if abs(value) < 1e6 else f"{value:,.0f}"


def fmt_signed(value: Any, digits: int = 4) -> str:
    """A signed number ('+0.7', '−1.25'), for effects."""
    if _missing(value):
        return fmt_num(value)
    text = fmt_num(abs(value), digits)
    return ("−" if value < 0 else "+") + text


def fmt_p(value: Any) -> str:
    """A p-value: '0.0123', '< 0.0001'; None as 'n/a'."""
    if _missing(value):
        return "n/a"
    return "< 0.0001" if value < 1e-4 else f"{value:.4f}"


def fmt_interval(bounds: Any) -> str:
    """A confidence interval '[+0.12, +1.8]' (infinite bounds of one-sided intervals shown as ±∞)."""
    low, high = bounds
    low = -math.inf if low is None and high is not None else low
    high = math.inf if high is None and low is not None else high
    return f"[{fmt_signed(low)}, {fmt_signed(high)}]"


def fmt_chance(value: Any) -> str:
    """A probability as a percentage to 0.1% ('97.3%'), '> 99.9%' / '< 0.1%' at the ends; None as 'n/a'."""
    if _missing(value):
        return "n/a"
    if value > 0.999:
        return "> 99.9%"
    if value < 0.001:
        return "< 0.1%"
    return f"{100 * value:.1f}%"


def fmt_level(alpha: float) -> str:
    """The confidence level of ``alpha`` as a percentage ('95%', '99.5%')."""
    return f"{100 * (1 - alpha):.4g}%"


def fmt_time(moment: datetime) -> str:
    """A UTC timestamp to the minute ('2024-05-01 12:34 UTC')."""
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(count=fmt_count, num=fmt_num, signed=fmt_signed, p=fmt_p, interval=fmt_interval,
                       level=fmt_level, time=fmt_time, chance=fmt_chance)  # fmt: skip
    env.globals.update(arm_colors=ARM_COLORS, alternatives=ALTERNATIVE_LABELS, metric_labels=METRIC_LABELS,
                       corrections=CORRECTION_LABELS, recommendation_css=RECOMMENDATION_CSS,
                       guardrail_css=GUARDRAIL_CSS, method_labels=METHOD_LABELS)  # fmt: skip
    return env


TEMPLATES = _env()


def render(
    request: Request, name: str, status_code: int = 200, *, no_store: bool = False, **context: Any
) -> HTMLResponse:
    """Render template ``name`` with a fresh script nonce, under a strict Content Security Policy."""
    nonce = secrets.token_urlsafe(16)
    html = TEMPLATES.get_template(name).render(request=request, nonce=nonce, **context)
    headers = {
        "Content-Security-Policy": (
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; img-src 'self' data:; "
            "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
        ),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    if no_store:
        headers["Cache-Control"] = "no-store"
    return HTMLResponse(html, status_code=status_code, headers=headers)


def _store(request: Request) -> Store:
    return request.app.state.store


# ------------------------------------------------------------------------------------------------ design check


class DesignOut(BaseModel):
    """Live design check: ``sample_size`` is the required size per arm; ``achieved_power`` the power of the given
    ``given_sample_size`` (the required one when none was given); ``message`` explains an incoherent design.

    When the parameters contradict each other (an effect against a one-sided alternative) or no sample size can
    reach the power (an effect too small for ``sd``), ``coherent`` is false, ``message`` says why and the
    figures that cannot be computed are null."""

    sample_size: int | None
    total: int | None
    given_sample_size: int | None
    achieved_power: float | None
    coherent: bool
    message: str
    minimum_detectable_effect: float | None


def design_check(
    effect: Any, sd: Any, alpha: Any = 0.05, power: Any = 0.8, alternative: Any = "two-sided", sample_size: Any = None
) -> DesignOut:
    """Required sample size per arm and coherence of a design (as the platform checks it on creation).

    ``sample_size`` None or empty: the required size is used. Invalid parameters raise InvalidParameter (a
    NextbestError) with a one-line message naming the parameter."""

    for name, value in (("effect", effect), ("sd", sd), ("alpha", alpha), ("power", power)):
        if value is None or (isinstance(value, str) and not value.strip()):
            raise InvalidParameter(f"{name} is required")
    given: Any = sample_size
    if given is None or (isinstance(given, str) and not given.strip()):
        given = int(required_size(effect, sd, alpha, power, alternative))
    else:
        try:
            number = float(given)
        except (TypeError, ValueError):
            raise InvalidParameter(f"sample_size must be a whole number of units per arm, got {given!r}") from None
        if math.isfinite(number) and number > _MAX_DESIGN_N:
            raise InvalidParameter(f"sample_size must be at most {_MAX_DESIGN_N:,} per arm")
        given = number
    check = validate_design(alpha, power, effect, sd, given, alternative)
    return DesignOut(
        sample_size=check.required_sample_size,
        total=check.required_sample_size + check.required_n_treatment,
        given_sample_size=check.sample_size,
        achieved_power=check.achieved_power,
        coherent=check.coherent,
        message=check.message,
        minimum_detectable_effect=check.minimum_detectable_effect,
    )


QueryEffect = Annotated[float, Query(allow_inf_nan=False, json_schema_extra={"not": {"const": 0}},
                                     description="target effect on revenue per unit (non-zero)"),
                        AfterValidator(non_zero)]  # fmt: skip
QuerySd = Annotated[float, Query(gt=0, allow_inf_nan=False, description="standard deviation of revenue per unit")]
QueryAlpha = Annotated[float, Query(ge=ALPHA_MIN, le=ALPHA_MAX, description="significance level")]
QueryPower = Annotated[float, Query(gt=POWER_MIN, lt=1, description="power for the target effect")]
QuerySize = Annotated[int | None, Query(ge=SAMPLE_SIZE_MIN, le=SAMPLE_SIZE_MAX,
                                        description="units per arm (default: the size required)")]  # fmt: skip


def _design_route(path: str, model: type[DesignOut]):
    """A live design check: GET, no token, 422 when a parameter is missing or off the schema."""
    return pages_router.get(path, response_model=model, tags=["design"], responses={
        422: {"model": ValidationErrorOut, "description": "a parameter is missing or off the schema"}})  # fmt: skip


@_design_route("/api/design", DesignOut)
def design_endpoint(
    effect: QueryEffect,
    sd: QuerySd,
    alpha: QueryAlpha = 0.05,
    power: QueryPower = 0.8,
    alternative: Annotated[Alternative, Query()] = "two-sided",
    sample_size: QuerySize = None,
) -> DesignOut:
    """Required sample size per arm, achieved power and coherence of a design; records nothing, needs no token.

    The parameters the schema admits always get an answer (200): ``coherent`` false with the reason when the
    design would be refused on creation."""
    try:
        return design_check(effect, sd, alpha, power, alternative, sample_size)
    except (NextbestError, ValueError, OverflowError) as error:
        return DesignOut(sample_size=None, total=None, given_sample_size=sample_size, achieved_power=None,
                         coherent=False, message=str(error), minimum_detectable_effect=None)  # fmt: skip


class BinaryDesignOut(DesignOut):
    """Live design check of a conversion rate: :class:`DesignOut`'s fields (``minimum_detectable_effect`` a
    difference of rates, in the direction of ``effect``; null when no rate inside (0, 1) is detectable at the given
    size) plus the ``baseline`` and the ``treatment_rate`` it is compared with (null when outside (0, 1))."""

    baseline: float
    treatment_rate: float | None


def design_check_binary(
    baseline: Any, effect: Any, alpha: Any = 0.05, power: Any = 0.8, alternative: Any = "two-sided",
    sample_size: Any = None,
) -> BinaryDesignOut:
    """Required sample size per arm and coherence of a binary design (as the platform checks it on creation):
    :func:`nextbest.experiments.validate_design_binary` (the sizes of ``sample_size_binary``), at the required size
    when ``sample_size`` is None. Invalid parameters raise InvalidParameter (a NextbestError) with a one-line
    message."""
    check = validate_design_binary(alpha, power, baseline, effect, 2 if sample_size is None else sample_size,
                                   alternative)  # fmt: skip
    if sample_size is None:
        check = validate_design_binary(alpha, power, baseline, effect, check.required_sample_size, alternative)
    return BinaryDesignOut(
        sample_size=check.required_sample_size,
        total=check.required_sample_size + check.required_n_treatment,
        given_sample_size=check.sample_size,
        achieved_power=check.achieved_power,
        coherent=check.coherent,
        message=check.message,
        minimum_detectable_effect=finite_or_none(check.minimum_detectable_effect),
        baseline=check.baseline,
        treatment_rate=check.treatment_rate,
    )


QueryRate = Annotated[float, Query(gt=0, lt=1, allow_inf_nan=False,
                                   description="conversion rate of the original arm, in (0, 1)")]  # fmt: skip
QueryRateEffect = Annotated[float, Query(gt=-1, lt=1, allow_inf_nan=False, json_schema_extra={"not": {"const": 0}},
                                         description="target difference of conversion rates, new − original "
                                                     "(non-zero)"),
                            AfterValidator(non_zero)]  # fmt: skip


@_design_route("/api/design/binary", BinaryDesignOut)
def binary_design_endpoint(
    baseline: QueryRate,
    effect: QueryRateEffect,
    alpha: QueryAlpha = 0.05,
    power: QueryPower = 0.8,
    alternative: Annotated[Alternative, Query()] = "two-sided",
    sample_size: QuerySize = None,
) -> BinaryDesignOut:
    """Required sample size per arm, achieved power and coherence of a design on a conversion rate (two
    proportions, arcsine effect size, normal power); records nothing, needs no token.

    The parameters the schema admits always get an answer (200): ``coherent`` false with the reason when the design
    would be refused on creation (an effect against a one-sided alternative, a treatment rate ``baseline +
    effect`` outside (0, 1), a sample that does not reach the power)."""
    try:
        return design_check_binary(baseline, effect, alpha, power, alternative, sample_size)
    except (NextbestError, ValueError, OverflowError) as error:
        treated = baseline + effect
        return BinaryDesignOut(sample_size=None, total=None, given_sample_size=sample_size, achieved_power=None,
                               coherent=False, message=str(error), minimum_detectable_effect=None, baseline=baseline,
                               treatment_rate=treated if 0 < treated < 1 else None)  # fmt: skip


def _live_state(form: dict[str, str]) -> dict[str, Any]:
    """The design panel as first rendered (the inline script keeps it up to date): the binary check for a binary
    ``metric``, the continuous one (a ratio's too) otherwise."""
    try:
        if form.get("metric") == "binary":
            size = form["sample_size"].strip()
            check = design_check_binary(float(form["baseline"]), float(form["effect"]), float(form["alpha"]),
                                        float(form["power"]), form["alternative"], float(size) if size else None)
        else:
            check = design_check(form["effect"], form["sd"], form["alpha"], form["power"], form["alternative"],
                                 form["sample_size"])  # fmt: skip
    except (NextbestError, ValueError, OverflowError) as error:
        return {"check": None, "error": str(error)}
    return {"check": check, "error": None}


# ------------------------------------------------------------------------------------------------ figures


def cumulative_effect(
    original: Any,
    new: Any,
    checkpoints: int = PLOT_CHECKPOINTS,
    level: float = 0.95,
    sample_size: int | None = None,
) -> dict[str, Any]:
    """Difference in means (new − original) and its Welch ``level`` interval as outcomes arrive.

    ``original`` and ``new`` are each arm's revenues in arrival order. Point ``i`` of the curve compares the first
    ``i`` outcomes of each arm — the pairing the platform's verdict uses at ``i = sample_size`` — at up to
    ``checkpoints`` evenly spaced ``i`` from 2 to the smaller arm's size, plus ``sample_size`` itself when reached
    (so the curve passes through the verdict's effect and interval). Returns plain lists ``n`` (outcomes per arm),
    ``effect``, ``low``, ``high``, and ``level``, ``sample_size``, ``per_arm`` (the smaller arm's size). These are
    pointwise intervals: looking at them repeatedly is not a valid sequential test."""


    control = np.asarray(original, dtype=np.float64).reshape(-1)
    treatment = np.asarray(new, dtype=np.float64).reshape(-1)
    per_arm = min(control.size, treatment.size)
    curve = _empty_curve(level, sample_size, per_arm)
    if per_arm < 2:
        return curve
    n = _checkpoints(per_arm, checkpoints, sample_size)
    moments = []
    for values in (control[:per_arm], treatment[:per_arm]):
        centred = values - values.mean()  # sums of centred values keep the variances accurate
        s1 = np.cumsum(centred)[n - 1]
        s2 = np.cumsum(centred**2)[n - 1]
        mean = s1 / n
        var = np.maximum(s2 - n * mean**2, 0.0) / (n - 1)
        moments.append((values.mean() + mean, var))
    (mean_c, var_c), (mean_t, var_t) = moments
    effect, se, _, df, _ = welch_from_moments(mean_c, var_c, n, mean_t, var_t, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        half = stats.t.ppf(0.5 + level / 2.0, df) * se
    keep = np.isfinite(half) & (se > 0)
    curve.update(
        n=n[keep].tolist(),
        effect=effect[keep].tolist(),
        low=(effect - half)[keep].tolist(),
        high=(effect + half)[keep].tolist(),
    )
    return curve


def _empty_curve(level: float, sample_size: int | None, per_arm: int) -> dict[str, Any]:
    return {"n": [], "effect": [], "low": [], "high": [], "level": level, "sample_size": sample_size,
            "per_arm": per_arm}  # fmt: skip


def _checkpoints(per_arm: int, checkpoints: int, sample_size: int | None) -> np.ndarray:
    """Up to ``checkpoints`` evenly spaced sizes from 2 to ``per_arm``, plus ``sample_size`` when reached."""
    points = np.linspace(2, per_arm, num=max(2, checkpoints)).round().astype(np.int64)
    if sample_size is not None and 2 <= sample_size <= per_arm:
        points = np.append(points, sample_size)
    return np.unique(points)


def cumulative_ratio_effect(
    original: tuple[Any, Any],
    new: tuple[Any, Any],
    checkpoints: int = PLOT_CHECKPOINTS,
    level: float = 0.95,
    sample_size: int | None = None,
) -> dict[str, Any]:
    """Difference of ratios of means (new − original) and its delta-method ``level`` interval as outcomes arrive:
    :func:`cumulative_effect` for a ratio metric. ``original`` and ``new`` are each arm's (numerators,
    denominators) in arrival order; a checkpoint where an arm's mean denominator is not positive is left out. At
    ``sample_size`` the curve passes through the verdict's effect and interval."""
    (num_c, den_c), (num_t, den_t) = ([np.asarray(a, dtype=np.float64).reshape(-1) for a in arm]
                                      for arm in (original, new))  # fmt: skip
    per_arm = min(num_c.size, num_t.size)
    curve = _empty_curve(level, sample_size, per_arm)
    if per_arm < 2:
        return curve
    z = z_value(level)
    for size in _checkpoints(per_arm, checkpoints, sample_size).tolist():
        try:
            arm_c, arm_t = ratio_arm(num_c[:size], den_c[:size]), ratio_arm(num_t[:size], den_t[:size])
        except NextbestError:
            continue
        se = math.sqrt(arm_c.variance + arm_t.variance)
        if se > 0 and math.isfinite(se):
            effect = arm_t.ratio - arm_c.ratio
            for key, value in (("n", size), ("effect", effect), ("low", effect - z * se), ("high", effect + z * se)):
                curve[key].append(value)
    return curve


def _png(figure: Any) -> bytes:

    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    return buffer.getvalue()


def _drawn(draw: Any) -> Any:
    """Run a figure function under the drawing lock (the page routes run in a thread pool)."""

    @functools.wraps(draw)
    def locked(*args: Any, **kwargs: Any) -> bytes:
        with _DRAWING:
            return draw(*args, **kwargs)

    return locked


def _axes(width: float = 8.4, height: float = 3.4) -> tuple[Any, Any]:

    figure = Figure(figsize=(width, height), dpi=130)
    figure.subplots_adjust(left=0.075, right=0.76, bottom=0.14, top=0.965)  # the legend goes on the right
    axes = figure.add_subplot()
    axes.spines[["top", "right"]].set_visible(False)
    axes.grid(True, color="#E6E8EC", linewidth=0.8)
    axes.set_axisbelow(True)
    axes.tick_params(colors="#4A5160", labelsize=9)
    for spine in axes.spines.values():
        spine.set_color("#9AA1AD")
    return figure, axes


@_drawn
def cumulative_effect_png(curve: dict[str, Any], target_effect: float,
                          ylabel: str = "difference in mean revenue") -> bytes:  # fmt: skip
    """PNG of :func:`cumulative_effect`'s curve with its band, 0 and the target effect as reference lines."""
    figure, axes = _axes()
    n = np.asarray(curve["n"], dtype=float)
    effect = np.asarray(curve["effect"], dtype=float)
    low, high = np.asarray(curve["low"], dtype=float), np.asarray(curve["high"], dtype=float)
    level = f"{curve['level']:.0%}" if round(curve["level"] * 100) == curve["level"] * 100 else f"{curve['level']:.1%}"
    axes.fill_between(n, low, high, color=ARM_COLORS["new"], alpha=0.18, linewidth=0, label=f"{level} interval")
    axes.plot(n, effect, color=ARM_COLORS["new"], linewidth=2.0, marker="o", markersize=2.5,
              label="effect (new − original)")  # fmt: skip
    axes.axhline(0.0, color="#303540", linewidth=1.0, label="no effect (0)")
    axes.axhline(target_effect, color="#2E8B57", linewidth=1.4, linestyle="--",
                 label=f"target effect ({fmt_signed(target_effect)})")  # fmt: skip
    designed = curve.get("sample_size")
    if designed and designed <= curve["per_arm"]:
        axes.axvline(designed, color="#7A7F8A", linewidth=1.0, linestyle=":", label=f"designed n ({designed:,})")
    # Keep the scale on the settled part of the curve: the first, very wide intervals may leave the frame.
    settled = slice(len(n) // 5, None)
    values = np.concatenate([low[settled], high[settled], [0.0, target_effect]])
    span = float(values.max() - values.min()) or 1.0
    axes.set_ylim(values.min() - 0.08 * span, values.max() + 0.08 * span)
    axes.set_xlim(0, float(n.max()) * 1.02)
    axes.set_xlabel("outcomes per arm, in arrival order", fontsize=9, color="#4A5160")
    axes.set_ylabel(ylabel, fontsize=9, color="#4A5160")
    axes.xaxis.set_major_formatter(lambda value, _: f"{value:,.0f}")
    axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    return _png(figure)


@_drawn
def revenue_distribution_png(revenues: dict[str, Any], xlabel: str = "revenue per unit (dashed: arm mean)") -> bytes:
    """PNG of the revenue histograms of both arms on shared bins, with each arm's mean as a dashed line.

    The x range covers the central 99% of all revenues when outliers would squash the histograms."""
    figure, axes = _axes()
    arrays = {arm: np.asarray(revenues.get(arm, ()), dtype=float) for arm in ARMS}
    pooled = np.concatenate(list(arrays.values()))
    low, high = float(pooled.min()), float(pooled.max())
    if pooled.size >= 200:
        q_low, q_high = (float(q) for q in np.quantile(pooled, [0.005, 0.995]))
        if (high - low) > 3 * (q_high - q_low):
            low, high = q_low, q_high
    if high <= low:
        low, high = low - 0.5, high + 0.5
    bins = np.histogram_bin_edges(pooled, bins=int(np.clip(np.sqrt(pooled.size), 10, 60)), range=(low, high))
    for arm, values in arrays.items():
        if values.size == 0:
            continue
        color = ARM_COLORS[arm]
        axes.hist(values, bins=bins, histtype="stepfilled", color=color, alpha=0.16, linewidth=0)
        axes.hist(values, bins=bins, histtype="step", color=color, linewidth=1.4,
                  label=f"{arm}: n = {values.size:,}, mean {fmt_num(float(values.mean()))}")  # fmt: skip
        axes.axvline(float(values.mean()), color=color, linewidth=1.4, linestyle="--")
    axes.set_xlim(low, high)
    axes.set_xlabel(xlabel, fontsize=9, color="#4A5160")
    axes.set_ylabel("units", fontsize=9, color="#4A5160")
    axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    return _png(figure)


def data_uri(png: bytes) -> str:
    """A PNG as a ``data:`` URI for an ``<img src>``."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


# ------------------------------------------------------------------------------------------------ verdicts


def verdict_summary(experiment: ExperimentSummary, result: Result | None) -> dict[str, str]:
    """Short label, CSS class and one plain-language sentence for the state of an experiment."""
    if result is None:
        return {"label": "running", "css": "running",
                "sentence": "Collecting outcomes: the verdict appears when both arms reach the designed sample."}
    if result.effect is None:
        return {"label": "no verdict", "css": "neutral", "sentence": result.verdict}
    target = fmt_signed(experiment.effect)
    effect = fmt_signed(result.effect)
    unit = {"binary": "in conversion rate", "ratio": "in the ratio"}.get(experiment.metric, "per unit")
    if result.improves_by_target:
        return {"label": "beats the target", "css": "good",
                "sentence": f"The new system improves on the original by at least the target effect of {target} "
                            f"{unit} (measured effect {effect})."}  # fmt: skip
    if result.improves:
        return {"label": "improves, target not shown", "css": "partial",
                "sentence": f"The new system improves on the original (measured effect {effect}), but the data do "
                            f"not show that it reaches the target effect of {target}."}  # fmt: skip
    if result.p_value is not None and result.p_value < experiment.alpha:
        return {"label": "worse", "css": "bad",
                "sentence": f"The new system does worse than the original (measured effect {effect})."}
    return {"label": "no significant difference", "css": "neutral",
            "sentence": f"No significant difference between the new system and the original at α = "
                        f"{experiment.alpha:g} (measured effect {effect}): the target effect of {target} is not "
                        f"demonstrated."}  # fmt: skip


# ------------------------------------------------------------------------------------------------ routes


@pages_router.get("/", response_class=HTMLResponse, include_in_schema=False)
def experiments_page(request: Request) -> HTMLResponse:
    """Every experiment, newest first, with progress per arm and its status or verdict."""
    store = _store(request)
    rows = []
    for summary in store.list_experiments():
        experiment = store.get_experiment(summary.id)
        rows.append({"experiment": experiment, "verdict": verdict_summary(experiment, experiment.result)})
    return render(request, "index.html", rows=rows)


@pages_router.get("/experiments/new", response_class=HTMLResponse, include_in_schema=False)
def new_experiment_page(request: Request) -> HTMLResponse:
    """The create form, pre-filled with the issue's example design (sd 15, effect 0.7, α 0.05, power 0.8)."""
    form = dict(DEFAULT_FORM)
    state = _live_state(form)
    if state["check"] is not None:
        form["sample_size"] = str(state["check"].sample_size)
    return render(request, "new.html", form=form, errors=[], follow=True, **state)


class FormError(ValueError):
    """A form field that cannot become the API's design (e.g. a text area that is not a JSON list)."""


def _form_values(raw: Any) -> dict[str, str]:
    """The form's text fields (files or absent fields become empty strings; an absent metric is "continuous")."""
    values = {}
    for name in FORM_FIELDS:
        value = raw.get(name) if raw is not None else None
        values[name] = value if isinstance(value, str) else ""
    values["metric"] = values["metric"] or "continuous"
    return values


def _form_number(text: str) -> int | float | str:
    """A form field's text as the JSON number it spells ('64' -> 64, '0.05' -> 0.05); other text unchanged, for
    the model to refuse with its message."""
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            continue
    return text


def _form_list(form: dict[str, str], key: str) -> list[Any] | None:
    """The JSON list of text area ``key`` (None when empty); FormError when it is not JSON."""
    text = form[key].strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError as error:
        raise FormError(f"{key}: not valid JSON ({error}); write a list such as "
                        '[{"name": "bounced", "kind": "binary"}]') from None  # fmt: skip


def _form_design(form: dict[str, str]) -> dict[str, Any]:
    """The filled-in fields of the form as the API's JSON design: numbers where the API wants numbers, ticked boxes
    as true, text areas as JSON lists; ``sd`` only for a metric that has one and ``baseline`` only for a binary
    metric (the form keeps both fields). FormError when a text area is not JSON."""
    metric = form["metric"]
    skipped = {"baseline" if metric != "binary" else "sd", *FORM_FLAGS, *FORM_LISTS}
    filled = {key: value for key, value in form.items() if value != "" and key not in skipped}
    design: dict[str, Any] = {key: _form_number(value) if key in FORM_NUMBERS else value
                              for key, value in filled.items()}  # fmt: skip
    design.update({flag: True for flag in FORM_FLAGS if form[flag]})
    design.update({key: listed for key in FORM_LISTS if (listed := _form_list(form, key)) is not None})
    return design


def _form_spec(form: dict[str, str]) -> tuple[Any, list[str]]:
    """The design model of the form (the one of its metric) and no errors, or None and the messages."""
    model = DESIGNS.get(form["metric"])
    if model is None:
        return None, [f"metric: must be one of {', '.join(METRICS)}"]
    try:
        return model.model_validate(_form_design(form)), []
    except FormError as error:
        return None, [str(error)]
    except ValidationError as error:
        return None, _validation_messages(error)


def _validation_messages(error: ValidationError) -> list[str]:
    messages = []
    for item in error.errors()[:10]:
        field = ".".join(str(part) for part in item.get("loc", ())) or "form"
        messages.append(f"{field.replace('_', ' ')}: {item.get('msg', 'invalid')}")
    return messages


@pages_router.post("/experiments/new", response_class=HTMLResponse, include_in_schema=False)
async def create_experiment_page(request: Request) -> HTMLResponse:
    """Create the experiment from the form; show its id and token once, or the form again with the reason (422)."""
    try:
        raw = await request.form()
    except StarletteHTTPException:
        raw = None
    form = _form_values(raw)
    errors: list[str] = []
    if raw is None:
        errors.append("the form could not be read; send it again from this page")
    else:
        spec, errors = _form_spec(form)
        if spec is not None:
            try:
                created = await run_in_threadpool(_store(request).create_experiment, spec)
            except DesignRejected as error:
                errors.append(f"design refused: {error}")
            else:
                base = str(request.base_url).rstrip("/")
                return render(request, "created.html", 201, no_store=True, created=created, spec=spec, base=base,
                              example=outcome_example(spec))  # fmt: skip
    follow = form["sample_size"] == ""
    return render(request, "new.html", 422, form=form, errors=errors, follow=follow, **_live_state(form))


def _parse_id(raw: str) -> int | None:
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10:
        return None
    value = int(raw)
    return value if 1 <= value <= _ID_MAX else None


def _not_found(request: Request, raw_id: str) -> HTMLResponse:
    return render(request, "not_found.html", 404, requested=raw_id)


def experiment_figures(store: Store, experiment: ExperimentOut) -> dict[str, Any]:
    """The figures of an experiment page as data URIs (None when no outcome has arrived yet): the cumulative effect
    (of ratios for a ratio metric; unadjusted for CUPED) and, for revenue, its distribution per arm (the numerator's
    for a ratio); for a conversion, ``rates`` holds each arm's conversions and units instead of a histogram of
    zeros and ones."""
    arms = store.arm_data(experiment.id, limit_per_arm=MAX_PLOT_PER_ARM)
    revenues = {arm: data.revenue for arm, data in arms.items()}
    plotted = {arm: int(values.size) for arm, values in revenues.items()}
    binary, ratio = experiment.metric == "binary", experiment.metric == "ratio"
    figures: dict[str, Any] = {"cumulative": None, "distribution": None, "plotted": plotted, "curve_points": 0,
                               "truncated": any(size >= MAX_PLOT_PER_ARM for size in plotted.values()),
                               "rates": None}  # fmt: skip
    if not any(plotted.values()):
        return figures
    options = {"level": 1.0 - experiment.alpha, "sample_size": experiment.sample_size}
    if ratio:
        curve = cumulative_ratio_effect(*((data.revenue, data.denominator) for data in arms.values()), **options)
    else:
        curve = cumulative_effect(revenues["original"], revenues["new"], **options)
    if curve["n"]:
        ylabel = {"binary": "difference in conversion rate", "ratio": "difference of ratios"}.get(
            experiment.metric, "difference in mean revenue")  # fmt: skip
        figures.update(cumulative=data_uri(cumulative_effect_png(curve, experiment.effect, ylabel)),
                       curve_points=len(curve["n"]), per_arm=curve["per_arm"])  # fmt: skip
    if binary:
        figures["rates"] = {arm: {"conversions": int(values.sum()), "units": int(values.size)}
                            for arm, values in revenues.items()}  # fmt: skip
    else:
        xlabel = "revenue per unit: the ratio's numerator" if ratio else "revenue per unit"
        figures["distribution"] = data_uri(revenue_distribution_png(revenues, f"{xlabel} (dashed: arm mean)"))
    return figures


def outcome_example(design: Any) -> dict[str, Any]:
    """Where an experiment's outcomes go (``path``: "outcomes" or "conversions") and two example rows (``rows``,
    JSON) carrying exactly what ``design`` (a design or an ExperimentSummary) requires: revenue or converted, the
    covariate with CUPED, the denominator of a ratio, and ``values`` for its secondary metrics and guardrails."""
    binary = design.metric == "binary"
    specs = [spec.model_dump() for spec in (*design.secondary, *design.guardrails)]
    rows = []
    for uuid, arm, decision, spent in (("customer-1", "new", 1, 57.3), ("customer-2", "original", 0, 49.9)):
        row: dict[str, Any] = {"uuid": uuid, "arm": arm, "decision": decision}
        row.update({"converted": decision} if binary else {"revenue": spent})
        row.update({"covariate": 41.0} if getattr(design, "cuped", False) else {})
        row.update({"denominator": 3} if design.metric == "ratio" else {})
        values = {spec["name"]: 1 if spec["kind"] == "binary" else 2.5 for spec in specs}
        values.update({spec["denominator"]: 3 for spec in specs if spec["denominator"] not in (None, *values)})
        row.update({"values": values} if values else {})
        rows.append(row)
    text = html.escape(json.dumps(rows), quote=False)  # quotes kept: shown in a shell command; names are identifiers
    return {"path": "conversions" if binary else "outcomes", "rows": Markup(text)}


@pages_router.get("/experiments/{experiment_id}", response_class=HTMLResponse, include_in_schema=False)
def experiment_page(request: Request, experiment_id: str) -> HTMLResponse:
    """Configuration, progress per arm, the verdict when complete, and the two figures."""
    number = _parse_id(experiment_id)
    if number is None:
        return _not_found(request, experiment_id)
    store = _store(request)
    try:
        experiment = store.get_experiment(number)
    except UnknownExperiment:
        return _not_found(request, experiment_id)
    figures = experiment_figures(store, experiment)
    if experiment.metric == "binary":
        try:
            design = {"check": design_check_binary(experiment.baseline, experiment.effect, experiment.alpha,
                                                   experiment.power, experiment.alternative, experiment.sample_size)}
        except (NextbestError, ValueError, OverflowError):
            design = {"check": None}
    else:
        design = _live_state({"effect": str(experiment.effect), "sd": str(experiment.sd),
                              "alpha": str(experiment.alpha), "power": str(experiment.power),
                              "alternative": experiment.alternative,
                              "sample_size": str(experiment.sample_size)})  # fmt: skip
    base = str(request.base_url).rstrip("/")
    return render(request, "experiment.html", experiment=experiment, result=experiment.result,
                  verdict=verdict_summary(experiment, experiment.result), figures=figures,
                  check=design["check"], base=base, example=outcome_example(experiment))  # fmt: skip
