"""The pilot that settles what the export cannot tell: a randomized test of the uncertain offer (no I/O).

The export never says which leads were offered the uncertain step (SalesCRM: the first call), so its effect is a
reading, not a measurement. The pilot measures it:

* arms: **treatment** — the uncertain step's action offered to every pilot lead; **control** — the process as it
  runs today; outcome: the lead converts (the spec's conversion step);
* ``per_arm`` = ``sample_size_binary(baseline, target / baseline − 1, alpha, power)`` (arcsine effect size, normal
  power; the target is the spec's conversion-rate target, or a doubling when that is absent or already met);
* ``detectable_lift_at_budget`` = ``detectable_lift_binary(budget / 2, baseline, alpha, power)``: the smallest
  relative lift a budget of leads split in two can detect; None ("nothing detectable") when an arm would expect
  fewer than ``MIN_EXPECTED`` conversions at the baseline, where a test of two proportions (and its normal
  approximation) cannot be trusted;
* ``weeks`` = total leads / the team's leads per week (when the lead volume is known);
* assignment: stratified by segment — within each segment a seeded random order alternates the arms, so every
  segment is split evenly (``stratified_assignment``);
* on the experiment platform (``platform_request``): a binary experiment whose ``baseline`` is the logged rate,
  ``effect`` the difference target − baseline and ``sample_size`` ``per_arm``; its arm "new" is the treatment and
  "original" the control (``PLATFORM_ARMS``). What the platform answers is kept as ``PilotDesign.platform``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from nextbest.data.funnel_spec import FunnelSpec
from nextbest.errors import NextbestError
from nextbest.experiments import detectable_lift_binary, sample_size_binary
from nextbest.results import Result

MIN_EXPECTED = 5.0  # conversions per arm at the baseline below which a two-proportion test is not trusted
#: The platform's arm of each pilot arm: the platform compares "new" against "original".
PLATFORM_ARMS: dict[str, str] = {"treatment": "new", "control": "original"}
PLATFORM_NAME_MAX = 200  # the platform's limit on an experiment's name


class PilotPlatform(Result, kw_only=True):
    """The pilot as created on the experiment platform: where (``url``), its id and write token (shown once by the
    platform: keep it), its name, the platform arm of each pilot arm, and the size the platform requires per arm
    with the power it reaches. Post each lead's conversion to ``conversions`` with the token."""

    url: str
    experiment_id: int
    token: str
    name: str
    metric: str = "binary"
    arms: dict[str, str]
    required_sample_size: int
    achieved_power: float
    conversions: str


class PilotDesign(Result, kw_only=True):
    """The pilot's arms, outcome, sizes and duration (module doc)."""

    treatment: str
    control: str = "the process as it runs today"
    outcome: str
    baseline_rate: float
    target_rate: float
    lift: float
    alpha: float
    power: float
    per_arm: int
    total: int
    achieved_power: float
    budget: int
    detectable_lift_at_budget: float | None  # None: no lift up to a rate of 1 is detectable
    detectable_rate_at_budget: float | None
    leads_per_week: float | None = None
    weeks: float | None = None
    method: str = "two-sided test of two proportions, arcsine effect size (normal power)"
    platform: PilotPlatform | None = None  # set when the pilot was created on the experiment platform


def design_pilot(spec: FunnelSpec, baseline: float, budget: int, leads_per_week: float | None = None,
                 alpha: float = 0.05, power: float = 0.8) -> PilotDesign:  # fmt: skip
    """The pilot for ``spec`` at a conversion rate ``baseline`` and a budget of ``budget`` leads (module doc)."""
    if not 0 < baseline < 1:
        raise NextbestError(f"the logged conversion rate must be in (0, 1) to design a pilot, got {baseline:.4g}")
    if budget < 4:
        raise NextbestError(f"a budget of {budget} leads is too small for two arms")
    offer = spec.uncertain_offer or spec.key_steps[0]
    action = next((a.name for a in spec.actions if offer in a.offers), offer)
    wanted = spec.targets.get("subscription_rate")
    target = wanted if wanted is not None and wanted > baseline else min(2 * baseline, 0.99)
    size = sample_size_binary(baseline, target / baseline - 1, alpha, power)
    lift = detectable_lift_binary(budget // 2, baseline, alpha, power)
    detectable = None if math.isinf(lift) or budget // 2 * baseline < MIN_EXPECTED else lift
    total = int(size.total)
    return PilotDesign(
        treatment=f"offer {offer} ({action}) to every pilot lead", outcome=f"the lead reaches {spec.conversion_step}",
        baseline_rate=baseline, target_rate=target, lift=target / baseline - 1, alpha=alpha, power=power,
        per_arm=int(size), total=total, achieved_power=float(size.achieved_power), budget=int(budget),
        detectable_lift_at_budget=detectable,
        detectable_rate_at_budget=None if detectable is None else baseline * (1 + detectable),
        leads_per_week=leads_per_week,
        weeks=None if not leads_per_week else total / leads_per_week,
    )  # fmt: skip


def platform_request(design: PilotDesign, funnel: str, segment: str | None = None,
                     owner: str = "nextbest crm pilot") -> dict[str, Any]:  # fmt: skip
    """The ``POST /api/experiments`` body of ``design`` on the experiment platform: a binary metric with the logged
    rate as ``baseline``, ``effect`` = target − baseline, ``sample_size`` = ``per_arm``, two-sided at the design's
    alpha and power; named after the funnel, the uncertain offer and the segment (cut to the platform's 200
    characters)."""
    name = f"{funnel} pilot: {design.treatment} vs {design.control}" + (f" [{segment}]" if segment else "")
    if len(name) > PLATFORM_NAME_MAX:
        name = name[: PLATFORM_NAME_MAX - 1] + "…"
    return {"owner": owner, "name": name, "metric": "binary", "baseline": design.baseline_rate,
            "effect": design.target_rate - design.baseline_rate, "alpha": design.alpha, "power": design.power,
            "sample_size": design.per_arm, "alternative": "two-sided"}  # fmt: skip


def stratified_assignment(segments: np.ndarray, seed: int = 0) -> np.ndarray:
    """"treatment" or "control" per row: within each segment a seeded random order alternating the arms (each
    segment split evenly, the odd one out drawn at random)."""
    segments = np.asarray(segments).astype(str)
    rng = np.random.default_rng(seed)
    arms = np.empty(segments.size, dtype=object)
    for segment in np.unique(segments):
        rows = rng.permutation(np.flatnonzero(segments == segment))
        first = rng.integers(0, 2)
        arms[rows] = np.where((np.arange(rows.size) + first) % 2 == 0, "treatment", "control")
    return arms


def leads_per_week(rows: dict[str, int], periods: dict[str, dict[str, str | None]]) -> float | None:
    """The team's lead volume: leads of the splits over the weeks from the first to the last lead date."""
    import pandas as pd

    firsts = [pd.Timestamp(p["first"]) for p in periods.values() if p.get("first")]
    lasts = [pd.Timestamp(p["last"]) for p in periods.values() if p.get("last")]
    if not firsts or not lasts:
        return None
    weeks = (max(lasts) - min(firsts)).days / 7
    return sum(rows.values()) / weeks if weeks > 0 else None


def select_segments(table: Any, covariates: tuple[str, ...], wanted: str | None) -> Any:
    """The rows of ``table`` in the segment ``wanted`` ("country=USA,education=B27"; None: every row); a
    NextbestError names an unknown covariate or value."""
    if not wanted:
        return table
    mask = np.ones(len(table), dtype=bool)
    for part in wanted.split(","):
        name, _, value = part.partition("=")
        name, value = name.strip(), value.strip()
        if name not in covariates:
            raise NextbestError(f"--segment {wanted!r}: unknown covariate {name!r}; the funnel's are "
                                f"{', '.join(covariates)}")  # fmt: skip
        known = set(table[name].astype(str))
        if value not in known:
            raise NextbestError(f"--segment {wanted!r}: no open lead has {name} = {value!r} (values: "
                                f"{', '.join(sorted(known)[:8])}{', ...' if len(known) > 8 else ''})")  # fmt: skip
        mask &= table[name].astype(str).to_numpy() == value
    return table[mask]
