"""The typed result of the CRM evaluation: what `crm evaluate` writes as evaluation.json and the CRM report reads
(`nextbest.results.Result`: one serializer, one checked reader).

Intervals are ``[low, high]`` lists (null where undefined); a metric that is not a finite number is null.
``subscription_rate`` is the rate of the funnel spec's conversion step, ``first_call_rate`` the rate of its
first key step (SalesCRM's names, kept because scripts read them).
"""

from __future__ import annotations

from typing import Any

import msgspec

from nextbest.evaluation.crm_pilot import PilotDesign
from nextbest.evaluation.crm_who import Who
from nextbest.results import Result

Interval = list[float | None]


class PolicyMetrics(Result):
    """Business metrics of one policy on the held-out leads, each with its 95% bootstrap interval."""

    subscription_rate: float | None
    subscription_rate_ci: Interval
    first_call_rate: float | None
    first_call_rate_ci: Interval
    cost_per_acquisition: float | None
    cost_per_acquisition_ci: Interval
    roi: float | None
    roi_ci: Interval
    value_per_lead: float | None
    value_per_lead_ci: Interval


class Improvement(Result, omit_defaults=True, kw_only=True):
    """Learned ÷ baseline conversion rate with its bootstrap interval (no metric when the baseline is absent)."""

    metric: str | None = None
    factor: float | None
    ci: Interval


class FlowLink(Result):
    """Lead-episodes that took `from_` in `week` and then `to` (an action, or how the episode ended)."""

    week: int
    from_: str = msgspec.field(name="from")
    to: str
    count: int


class ActionFlow(Result):
    """A policy's week-to-week actions and how its episodes ended."""

    episodes: int
    horizon: int
    links: list[FlowLink]
    outcomes: dict[str, int]


class CalibrationStep(Result):
    """A funnel step's simulated and actual held-out rate under the logged process, with the simulator's interval."""

    step: str
    simulated: float
    actual: float
    ci: Interval
    within: bool


class Calibration(Result, omit_defaults=True):
    """The simulator's calibration on held-out leads."""

    policy: str
    interval: str
    steps: list[CalibrationStep]
    within_ci_fraction: float
    fitted_on: str | None = None


class TargetCheck(Result):
    """A business target: the value reached, the requirement and whether it is met."""

    value: float | None
    target: str
    met: bool


class SensitivityRow(Result):
    """Point metrics when the uncertain offer's logged rate takes another value."""

    call_offer_rate: float
    learned: dict[str, float | None]
    random: dict[str, float | None]
    logged: dict[str, float | None]


class BreakEven(Result):
    """The conversion value at which an action of the logged process pays for itself under a reading (None: it adds
    no conversion, so no value makes it pay), with the conversions and spend it adds per 1,000 leads."""

    value: float | None
    value_ci: Interval
    conversions_per_1000: float
    conversions_per_1000_ci: Interval
    spend_per_1000: float


class ValuePoint(Result):
    """The learned policy retrained at one conversion value: what it achieves and how it spends its weeks."""

    subscription_value: float
    subscription_rate: float
    first_call_rate: float
    spend_per_lead: float
    value_per_lead: float
    action_shares: dict[str, float]


class ReadingResult(Result, omit_defaults=True, kw_only=True):
    """The evaluation under one reading of the data (`nextbest.evaluation.crm_readings`): the dial (0 conservative,
    1 optimistic), the offer rates it assumes (steps offered to fewer than all leads), where its learned policy
    comes from, the policies' metrics with intervals, the targets, the top segments' action sequences, the
    break-even value of each action and the value sensitivity."""

    dial: float
    offer_rates: dict[str, float]
    learned_policy: str
    policies: dict[str, PolicyMetrics]
    improvement_vs_random: Improvement
    improvement_vs_logged: Improvement
    targets: dict[str, TargetCheck]
    top_segments: list[dict[str, Any]]
    break_even: dict[str, BreakEven]
    value_sensitivity: list[ValuePoint] | None = None


class EvaluationSettings(Result, kw_only=True):
    """What the evaluation assumed: the funnel, its value and costs, the simulator's and the evaluation's settings."""

    subscription_value: float
    action_costs: dict[str, float]
    funnel: str = "salescrm"  # files written before funnel specs name no funnel: they are SalesCRM's
    conversion_step: str = "subscribed"
    first_key_step: str = "first_call"
    uncertain_offer: str | None = "first_call"  # the step whose logged offer rate the sensitivity varies
    simulator: dict[str, Any]
    evaluation: dict[str, Any]
    test_leads: int
    train_leads: int
    readings: list[dict[str, Any]] = []  # the readings evaluated: name and dial


class CRMEvaluation(Result, omit_defaults=True, kw_only=True):
    """evaluation.json of `nextbest crm evaluate` (see `evaluate_crm`).

    ``top_segments`` entries name the segment under the spec's covariates (SalesCRM: ``country``,
    ``education``), then ``stage``, ``value_per_lead``, ``value_ci``, ``episodes``, ``leads`` and
    ``action_sequences``: their keys depend on the funnel, so they stay plain objects. The flows, segments,
    calibration and sensitivity are optional (the report says which section is missing).
    """

    policies: dict[str, PolicyMetrics]
    improvement_vs_random: Improvement
    improvement_vs_logged: Improvement
    action_flows: dict[str, ActionFlow] | None = None
    top_segments: list[dict[str, Any]] | None = None
    simulator_calibration: Calibration | None = None
    simulator_calibration_train_val: Calibration | None = None
    calibration: dict[str, Calibration] | None = None  # in_period (held-out train leads) and across_time (test)
    targets: dict[str, TargetCheck]
    sensitivity: list[SensitivityRow] | None = None  # files written before the readings (call-offer rates)
    readings: dict[str, ReadingResult] | None = None  # the policy under each reading of the data, conservative first
    convergence: dict[str, Any] | None = None  # Q-learning with both step sizes (`nextbest.agents.convergence`)
    who: Who | None = None  # the lead score at decision points on the held-out leads (`nextbest.evaluation.crm_who`)
    pilot: PilotDesign | None = None  # the randomized test of the uncertain offer (`nextbest.evaluation.crm_pilot`)
    settings: EvaluationSettings
    run: str | None = None
