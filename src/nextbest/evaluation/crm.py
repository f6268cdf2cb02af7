"""Offline evaluation of CRM policies on held-out leads: business metrics with bootstrap intervals that refit the
simulator (`nextbest.evaluation.crm_bootstrap`), simulator calibration, top segments, who to contact
(`crm_who`), the pilot (`crm_pilot`) and the policy under each reading of the data (`crm_readings`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict

import numpy as np
import pandas as pd

from nextbest.evaluation.crm_bootstrap import (
    EvaluationConfig,
    Leads,
    bootstrap_policies,
    business_targets,
    improvement,
    policy_entries,
    reach_rates,
    simulate_policy,
    top_segments,
)
from nextbest.evaluation.crm_pilot import design_pilot
from nextbest.evaluation.crm_readings import READINGS, evaluate_readings, reading_settings
from nextbest.evaluation.crm_results import CRMEvaluation
from nextbest.evaluation.crm_who import who_quality
from nextbest.evaluation.metrics import json_number
from nextbest.parallel import SERIAL, Executor
from nextbest.sim.funnel import FunnelSimulator, refit_like
from nextbest.sim.journeys import Journeys
from nextbest.sim.rollout import PolicyFn, Rollout
from nextbest.stats import percentile_interval


def evaluate_crm(
    sim: FunnelSimulator,
    train: Journeys,
    test: Journeys,
    policies: dict[str, PolicyFn],
    config: EvaluationConfig | None = None,
    retrain: Callable[[FunnelSimulator], PolicyFn] | None = None,
    progress: Callable[[int], None] | None = None,
    validation: Journeys | None = None,
    with_readings: bool = True,
    test_frame: pd.DataFrame | None = None,
    leads_per_week: float | None = None,
    recent: tuple[Journeys, str] | None = None,
    executor: Executor = SERIAL,
) -> CRMEvaluation:
    """The evaluation of the CRM use case (`CRMEvaluation`, written as evaluation.json).

    `policies` must contain "learned", "random" and "logged"; `retrain(sim)` trains a fresh learned
    policy on another simulator, for the readings other than the run's own and the value sensitivity (those are
    skipped when None; `with_readings=False` skips the readings altogether). `test_frame`, the prepared test
    leads with their dates, adds the lead score as of a cutoff date (``who.as_of_cutoff``); `leads_per_week`, the
    team's lead volume, gives the pilot its duration. `recent` (the most recent train leads and how to name them)
    adds the calibrations of a simulator fitted on them only: ``calibration.{in_period_recent,
    across_time_recent}``. `executor` runs the bootstrap replicates and the sensitivity retrains (the numbers do
    not depend on it; see ``nextbest.parallel``). With `validation`,
    the calibration is also measured for a simulator fitted on train + validation leads: a
    diagnostic of drift between the periods, never used for the policy metrics.
    """
    cfg = config or EvaluationConfig()
    leads = Leads(sim.model.encode_leads(test), test.covariates, test.spec.covariates)
    point = {
        name: simulate_policy(sim, leads.tile(cfg.replications), policy, cfg.seed) for name, policy in policies.items()
    }
    samples, calibration_samples = bootstrap_policies(sim, train, leads, policies, cfg, progress, executor)
    out: dict = {"policies": policy_entries(point, samples, cfg.level)}
    for baseline in ("random", "logged"):
        out[f"improvement_vs_{baseline}"] = improvement(point, samples, baseline, cfg.level)
    out["action_flows"] = {name: action_flow(run.rollout, sim.spec.action_names) for name, run in point.items()}
    out["top_segments"] = top_segments(
        point["learned"].rollout, leads, cfg.replications, cfg.segment_min_support, sim.spec.action_names
    )
    out["simulator_calibration"] = _calibration(point["logged"].rollout, test, calibration_samples, cfg.level)
    out["calibration"] = {"in_period": _in_period(sim, train, policies, cfg, executor=executor),
                          "across_time": out["simulator_calibration"]}  # fmt: skip
    if recent is not None:
        recent_leads, label = recent
        out["calibration"]["in_period_recent"] = _in_period(sim, recent_leads, policies, cfg, label, executor)
        out["calibration"]["across_time_recent"] = _across_time(sim, recent_leads, test, leads, policies, cfg,
                                                                f"{label} (a fit window)", executor)  # fmt: skip
    if validation is not None:
        out["simulator_calibration_train_val"] = _across_time(
            sim, train.concat(validation), test, leads, policies, cfg,
            "train + validation leads (diagnostic of drift; the run's simulator uses train only)",
            executor)  # fmt: skip
    out["targets"] = business_targets(out, sim.spec.targets)
    who = who_quality(sim.model, train, test, cfg.bootstrap, cfg.seed, cfg.level, test_frame, sim.config.horizon)
    out["who"] = who.to_dict()
    out["pilot"] = _pilot(sim.spec, out["policies"]["logged"]["subscription_rate"], len(test), leads_per_week)
    if with_readings:
        out["readings"] = evaluate_readings(sim, train, leads, policies["learned"], retrain, cfg, progress,
                                            executor=executor)
    out["settings"] = {
        "subscription_value": sim.reward.subscription_value,
        "action_costs": dict(zip(sim.spec.action_names, sim.reward.action_costs)),
        "funnel": sim.spec.name,
        "conversion_step": sim.spec.conversion_step,
        "first_key_step": sim.spec.key_steps[0],
        "uncertain_offer": sim.spec.uncertain_offer,
        "simulator": asdict(sim.config),
        "evaluation": asdict(cfg),
        "readings": reading_settings(READINGS) if with_readings else [],
        "test_leads": len(test),
        "train_leads": len(train),
    }
    return CRMEvaluation.from_dict(out, "CRM evaluation")


def _pilot(spec, baseline: float | None, budget: int, leads_per_week: float | None) -> dict | None:
    """The pilot at the logged process's simulated conversion rate, with the test period's leads as the budget;
    None when that rate is 0 (nothing to design from)."""
    if baseline is None or not 0 < baseline < 1:
        return None
    return design_pilot(spec, baseline, budget, leads_per_week).to_dict()


def _across_time(
    sim: FunnelSimulator,
    fit: Journeys,
    test: Journeys,
    leads: Leads,
    policies: dict[str, PolicyFn],
    cfg: EvaluationConfig,
    fitted_on: str,
    executor: Executor = SERIAL,
) -> dict:
    """Calibration on test of the same simulator refitted on the leads `fit` (e.g. train + validation, or the most
    recent train leads)."""
    refitted = refit_like(sim, fit)
    logged = {"logged": policies["logged"]}
    point = simulate_policy(refitted, leads.tile(cfg.replications), policies["logged"], cfg.seed)
    _, samples = bootstrap_policies(refitted, fit, leads, logged, cfg, None, executor)
    result = _calibration(point.rollout, test, samples, cfg.level)
    result["fitted_on"] = fitted_on
    return result


def _in_period(sim: FunnelSimulator, train: Journeys, policies: dict[str, PolicyFn], cfg: EvaluationConfig,
               label: str = "the train leads", executor: Executor = SERIAL) -> dict:  # fmt: skip
    """Calibration within the training period: the simulator refitted on a random 80% of the train leads, the
    logged process replayed on the other 20% (their covariates only) and compared with what they did — is the
    model right where the process was stable? (The test calibration asks the same across time.)"""
    held = np.random.default_rng(cfg.seed + 7).random(len(train)) < IN_PERIOD_SHARE
    fit, check = train.subset(np.flatnonzero(~held)), train.subset(np.flatnonzero(held))
    refitted = refit_like(sim, fit)
    leads = Leads(refitted.model.encode_leads(check), check.covariates, check.spec.covariates)
    point = simulate_policy(refitted, leads.tile(cfg.replications), policies["logged"], cfg.seed)
    _, samples = bootstrap_policies(refitted, fit, leads, {"logged": policies["logged"]}, cfg, None, executor)
    result = _calibration(point.rollout, check, samples, cfg.level)
    result["fitted_on"] = (f"a random {1 - IN_PERIOD_SHARE:.0%} of {label}, checked on the other "
                           f"{IN_PERIOD_SHARE:.0%} ({len(check)} leads, within the training period)")  # fmt: skip
    return result


IN_PERIOD_SHARE = 0.2


def _calibration(logged: Rollout, test: Journeys, samples: list[np.ndarray], level: float) -> dict:
    calibration_steps = (*test.spec.step_names, "dropped")
    simulated = reach_rates(logged.state, slice(None))
    actual = np.array([test.rate(step) for step in calibration_steps])
    stacked = np.vstack(samples) if samples else np.full((1, len(calibration_steps)), math.nan)
    steps = []
    for j, step in enumerate(calibration_steps):
        low, high = percentile_interval(stacked[:, j], level)
        steps.append(
            {
                "step": step,
                "simulated": float(simulated[j]),
                "actual": float(actual[j]),
                "ci": [json_number(low), json_number(high)],
                "within": bool(low <= actual[j] <= high),
            }
        )
    within = float(np.mean([s["within"] for s in steps]))
    return {
        "policy": "logged",
        "interval": "95% of the rate a test set of this size would show if the simulator were right "
        "(train refit + test-lead resampling + simulation noise)",
        "steps": steps,
        "within_ci_fraction": within,
    }


def action_flow(rollout: Rollout, action_names: tuple[str, ...]) -> dict:
    """Counts of week-to-week action transitions (for a Sankey-style diagram) and how episodes ended.

    links: {"week": w, "from": action at week w, "to": action at week w + 1 or the outcome
    ("subscribed", "dropped", "open") when the episode ended after week w, "count": n}.
    """
    actions = rollout.actions.astype(np.int64)
    n, horizon = actions.shape
    names = [*action_names, "subscribed", "dropped", "open"]
    subscribed, dropped = rollout.state.subscribed, rollout.state.dropped
    k = len(action_names)
    outcome = np.where(subscribed, k, np.where(dropped, k + 1, k + 2))
    following = np.column_stack([actions[:, 1:], np.full(n, -1)])
    target = np.where(following >= 0, following, outcome[:, None])
    week = np.broadcast_to(np.arange(horizon), actions.shape)
    alive = actions >= 0
    codes = (week[alive] * len(names) + actions[alive]) * len(names) + target[alive]
    unique, counts = np.unique(codes, return_counts=True)
    links = []
    for code, count in zip(unique.tolist(), counts.tolist()):
        rest, to = divmod(code, len(names))
        w, frm = divmod(rest, len(names))
        links.append({"week": w, "from": names[frm], "to": names[to], "count": count})
    ends = Counter(names[o] for o in outcome.tolist())
    return {"episodes": int(n), "horizon": int(horizon), "links": links, "outcomes": dict(ends)}


__all__ = ["EvaluationConfig", "evaluate_crm", "simulate_policy", "top_segments"]
