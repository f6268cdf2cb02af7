"""Offline evaluation of CRM policies on held-out leads: business metrics with bootstrap intervals
that refit the simulator, simulator calibration, top segments and the sensitivity to the one
assumption the data cannot check.

Interval recipe (per bootstrap replicate b = 1..B):
  1. resample the train leads with replacement and refit the simulator on them;
  2. resample the test leads with replacement;
  3. simulate every policy on the resampled test leads (common random numbers across policies).
The 2.5% and 97.5% percentiles of a metric over the replicates form its 95% interval, so it covers
both the simulator's estimation error and the sampling of test leads.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from nextbest.agents.baselines import make_baseline
from nextbest.evaluation.crm_pilot import design_pilot
from nextbest.evaluation.crm_results import CRMEvaluation
from nextbest.evaluation.crm_who import who_quality
from nextbest.evaluation.metrics import METRICS, business_metrics, json_number, ratio
from nextbest.sim.funnel import STAGES, FunnelConfig, FunnelSimulator, refit_like
from nextbest.sim.journeys import Journeys
from nextbest.sim.rollout import PolicyFn, Rollout, run_episodes
from nextbest.stats import mean_interval, percentile_interval


@dataclass
class EvaluationConfig:
    """How much simulation the evaluation spends, and its seed."""

    replications: int = 20
    bootstrap: int = 200
    bootstrap_replications: int = 3
    level: float = 0.95
    segment_min_support: int = 30
    sensitivity_rates: tuple[float, ...] = (1.0, 0.5, 0.25)
    seed: int = 0


@dataclass
class _Leads:
    codes: np.ndarray  # (n, C) covariate codes
    names: np.ndarray  # (n, C) pooled category names
    covariates: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.codes.shape[0])

    def take(self, index: np.ndarray) -> _Leads:
        return _Leads(self.codes[index], self.names[index], self.covariates)

    def tile(self, times: int) -> np.ndarray:
        return np.tile(self.codes, (times, 1))


@dataclass
class PolicyRun:
    """Simulated episodes of one policy on tiled test leads."""

    rollout: Rollout
    metrics: dict[str, float]


def simulate_policy(sim: FunnelSimulator, codes: np.ndarray, policy: PolicyFn, seed: int) -> PolicyRun:
    """Run `policy` on the leads with covariate codes (n, C); the same seed gives every policy the same draws.

    first_call_rate is the rate of the spec's first key step (SalesCRM: the first call)."""
    rng = np.random.default_rng(seed)
    state = sim.reset(codes, rng)
    rollout = run_episodes(sim, state, policy, rng)
    metrics = business_metrics(
        rollout.state.subscribed, rollout.state.key[:, 0], rollout.state.cost, sim.reward.subscription_value
    )
    return PolicyRun(rollout, metrics)


def evaluate_crm(
    sim: FunnelSimulator,
    train: Journeys,
    test: Journeys,
    policies: dict[str, PolicyFn],
    config: EvaluationConfig | None = None,
    retrain: Callable[[FunnelSimulator], PolicyFn] | None = None,
    progress: Callable[[int], None] | None = None,
    validation: Journeys | None = None,
) -> CRMEvaluation:
    """The evaluation of the CRM use case (`CRMEvaluation`, written as evaluation.json).

    `policies` must contain "learned", "random" and "logged"; `retrain(sim)` trains a fresh learned
    policy on another simulator, for the sensitivity table (skipped when None). With `validation`,
    the calibration is also measured for a simulator fitted on train + validation leads: a
    diagnostic of drift between the periods, never used for the policy metrics.
    """
    cfg = config or EvaluationConfig()
    leads = _Leads(sim.model.encode_leads(test), test.covariates, test.spec.covariates)
    point = {
        name: simulate_policy(sim, leads.tile(cfg.replications), policy, cfg.seed) for name, policy in policies.items()
    }
    samples, calibration_samples = _bootstrap(sim, train, leads, policies, cfg, progress)
    out: dict = {"policies": {}}
    for name, run in point.items():
        entry = {}
        for metric in METRICS:
            entry[metric] = json_number(run.metrics[metric])
            entry[f"{metric}_ci"] = [json_number(v) for v in percentile_interval(samples[name][metric], cfg.level)]
        out["policies"][name] = entry
    for baseline in ("random", "logged"):
        out[f"improvement_vs_{baseline}"] = _improvement(point, samples, baseline, cfg.level)
    out["action_flows"] = {name: action_flow(run.rollout, sim.spec.action_names) for name, run in point.items()}
    out["top_segments"] = top_segments(
        point["learned"].rollout, leads, cfg.replications, cfg.segment_min_support, sim.spec.action_names
    )
    out["simulator_calibration"] = _calibration(point["logged"].rollout, test, calibration_samples, cfg.level)
    out["calibration"] = {"in_period": _in_period(sim, train, policies, cfg),
                          "across_time": out["simulator_calibration"]}  # fmt: skip
    if validation is not None:
        out["simulator_calibration_train_val"] = _drift_diagnostic(sim, train, validation, test, leads, policies, cfg)
    out["targets"] = _targets(out, sim.spec.targets)
    out["who"] = who_quality(sim.model, train, test, cfg.bootstrap, cfg.seed, cfg.level).to_dict()
    out["pilot"] = _pilot(sim.spec, out["policies"]["logged"]["subscription_rate"], len(test))
    if retrain is not None:
        out["sensitivity"] = _sensitivity(sim, train, leads, policies, retrain, cfg)
    out["settings"] = {
        "subscription_value": sim.reward.subscription_value,
        "action_costs": dict(zip(sim.spec.action_names, sim.reward.action_costs)),
        "funnel": sim.spec.name,
        "conversion_step": sim.spec.conversion_step,
        "first_key_step": sim.spec.key_steps[0],
        "uncertain_offer": sim.spec.uncertain_offer,
        "simulator": asdict(sim.config),
        "evaluation": asdict(cfg),
        "test_leads": len(test),
        "train_leads": len(train),
    }
    return CRMEvaluation.from_dict(out, "CRM evaluation")


def _pilot(spec, baseline: float | None, budget: int) -> dict | None:
    """The pilot at the logged process's simulated conversion rate, with the test period's leads as the budget;
    None when that rate is 0 (nothing to design from)."""
    if baseline is None or not 0 < baseline < 1:
        return None
    return design_pilot(spec, baseline, budget).to_dict()


def _bootstrap(
    sim: FunnelSimulator,
    train: Journeys,
    leads: _Leads,
    policies: dict[str, PolicyFn],
    cfg: EvaluationConfig,
    progress: Callable[[int], None] | None,
) -> tuple[dict[str, dict[str, list[float]]], list[np.ndarray]]:
    rng = np.random.default_rng(cfg.seed + 1)
    samples = {name: {m: [] for m in (*METRICS, "ratio_to_random", "ratio_to_logged")} for name in policies}
    calibration: list[np.ndarray] = []
    n_test = len(leads)
    for b in range(cfg.bootstrap):
        twin = refit_like(sim, train.subset(rng.integers(0, len(train), size=len(train))))
        resampled = leads.take(rng.integers(0, n_test, size=n_test))
        runs = {
            name: simulate_policy(twin, resampled.tile(cfg.bootstrap_replications), policy, cfg.seed + 1000 + b)
            for name, policy in policies.items()
        }
        for name, run in runs.items():
            for metric in METRICS:
                samples[name][metric].append(run.metrics[metric])
            for baseline in ("random", "logged"):
                if baseline in runs:
                    value = ratio(run.metrics["subscription_rate"], runs[baseline].metrics["subscription_rate"])
                    samples[name][f"ratio_to_{baseline}"].append(value)
        if "logged" in runs:
            first = runs["logged"].rollout.state
            calibration.append(_reach_rates(first, slice(0, n_test)))
        if progress is not None:
            progress(1)
    return samples, calibration


def _drift_diagnostic(
    sim: FunnelSimulator,
    train: Journeys,
    validation: Journeys,
    test: Journeys,
    leads: _Leads,
    policies: dict[str, PolicyFn],
    cfg: EvaluationConfig,
) -> dict:
    """Calibration on test of the same simulator fitted on train + validation leads."""
    both = train.concat(validation)
    refitted = refit_like(sim, both)
    logged = {"logged": policies["logged"]}
    point = simulate_policy(refitted, leads.tile(cfg.replications), policies["logged"], cfg.seed)
    _, samples = _bootstrap(refitted, both, leads, logged, cfg, None)
    result = _calibration(point.rollout, test, samples, cfg.level)
    result["fitted_on"] = "train + validation leads (diagnostic of drift; the run's simulator uses train only)"
    return result


def _in_period(sim: FunnelSimulator, train: Journeys, policies: dict[str, PolicyFn], cfg: EvaluationConfig) -> dict:
    """Calibration within the training period: the simulator refitted on a random 80% of the train leads, the
    logged process replayed on the other 20% (their covariates only) and compared with what they did — is the
    model right where the process was stable? (The test calibration asks the same across time.)"""
    held = np.random.default_rng(cfg.seed + 7).random(len(train)) < IN_PERIOD_SHARE
    fit, check = train.subset(np.flatnonzero(~held)), train.subset(np.flatnonzero(held))
    refitted = refit_like(sim, fit)
    leads = _Leads(refitted.model.encode_leads(check), check.covariates, check.spec.covariates)
    point = simulate_policy(refitted, leads.tile(cfg.replications), policies["logged"], cfg.seed)
    _, samples = _bootstrap(refitted, fit, leads, {"logged": policies["logged"]}, cfg, None)
    result = _calibration(point.rollout, check, samples, cfg.level)
    result["fitted_on"] = (f"a random {1 - IN_PERIOD_SHARE:.0%} of the train leads, checked on the other "
                           f"{IN_PERIOD_SHARE:.0%} ({len(check)} leads, within the training period)")  # fmt: skip
    return result


IN_PERIOD_SHARE = 0.2


def _reach_rates(state, rows: slice) -> np.ndarray:
    reached = state.reached[rows]
    return np.append(reached.mean(axis=0), state.dropped[rows].mean())


def _improvement(point: dict[str, PolicyRun], samples: dict, baseline: str, level: float) -> dict:
    if baseline not in point:
        return {"factor": None, "ci": [None, None]}
    factor = ratio(point["learned"].metrics["subscription_rate"], point[baseline].metrics["subscription_rate"])
    interval = percentile_interval(samples["learned"][f"ratio_to_{baseline}"], level)
    return {
        "metric": "subscription_rate ratio",
        "factor": json_number(factor),
        "ci": [json_number(v) for v in interval],
    }


def _calibration(logged: Rollout, test: Journeys, samples: list[np.ndarray], level: float) -> dict:
    calibration_steps = (*test.spec.step_names, "dropped")
    simulated = _reach_rates(logged.state, slice(None))
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


def top_segments(
    rollout: Rollout,
    leads: _Leads,
    replications: int,
    min_support: int,
    action_names: tuple[str, ...],
    k: int = 3,
) -> list[dict]:
    """Covariates × stage segments (SalesCRM: country × education × stage) with the highest value-to-go.

    A lead-episode enters a segment the first week it is in a stage; its value-to-go is the business
    value from that week to the end. Segments need `min_support` distinct test leads (episodes are
    `replications` copies of each lead); the top k by mean value. Each segment names its covariate values
    under the covariates' names.
    """
    names = np.tile(leads.names, (replications, 1))
    to_go = np.cumsum(rollout.rewards[:, ::-1], axis=1)[:, ::-1]
    groups: dict[tuple[str, ...], list[tuple[float, tuple[str, ...], int]]] = {}
    n_leads = len(leads)
    for stage_code in range(len(STAGES)):
        at = rollout.stages == stage_code
        first_week = np.where(at.any(axis=1), np.argmax(at, axis=1), -1)
        for i in np.flatnonzero(first_week >= 0):
            week = first_week[i]
            plan = tuple(action_names[a] for a in rollout.actions[i, week:] if a >= 0)
            key = (*(str(v) for v in names[i]), STAGES[stage_code])
            groups.setdefault(key, []).append((float(to_go[i, week]), plan, int(i % n_leads)))
    ranked = []
    for key, entries in groups.items():
        distinct = len({lead for _, _, lead in entries})
        if distinct < min_support:
            continue
        values = np.array([v for v, _, _ in entries])
        sequences = Counter(_compact(plan) for _, plan, _ in entries).most_common(3)
        ranked.append(
            {
                **dict(zip(leads.covariates, key[:-1], strict=True)),
                "stage": key[-1],
                "value_per_lead": float(values.mean()),
                "value_ci": [float(v) for v in _mean_interval(values)],
                "episodes": len(entries),
                "leads": distinct,
                "action_sequences": [
                    {"sequence": list(seq), "share": count / len(entries)} for seq, count in sequences
                ],
            }
        )
    ranked.sort(key=lambda s: s["value_per_lead"], reverse=True)
    return ranked[:k]


def _compact(plan: tuple[str, ...]) -> tuple[str, ...]:
    """Action plan with trailing waits collapsed (…, wait × k → …, wait)."""
    trimmed = list(plan)
    while len(trimmed) > 1 and trimmed[-1] == "wait" and trimmed[-2] == "wait":
        trimmed.pop()
    return tuple(trimmed)


def _mean_interval(values: np.ndarray) -> tuple[float, float]:
    interval = mean_interval(values)
    return interval.low, interval.high


def _targets(out: dict, targets: dict[str, float]) -> dict:
    """The funnel spec's business targets (``[targets]``), each with the value reached and whether it is met."""
    learned, random = out["policies"]["learned"], out["policies"]["random"]

    def factor(metric: str) -> float | None:
        value = ratio(learned[metric] or 0.0, random[metric] or 0.0)
        return json_number(value)

    cpa_l, cpa_r = learned["cost_per_acquisition"], random["cost_per_acquisition"]
    values = {
        "subscription_rate": learned["subscription_rate"],
        "subscription_factor_vs_random": factor("subscription_rate"),
        "first_call_factor_vs_random": factor("first_call_rate"),
        "cpa_reduction_vs_random": json_number(1.0 - cpa_l / cpa_r) if cpa_l is not None and cpa_r else None,
        "improvement_vs_random_lower_bound": out["improvement_vs_random"]["ci"][0],
        "roi": learned["roi"],
    }
    result = {}
    for name, target in targets.items():
        value = values[name]
        if name == "roi":
            result[name] = {"value": value, "target": f"> {target:g}", "met": value is not None and value > target}
        else:
            result[name] = {"value": value, "target": f">= {target:g}", "met": value is not None and value >= target}
    return result


def _sensitivity(
    sim: FunnelSimulator,
    train: Journeys,
    leads: _Leads,
    policies: dict[str, PolicyFn],
    retrain: Callable[[FunnelSimulator], PolicyFn],
    cfg: EvaluationConfig,
) -> list[dict]:
    """Point metrics when the logged offer rate of the spec's uncertain step (SalesCRM: the call; the untestable
    assumption) takes other values; skipped (empty) when the spec names no uncertain step."""
    if sim.spec.uncertain_offer is None:
        return []

    rows = []
    for rate in cfg.sensitivity_rates:
        config = FunnelConfig(**{**asdict(sim.config), "call_offer_rate": rate})
        variant = refit_like(sim, train, config=config)
        variant_policies = {
            "learned": retrain(variant),
            "random": policies["random"],
            "logged": make_baseline("logged", config, sim.layout),
        }
        row: dict = {"call_offer_rate": rate}
        for name, policy in variant_policies.items():
            metrics = simulate_policy(variant, leads.tile(cfg.replications), policy, cfg.seed).metrics
            row[name] = {m: json_number(metrics[m]) for m in METRICS}
        rows.append(row)
    return rows


__all__ = ["EvaluationConfig", "evaluate_crm", "simulate_policy", "top_segments"]
