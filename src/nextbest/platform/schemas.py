"""Typed request and response models of the platform API (the OpenAPI schema is the contract).

Text fields are stored verbatim (no trimming, no escaping: pages escape on output) but must be valid UTF-8
without NUL characters, within their length limit. Numbers are JSON numbers: strings and booleans are refused
(``"revenue": false`` is not money), and so are NaN and infinities. Integer fields take JSON integers, including
integral decimals such as ``2.0`` (JSON Schema's ``integer``). A unit's ``uuid`` is a text or an integer from 0 to
2**53 - 1 (the shop's ids are integers): it is kept in one canonical form, the decimal string, so that ``404180``
and ``"404180"`` are the same unit.

A design is coherent when ``sample_size`` per arm reaches ``power`` for ``effect`` / ``sd`` at ``alpha``; that is
the first rule the schema cannot state (``GET /api/design`` computes the size needed). Everything else the server
checks on a design's numbers is in the schema: ranges, a non-zero effect in the direction of a one-sided
alternative, and ``power`` above 0.5 >= ``alpha`` (so that the power always exceeds the significance level).

The metrics: ``continuous`` (the default: revenue per unit, ``effect`` and ``sd`` in money, Welch's t-test; outcomes
carry ``revenue``) and ``binary`` (a conversion: ``baseline`` is the control's rate, ``effect`` the difference of
rates to detect, the two-proportion z-test; outcomes carry ``converted``, 0 or 1, at ``.../conversions``). A binary
design is coherent when ``sample_size`` reaches ``power`` for the change of the rate from ``baseline`` to
``baseline + effect`` (``GET /api/design/binary``); that rate must lie inside (0, 1), the second rule the schema
cannot state (a sum of two fields).

A third metric, ``ratio`` (e.g. revenue per session, the customer randomized): ``effect`` is the difference of the
arms' ratios of means and ``sd`` the standard deviation per unit of the linearized metric (see
:class:`RatioExperimentIn`); it is designed like a continuous metric (``GET /api/design``), analyzed by the delta
method, and its outcomes carry ``revenue`` (the numerator) and ``denominator`` at ``.../outcomes``.

Every design may also ask for (all optional; defaults keep the single-metric experiment of before):

- ``bayesian``: the posterior of the primary metric's effect beside the frequentist test (chance to beat control,
  expected losses, credible interval), and of every other metric;
- ``secondary``: up to 20 :class:`MetricSpec` (name, kind, the denominator of a ratio), tested two-sided, their
  p-values adjusted by ``correction`` ("holm", the default; "bh" Benjamini-Hochberg; "none");
- ``guardrails``: up to 20 :class:`GuardrailSpec` (a MetricSpec with the harmful direction ``harm`` and the largest
  harm allowed ``max_harm``): a guardrail that fails makes the recommendation "do not ship";
- ``cuped`` (continuous metric only): variance reduction with each unit's pre-period value of the metric, which
  every outcome then carries as ``covariate``.

Metric names are unique across ``secondary`` and ``guardrails`` and a ratio's ``denominator`` is not its own name:
two rules the schema cannot state (422 from the server). Outcomes (and conversions) carry the value of every
secondary and guardrail metric (and of every ratio's denominator) in ``values``, by name; what an experiment
expects but a row lacks, or what it does not expect but a row carries, is refused with 409 (nothing recorded).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    WithJsonSchema,
    model_validator,
)

from nextbest.platform.db import NAME_MAX, OWNER_MAX, UUID_MAX

Alternative = Literal["two-sided", "larger", "smaller"]
Metric = Literal["continuous", "binary", "ratio"]
METRICS: tuple[str, ...] = ("continuous", "binary", "ratio")
Kind = Literal["continuous", "binary", "ratio"]
Correction = Literal["holm", "bh", "none"]
Recommendation = Literal["ship", "do not ship", "no decision"]
Arm = Literal["original", "new"]
ARMS: tuple[Arm, Arm] = ("original", "new")

#: JSON Schema pattern of storable text: no NUL character (lone surrogates cannot travel in UTF-8 JSON).
NO_NUL = r"^[^\x00]*$"
#: Largest integer uuid: 2**53 - 1, the largest integer every JSON reader takes exactly (RFC 8259, section 6;
#: JavaScript's Number.MAX_SAFE_INTEGER). Larger ids are sent as text, which is accepted as it is.
UUID_INT_MAX = 2**53 - 1
#: Range of the significance level: far smaller alphas (denormal floats) break the sample-size search, and above
#: 0.5 a test rejects more often than not.
ALPHA_MIN, ALPHA_MAX = 1e-10, 0.5
#: Power must exceed POWER_MIN (= ALPHA_MAX), so that it always exceeds alpha.
POWER_MIN = ALPHA_MAX
SAMPLE_SIZE_MIN, SAMPLE_SIZE_MAX = 2, 10**9
REVENUE_LIMIT = 1e12
#: Name of a secondary or guardrail metric, and the keys of an outcome's ``values``: an identifier.
METRIC_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
METRIC_NAME_MAX = 64
#: At most this many secondary metrics, and as many guardrails, per experiment; at most MAX_VALUES values per row.
MAX_SPECS, MAX_VALUES = 20, 40
#: A ratio metric names its denominator, and only a ratio does (JSON Schema conditions on MetricSpec).
RATIO_DENOMINATOR_SCHEMA: dict[str, Any] = {
    "if": {"properties": {"kind": {"const": "ratio"}}, "required": ["kind"]},
    "then": {"required": ["denominator"], "properties": {"denominator": {"type": "string"}}},
    "else": {"properties": {"denominator": {"type": "null"}}},
}
#: Direction of the effect a one-sided alternative requires, as JSON Schema conditions on ExperimentIn.
DIRECTION_SCHEMA: list[dict[str, Any]] = [
    {"if": {"properties": {"alternative": {"const": side}}, "required": ["alternative"]},
     "then": {"properties": {"effect": {bound: 0}}}}
    for side, bound in (("larger", "exclusiveMinimum"), ("smaller", "exclusiveMaximum"))
]  # fmt: skip


def _storable(text: str) -> str:
    """Reject what no database can store verbatim: NUL characters and lone surrogates (invalid UTF-8)."""
    if "\x00" in text:
        raise ValueError("must not contain NUL characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError("must be valid Unicode text") from error
    return text


def _whole(value: Any) -> Any:
    """An integral JSON decimal (``2.0``) as the integer it equals; anything else is left to the strict check."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def non_zero(value: float) -> float:
    """``value`` unless it is 0 (ValueError: a design needs the difference it should detect)."""
    if value == 0:
        raise ValueError("must be non-zero: a design needs the difference it should detect")
    return value


def _uuid_kind(value: Any) -> str | None:
    """Which form of uuid ``value`` is: "text", "integer" (a JSON number; its value is checked next) or neither."""
    if isinstance(value, str):
        return "text"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "integer"
    return None


def _canonical_uuid(value: str | int) -> str:
    """The one stored form of a uuid: text as given, an integer as its decimal string."""
    return str(value)


def _utc(moment: datetime) -> datetime:
    """Timestamps are UTC; SQLite hands them back naive."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _text(max_length: int, **field: Any) -> Any:
    """Storable text of 1 to ``max_length`` characters (schema: minLength, maxLength, no-NUL pattern)."""
    return Annotated[str, Field(min_length=1, max_length=max_length, json_schema_extra={"pattern": NO_NUL}, **field),
                     AfterValidator(_storable)]  # fmt: skip


def _whole_number(**field: Any) -> Any:
    """A JSON integer within ``field``'s bounds; ``2.0`` counts as 2, booleans and strings are refused."""
    return Annotated[int, Field(strict=True, **field), BeforeValidator(_whole)]


def _number(**field: Any) -> Any:
    """A finite JSON number within ``field``'s bounds; booleans and strings are refused."""
    return Annotated[float, Field(strict=True, allow_inf_nan=False, **field)]


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]
Owner = _text(OWNER_MAX)
Name = _text(NAME_MAX)
UnitText = _text(UUID_MAX, description="a unit's id as text")
UnitNumber = _whole_number(ge=0, le=UUID_INT_MAX, description="a unit's id as a non-negative integer")
#: A unit id as text or integer, validated to its canonical form (the decimal string for an integer).
UnitId = Annotated[
    Annotated[UnitText, Tag("text")] | Annotated[UnitNumber, Tag("integer")],
    Discriminator(_uuid_kind, custom_error_type="unit_id_type",
                  custom_error_message="a uuid is a text or an integer from 0 to 2**53 - 1"),
    AfterValidator(_canonical_uuid),
]  # fmt: skip
ZeroOne = _whole_number(ge=0, le=1)
Alpha = _number(ge=ALPHA_MIN, le=ALPHA_MAX, description="significance level")
Power = _number(gt=POWER_MIN, lt=1, description="power for the target effect (above 0.5, hence above alpha)")
Effect = Annotated[float, Field(strict=True, allow_inf_nan=False, json_schema_extra={"not": {"const": 0}},
                                description="target effect on revenue per unit (non-zero)"),
                   AfterValidator(non_zero)]  # fmt: skip
Sd = _number(gt=0, description="standard deviation of revenue per unit")
Rate = _number(gt=0, lt=1, description="conversion rate of the original arm (the control), in (0, 1)")
RateEffect = Annotated[float, Field(strict=True, allow_inf_nan=False, gt=-1, lt=1,
                                    json_schema_extra={"not": {"const": 0}},
                                    description="target difference of conversion rates, new − original (non-zero; "
                                                "baseline + effect must lie inside (0, 1))"),
                       AfterValidator(non_zero)]  # fmt: skip
SampleSize = _whole_number(ge=SAMPLE_SIZE_MIN, le=SAMPLE_SIZE_MAX, description="units per arm")
Revenue = _number(ge=-REVENUE_LIMIT, le=REVENUE_LIMIT, description="what the unit spent in the session")
RatioEffect = Annotated[Effect, Field(description="target difference of the arms' ratios, new − original (non-zero)")]
RatioSd = _number(gt=0, description="standard deviation per unit of the linearized ratio (RatioExperimentIn)")
Covariate = _number(ge=-REVENUE_LIMIT, le=REVENUE_LIMIT,
                    description="the unit's value of the metric before assignment (CUPED experiments only)")
Denominator = _number(ge=0, le=REVENUE_LIMIT,
                      description="the unit's denominator, e.g. its sessions (ratio experiments only)")
MetricValue = _number(ge=-REVENUE_LIMIT, le=REVENUE_LIMIT)
MetricName = Annotated[str, Field(min_length=1, max_length=METRIC_NAME_MAX, pattern=METRIC_NAME_PATTERN)]
#: The values of an outcome's secondary and guardrail metrics (and ratio denominators), by name. The schema is
#: written out: pydantic's would leave keys off the pattern unconstrained.
Values = Annotated[
    dict[MetricName, MetricValue],
    Field(max_length=MAX_VALUES),
    WithJsonSchema({
        "type": "object", "maxProperties": MAX_VALUES, "default": {},
        "propertyNames": {"minLength": 1, "maxLength": METRIC_NAME_MAX, "pattern": METRIC_NAME_PATTERN},
        "additionalProperties": {"type": "number", "minimum": -REVENUE_LIMIT, "maximum": REVENUE_LIMIT},
        "description": "the unit's value of each secondary and guardrail metric (and ratio denominator), by name",
    }),
]  # fmt: skip
Flag = Annotated[bool, Field(strict=True)]


def _no_cuped(value: bool) -> bool:
    """``value`` unless it asks for CUPED (ValueError: only a continuous metric has a pre-period covariate here)."""
    if value:
        raise ValueError("CUPED applies to the continuous metric only: remove cuped or use metric 'continuous'")
    return value


#: ``cuped`` on a binary or ratio design: only false (the schema's const) is accepted.
NoCuped = Annotated[bool, Field(strict=True, json_schema_extra={"const": False},
                                description="CUPED applies to the continuous metric only"),
                    AfterValidator(_no_cuped)]  # fmt: skip


def check_direction(effect: float, alternative: str) -> None:
    """ValueError when a one-sided alternative points away from the sign of the effect."""
    if alternative == "larger" and effect < 0:
        raise ValueError(f"effect {effect:g} is negative but alternative is 'larger': give a positive effect "
                         "or use 'smaller'")  # fmt: skip
    if alternative == "smaller" and effect > 0:
        raise ValueError(f"effect {effect:g} is positive but alternative is 'smaller': give a negative effect "
                         "or use 'larger'")  # fmt: skip


class MetricSpec(BaseModel):
    """A secondary metric: its ``name`` (an identifier, the key of its value in each outcome's ``values``), its
    ``kind`` and, for a ratio only, the name of the value that divides it. ``continuous``: Welch's t-test;
    ``binary``: values 0 or 1, the two-proportion z-test; ``ratio``: numerator ``values[name]`` over denominator
    ``values[denominator]`` per unit, the delta method (``{"name": "revenue", "kind": "ratio", "denominator":
    "sessions"}`` is revenue per session). A ratio's denominator is not its own name (422)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "allOf": [RATIO_DENOMINATOR_SCHEMA],
        "examples": [{"name": "revenue", "kind": "ratio", "denominator": "sessions"}],
    })  # fmt: skip

    name: MetricName
    kind: Kind = "continuous"
    denominator: MetricName | None = Field(None, description="the name of the value dividing a ratio (ratio only)")

    @model_validator(mode="after")
    def _denominator(self) -> MetricSpec:
        if self.kind == "ratio" and self.denominator is None:
            raise ValueError(f"metric {self.name!r} is a ratio: name its denominator (the value that divides it)")
        if self.kind != "ratio" and self.denominator is not None:
            raise ValueError(f"metric {self.name!r}: only a ratio has a denominator (kind is {self.kind!r})")
        if self.denominator == self.name:
            raise ValueError(f"metric {self.name!r}: a ratio's denominator must be another value than its numerator")
        return self


class GuardrailSpec(MetricSpec):
    """A guardrail: a metric (as :class:`MetricSpec`) the new system must not harm. ``harm`` is the harmful
    direction ("increase": e.g. bounce rate, latency; "decrease": e.g. revenue) and ``max_harm`` >= 0 the largest
    harm allowed, in the metric's units. It **fails** when the two-sided (1 − alpha) interval of new − original lies
    wholly beyond the allowed harm, **passes** when it lies wholly on the allowed side, and is **inconclusive**
    otherwise; guardrails are not corrected for multiplicity (each one is a veto)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "allOf": [RATIO_DENOMINATOR_SCHEMA],
        "examples": [{"name": "bounced", "kind": "binary", "harm": "increase", "max_harm": 0.01}],
    })  # fmt: skip

    harm: Literal["increase", "decrease"] = Field(description="the harmful direction of the metric")
    max_harm: float = Field(0.0, strict=True, allow_inf_nan=False, ge=0,
                            description="the largest harm allowed, in the metric's units (default 0)")


def _repeated(names: list[str]) -> list[str]:
    """The names that occur more than once in ``names``, sorted."""
    return sorted({name for name in names if names.count(name) > 1})


class _DesignIn(BaseModel):
    """What every experiment design names besides its metric: owner, name, alpha, power, size per arm and the
    alternative; the metric's ``effect`` must point the way a one-sided alternative does. Optional: the Bayesian
    posterior, secondary metrics with their multiplicity ``correction``, and guardrails (module docstring); their
    names are unique across both lists."""

    owner: Owner
    name: Name
    alpha: Alpha = 0.05
    power: Power = 0.8
    sample_size: SampleSize
    alternative: Alternative = "two-sided"
    bayesian: Flag = Field(False, description="also report the posterior of each metric's effect")
    secondary: list[MetricSpec] = Field([], max_length=MAX_SPECS,
                                        description="secondary metrics: tested two-sided, corrected for multiplicity")
    guardrails: list[GuardrailSpec] = Field([], max_length=MAX_SPECS,
                                            description="metrics the new system must not harm (a failed one vetoes)")
    correction: Correction = Field("holm", description="multiplicity correction of the secondary metrics: Holm, "
                                                       "Benjamini-Hochberg or none")

    @model_validator(mode="after")
    def _direction(self) -> _DesignIn:
        check_direction(self.effect, self.alternative)
        return self

    @model_validator(mode="after")
    def _unique_names(self) -> _DesignIn:
        repeated = _repeated([spec.name for spec in (*self.secondary, *self.guardrails)])
        if repeated:
            raise ValueError(f"each secondary metric and guardrail is named once; repeated: {', '.join(repeated)}")
        return self


class ExperimentIn(_DesignIn):
    """Design of a new experiment; ``sample_size`` is per arm (50/50 split). The effect must point the way a
    one-sided ``alternative`` does, and ``sample_size`` must reach ``power`` for ``effect`` / ``sd`` at ``alpha``
    (the size ``GET /api/design`` reports); a design that does not is refused with 422 and the explanation.

    ``cuped``: the analysis adjusts revenue by each unit's pre-period value of the same metric (CUPED; measured
    before assignment, so unaffected by the treatment), which every outcome must then carry as ``covariate``. The
    design's size stays the plain t-test's: CUPED's variance reduction is extra power."""

    model_config = ConfigDict(json_schema_extra={
        "allOf": DIRECTION_SCHEMA,
        "examples": [{"owner": "ana", "name": "category display", "alpha": 0.05, "power": 0.8, "effect": 0.7,
                      "sd": 15, "sample_size": 7210, "alternative": "two-sided"}],
    })  # fmt: skip

    metric: Literal["continuous"] = Field("continuous", description="revenue per unit (the default)")
    effect: Effect
    sd: Sd
    cuped: Flag = Field(False, description="CUPED: every outcome carries its unit's pre-period value as covariate")


class BinaryExperimentIn(_DesignIn):
    """Design of an experiment on a conversion (``metric`` "binary"): ``baseline`` is the original arm's rate,
    ``effect`` the difference of rates to detect (new − original), ``sample_size`` per arm (50/50 split). The effect
    must point the way a one-sided ``alternative`` does, ``baseline + effect`` must lie inside (0, 1), and
    ``sample_size`` must reach ``power`` for that change of the rate at ``alpha`` (the size ``GET
    /api/design/binary`` reports: two proportions, arcsine effect size); a design that does not is refused with
    422 and the explanation. Outcomes are posted to ``.../conversions``."""

    model_config = ConfigDict(json_schema_extra={
        "allOf": DIRECTION_SCHEMA,
        "examples": [{"owner": "crm", "name": "salescrm pilot: first call", "metric": "binary", "baseline": 0.0044,
                      "effect": 0.0056, "alpha": 0.05, "power": 0.8, "sample_size": 3438,
                      "alternative": "two-sided"}],
    })  # fmt: skip

    metric: Literal["binary"] = Field(description="a conversion (0 or 1 per unit)")
    baseline: Rate
    effect: RateEffect
    cuped: NoCuped = False


class RatioExperimentIn(_DesignIn):
    """Design of an experiment on a ratio metric (``metric`` "ratio"), e.g. revenue per session where the customer,
    not the session, is randomized: per unit a numerator ``Y`` (posted as ``revenue``) and a denominator ``X``
    (``denominator``, e.g. sessions), per arm the ratio of means ``R = mean(Y) / mean(X)``, analyzed by the delta
    method. ``effect`` is the difference of ratios to detect (new − original); ``sd`` is the standard deviation per
    unit of the linearized metric ``L = (Y − R X) / mean(X)``, whose mean has the delta method's variance (from a
    pre-period: ``sd ≈ sqrt(s_Y² − 2 R s_XY + R² s_X²) / mean(X)``). With them the design is checked as a
    continuous one (``GET /api/design``): ``sample_size`` per arm must reach ``power`` for ``effect`` / ``sd`` at
    ``alpha``, and a one-sided ``alternative`` fixes the sign of ``effect``. Outcomes go to ``.../outcomes`` with
    ``revenue`` and ``denominator``."""

    model_config = ConfigDict(json_schema_extra={
        "allOf": DIRECTION_SCHEMA,
        "examples": [{"owner": "ana", "name": "revenue per session", "metric": "ratio", "effect": 0.5, "sd": 8,
                      "alpha": 0.05, "power": 0.8, "sample_size": 4020, "alternative": "two-sided"}],
    })  # fmt: skip

    metric: Literal["ratio"] = Field(description="a ratio of means per unit, e.g. revenue per session")
    effect: RatioEffect
    sd: RatioSd
    cuped: NoCuped = False


def _metric_of(body: Any) -> str | None:
    """The metric a design body names ("continuous" when it names none); None for an unknown one. A body that is not
    an object goes to the continuous model, which says what is wrong with it."""
    if isinstance(body, dict):
        metric = body.get("metric", "continuous")
        return metric if isinstance(metric, str) and metric in METRICS else None
    return getattr(body, "metric", "continuous")


#: The body of ``POST /api/experiments``: a continuous design (``metric`` absent or "continuous"), a binary one or a
#: ratio one.
ExperimentDesign = Annotated[
    Annotated[ExperimentIn, Tag("continuous")] | Annotated[BinaryExperimentIn, Tag("binary")]
    | Annotated[RatioExperimentIn, Tag("ratio")],
    Discriminator(_metric_of, custom_error_type="metric",
                  custom_error_message="metric must be 'continuous' (the default), 'binary' or 'ratio'"),
]  # fmt: skip
#: The design model of each metric.
DESIGNS: dict[str, type[_DesignIn]] = {"continuous": ExperimentIn, "binary": BinaryExperimentIn,
                                       "ratio": RatioExperimentIn}  # fmt: skip


class CreatedOut(BaseModel):
    """The new experiment's id and its write token (shown only here, never again)."""

    id: int
    token: str
    required_sample_size: int
    achieved_power: float


class DecisionIn(BaseModel):
    """The new system's decision for one unit: 1 = show, 0 = don't (``uuid`` text or integer, see UnitId)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"uuid": 404180, "value": 1}]})

    uuid: UnitId
    value: ZeroOne


class OutcomeIn(BaseModel):
    """What one unit spent in the session (for a ratio experiment: the numerator), the arm it was served and the
    decision applied. ``covariate``: the unit's pre-period value, required by a CUPED experiment and refused by the
    others; ``denominator``: required by a ratio experiment and refused by the others; ``values``: exactly the
    experiment's secondary and guardrail metrics (and ratio denominators), by name. A row off these rules gets 409
    and nothing of the request is recorded."""

    model_config = ConfigDict(json_schema_extra={
        "examples": [{"uuid": 404180, "arm": "new", "decision": 1, "revenue": 57.3},
                     {"uuid": "customer-1", "arm": "new", "decision": 1, "revenue": 57.3, "covariate": 41.0,
                      "values": {"sessions": 3, "bounced": 0}}],
    })  # fmt: skip

    uuid: UnitId
    arm: Arm
    decision: ZeroOne
    revenue: Revenue
    covariate: Covariate | None = None
    denominator: Denominator | None = None
    values: Values = {}


class ConversionIn(BaseModel):
    """Whether one unit of a binary experiment converted (1) or not (0), the arm it was served and the decision
    applied (``uuid`` text or integer, see UnitId); ``values`` as in :class:`OutcomeIn`."""

    model_config = ConfigDict(json_schema_extra={
        "examples": [{"uuid": "lead-1", "arm": "new", "decision": 1, "converted": 0}]})  # fmt: skip

    uuid: UnitId
    arm: Arm
    decision: ZeroOne
    converted: ZeroOne
    values: Values = {}


class IngestOut(BaseModel):
    """Rows recorded now, and rows ignored because their uuid was already recorded (the first one wins)."""

    accepted: int
    duplicates: int


class Progress(BaseModel):
    """Units with an outcome per arm against the designed size per arm, and what was received so far."""

    original: int
    new: int
    required_per_arm: int
    decisions: int
    duplicate_decisions: int
    duplicate_outcomes: int
    complete: bool


class Result(BaseModel):
    """Verdict once both arms reached the designed size: Welch analysis (a binary metric: the two-proportion z-test)
    of the first ``sample_size`` outcomes of each arm (arrival order) with ``target_effect`` = the design's effect,
    and the SRM chi-square test of all outcome counts against 50/50. ``analysis`` holds every field of the analysis
    result (assumptions and ``method`` included).

    Each p-value comes with the threshold it is compared with: ``p_value`` with ``alpha_threshold`` (the design's
    alpha); ``target_p_value`` (one-sided test against the target effect) with ``target_threshold``, which is
    alpha / 2 for a two-sided design and alpha for a one-sided one, so that the target is shown exactly when the
    reported interval lies beyond it; ``srm_p_value`` with ``srm_threshold`` (0.001: below it the split is broken).
    Target fields are null when the data could not be analyzed.

    Every field above describes the primary metric. ``recommendation`` ("ship", "do not ship", "no decision") and
    its one-paragraph ``summary`` take every metric into account: ship when the primary improves and no guardrail
    fails (a guardrail that cannot be analyzed withholds "ship"). ``correction`` is the secondary metrics'
    multiplicity correction; ``bayesian`` the primary's posterior (model, effect, credible_interval,
    chance_to_beat_control, expected_loss of shipping new, expected_loss_control of keeping original, ...) when the
    experiment asked for it, else null; ``metrics`` the secondary metrics then the guardrails, in the design's
    order, each with name, role, kind, analysis, p_value_adjusted, significant, bayesian, and for a guardrail harm,
    max_harm and its status in ``guardrail`` ("fails", "passes", "inconclusive"); a metric that cannot be analyzed
    has ``analysis`` null and the reason in ``error``."""

    verdict: str
    effect: float | None
    ci: tuple[float | None, float | None]
    p_value: float | None
    alpha_threshold: float
    target_p_value: float | None
    target_threshold: float | None
    improves: bool
    improves_by_target: bool
    srm_p_value: float | None
    srm_threshold: float
    srm_flagged: bool
    srm_message: str
    n_original: int
    n_new: int
    analysis: dict[str, Any]
    recommendation: Recommendation
    summary: str
    correction: Correction
    bayesian: dict[str, Any] | None = None
    metrics: list[dict[str, Any]] = []


class ExperimentSummary(BaseModel):
    """Configuration of an experiment as listed (never its token nor its salt). A binary experiment has its
    ``baseline`` rate, its ``effect`` is a difference of rates and its ``sd`` the standard deviation of one
    conversion at the baseline, √(baseline (1 − baseline)); a continuous or ratio one has no baseline (null). The
    analysis options follow: ``bayesian``, ``cuped``, ``correction``, ``secondary`` and ``guardrails``."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    owner: str
    name: str
    metric: Metric = "continuous"
    baseline: float | None = None
    alpha: float
    power: float
    effect: float
    sd: float
    sample_size: int
    alternative: str
    status: str
    created_at: UtcDatetime
    bayesian: bool = False
    cuped: bool = False
    correction: Correction = "holm"
    secondary: list[MetricSpec] = []
    guardrails: list[GuardrailSpec] = []


class ExperimentOut(ExperimentSummary):
    """Configuration, progress and (when the designed sample is complete) the result."""

    progress: Progress
    result: Result | None = None


class OutcomeRecord(BaseModel):
    """One recorded outcome, in arrival order (``revenue`` holds the metric: 1.0 / 0.0 for a conversion)."""

    model_config = ConfigDict(from_attributes=True)

    uuid: str
    arm: str
    decision: int
    revenue: float
    received_at: UtcDatetime
    covariate: float | None = None
    denominator: float | None = None
    values: dict[str, float] | None = None


class AssignmentOut(BaseModel):
    """The arm a unit belongs to in an experiment (deterministic hash of the experiment salt and the uuid)."""

    experiment_id: int
    uuid: str
    arm: Arm


class AssignmentsIn(BaseModel):
    """Units whose arms are asked for at once (at most 200,000; more get 413), as texts or integers."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"uuids": [404180, "customer-1"]}]})

    uuids: list[UnitId]


class AssignmentsOut(BaseModel):
    """The arms of many units, in the order of the request (the same hash as the single-unit assignment)."""

    experiment_id: int
    arms: list[Arm]


class ErrorOut(BaseModel):
    """Error body: a one-line explanation."""

    detail: str


class ValidationIssue(BaseModel):
    """One reason a request was refused: where (``["body", "uuid"]``, ``["query", "sd"]``), what, and its kind."""

    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorOut(BaseModel):
    """422 body of a request that does not match the schema (or is not JSON): the first 20 issues."""

    detail: list[ValidationIssue]


class RefusalOut(BaseModel):
    """422 body of an experiment creation: the issues of a request that does not match the schema, or one line
    explaining why a well-formed design is refused (incoherent: the sample does not reach the power)."""

    detail: str | list[ValidationIssue]
