"""Typed request and response models of the platform API (the OpenAPI schema is the contract).

Text fields are stored verbatim (no trimming, no escaping: pages escape on output) but must be valid UTF-8
without NUL characters, within their length limit. Numbers must be finite; 0/1 fields accept only the JSON
integers 0 and 1.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from nextbest.platform.db import NAME_MAX, OWNER_MAX, UUID_MAX

Alternative = Literal["two-sided", "larger", "smaller"]
Arm = Literal["original", "new"]
ARMS: tuple[Arm, Arm] = ("original", "new")


def _storable(text: str) -> str:
    """Reject what no database can store verbatim: NUL characters and lone surrogates (invalid UTF-8)."""
    if "\x00" in text:
        raise ValueError("must not contain NUL characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError("must be valid Unicode text") from error
    return text


def _utc(moment: datetime) -> datetime:
    """Timestamps are UTC; SQLite hands them back naive."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]
Owner = Annotated[str, Field(min_length=1, max_length=OWNER_MAX), AfterValidator(_storable)]
Name = Annotated[str, Field(min_length=1, max_length=NAME_MAX), AfterValidator(_storable)]
UnitId = Annotated[str, Field(min_length=1, max_length=UUID_MAX), AfterValidator(_storable)]
ZeroOne = Annotated[int, Field(strict=True, ge=0, le=1)]
Finite = Annotated[float, Field(allow_inf_nan=False)]


class ExperimentIn(BaseModel):
    """Design of a new experiment; ``sample_size`` is per arm (50/50 split). The design must be coherent."""

    owner: Owner
    name: Name
    alpha: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] = 0.05
    power: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] = 0.8
    effect: Annotated[float, Field(allow_inf_nan=False, description="target effect on revenue per unit")]
    sd: Annotated[float, Field(gt=0, allow_inf_nan=False, description="standard deviation of revenue per unit")]
    sample_size: Annotated[int, Field(ge=2, le=10**9, description="units per arm")]
    alternative: Alternative = "two-sided"


class CreatedOut(BaseModel):
    """The new experiment's id and its write token (shown only here, never again)."""

    id: int
    token: str
    required_sample_size: int
    achieved_power: float


class DecisionIn(BaseModel):
    """The new system's decision for one unit: 1 = show, 0 = don't."""

    uuid: UnitId
    value: ZeroOne


class OutcomeIn(BaseModel):
    """What one unit spent in the session, the arm it was served and the decision applied."""

    uuid: UnitId
    arm: Arm
    decision: ZeroOne
    revenue: Annotated[float, Field(allow_inf_nan=False, ge=-1e12, le=1e12)]


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
    """Verdict once both arms reached the designed size: Welch analysis of the first ``sample_size`` outcomes of
    each arm (arrival order) with ``target_effect`` = the design's effect, and the SRM chi-square test of all
    outcome counts against 50/50. ``analysis`` holds every field of the analysis result (assumptions included)."""

    verdict: str
    effect: float | None
    ci: tuple[float | None, float | None]
    p_value: float | None
    improves: bool
    improves_by_target: bool
    srm_p_value: float | None
    srm_flagged: bool
    srm_message: str
    n_original: int
    n_new: int
    analysis: dict[str, Any]


class ExperimentSummary(BaseModel):
    """Configuration of an experiment as listed (never its token nor its salt)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    owner: str
    name: str
    alpha: float
    power: float
    effect: float
    sd: float
    sample_size: int
    alternative: str
    status: str
    created_at: UtcDatetime


class ExperimentOut(ExperimentSummary):
    """Configuration, progress and (when the designed sample is complete) the result."""

    progress: Progress
    result: Result | None = None


class OutcomeRecord(BaseModel):
    """One recorded outcome, in arrival order."""

    model_config = ConfigDict(from_attributes=True)

    uuid: str
    arm: str
    decision: int
    revenue: float
    received_at: UtcDatetime


class AssignmentOut(BaseModel):
    """The arm a unit belongs to in an experiment (deterministic hash of the experiment salt and the uuid)."""

    experiment_id: int
    uuid: str
    arm: Arm


class AssignmentsIn(BaseModel):
    """Units whose arms are asked for at once (at most 200,000)."""

    uuids: list[UnitId]


class AssignmentsOut(BaseModel):
    """The arms of many units, in the order of the request (the same hash as the single-unit assignment)."""

    experiment_id: int
    arms: list[Arm]


class ErrorOut(BaseModel):
    """Error body: a one-line explanation."""

    detail: str
