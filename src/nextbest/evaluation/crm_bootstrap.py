"""The simulation engine of the CRM evaluation: policies on held-out leads, their bootstrap, the metrics with
intervals and the spec's business targets — shared by the main evaluation (`nextbest.evaluation.crm`) and the
readings of the data (`nextbest.evaluation.crm_readings`).

Interval recipe (per bootstrap replicate b = 1..B):
  1. resample the train leads with replacement and refit the simulator on them;
  2. resample the test leads with replacement;
  3. simulate every policy on the resampled test leads (common random numbers across policies).
The 2.5% and 97.5% percentiles of a metric over the replicates form its 95% interval, so it covers
both the simulator's estimation error and the sampling of test leads.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nextbest.evaluation.metrics import METRICS, business_metrics, json_number, ratio
from nextbest.parallel import SERIAL, Executor
from nextbest.sim.funnel import STAGES, FunnelSimulator, refit_like
from nextbest.sim.journeys import Journeys
from nextbest.sim.rollout import PolicyFn, Rollout, run_episodes
from nextbest.stats import mean_interval, percentile_interval


@dataclass
class EvaluationConfig:
    """How much simulation the evaluation spends, and its seed. ``value_multiples``: the conversion values (× the
    spec's) the learned policy is retrained at under each reading, for the value-sensitivity chart."""

    replications: int = 20
    bootstrap: int = 200
    bootstrap_replications: int = 3
    level: float = 0.95
    segment_min_support: int = 30
    value_multiples: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0)
    seed: int = 0


@dataclass
class Leads:
    """Held-out leads as the simulator starts them: covariate codes and their category names."""

    codes: np.ndarray  # (n, C) covariate codes
    names: np.ndarray  # (n, C) pooled category names
    covariates: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.codes.shape[0])

    def take(self, index: np.ndarray) -> Leads:
        return Leads(self.codes[index], self.names[index], self.covariates)

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


def bootstrap_policies(
    sim: FunnelSimulator,
    train: Journeys,
    leads: Leads,
    policies: dict[str, PolicyFn],
    cfg: EvaluationConfig,
    progress: Callable[[int], None] | None,
    executor: Executor = SERIAL,
) -> tuple[dict[str, dict[str, list[float]]], list[np.ndarray]]:
    """Per policy and metric, its values over ``cfg.bootstrap`` replicates (see the module's recipe), with the
    conversion-rate ratios to "random" and "logged" when those run; and per replicate the logged process's
    reach rate of every step (for the calibration).

    Every replicate's resampling indices are drawn here, in replicate order from one generator, so `executor`
    (serial, local processes or a Ray cluster) changes where the replicates run, never their numbers."""
    rng = np.random.default_rng(cfg.seed + 1)
    n_train, n_test = len(train), len(leads)
    draws = [(b, rng.integers(0, n_train, size=n_train), rng.integers(0, n_test, size=n_test))
             for b in range(cfg.bootstrap)]  # fmt: skip
    replicates = executor.map(_replicate, draws, (sim, train, leads, policies, cfg), progress)
    samples = {name: {m: [] for m in (*METRICS, "ratio_to_random", "ratio_to_logged")} for name in policies}
    calibration: list[np.ndarray] = []
    for metrics, reach in replicates:
        for name, values in metrics.items():
            for metric in METRICS:
                samples[name][metric].append(values[metric])
            for baseline in ("random", "logged"):
                if baseline in metrics:
                    value = ratio(values["subscription_rate"], metrics[baseline]["subscription_rate"])
                    samples[name][f"ratio_to_{baseline}"].append(value)
        if reach is not None:
            calibration.append(reach)
    return samples, calibration


def _replicate(context: tuple, draw: tuple[int, np.ndarray, np.ndarray]) -> tuple[dict, np.ndarray | None]:
    """One bootstrap replicate: refit on the resampled train leads, simulate every policy on the resampled test
    leads; each policy's metrics, and the logged process's reach rates (None without "logged")."""
    sim, train, leads, policies, cfg = context
    b, train_rows, test_rows = draw
    twin = refit_like(sim, train.subset(train_rows))
    codes = leads.take(test_rows).tile(cfg.bootstrap_replications)
    runs = {name: simulate_policy(twin, codes, policy, cfg.seed + 1000 + b) for name, policy in policies.items()}
    reach = reach_rates(runs["logged"].rollout.state, slice(0, len(leads))) if "logged" in runs else None
    return {name: run.metrics for name, run in runs.items()}, reach


def reach_rates(state, rows: slice) -> np.ndarray:
    """Share of the leads at `rows` that reached each step, then the share that dropped out."""
    reached = state.reached[rows]
    return np.append(reached.mean(axis=0), state.dropped[rows].mean())


def policy_entries(point: dict[str, PolicyRun], samples: dict, level: float) -> dict[str, dict]:
    """Per policy, each of ``METRICS`` at the point run with its ``<metric>_ci`` bootstrap interval."""
    out = {}
    for name, run in point.items():
        entry = {}
        for metric in METRICS:
            entry[metric] = json_number(run.metrics[metric])
            entry[f"{metric}_ci"] = [json_number(v) for v in percentile_interval(samples[name][metric], level)]
        out[name] = entry
    return out


def improvement(point: dict[str, PolicyRun], samples: dict, baseline: str, level: float) -> dict:
    """Learned ÷ `baseline` conversion rate with its bootstrap interval (factor None when the baseline is absent)."""
    if baseline not in point:
        return {"factor": None, "ci": [None, None]}
    factor = ratio(point["learned"].metrics["subscription_rate"], point[baseline].metrics["subscription_rate"])
    interval = percentile_interval(samples["learned"][f"ratio_to_{baseline}"], level)
    return {
        "metric": "subscription_rate ratio",
        "factor": json_number(factor),
        "ci": [json_number(v) for v in interval],
    }


def business_targets(out: dict, targets: dict[str, float]) -> dict:
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


#: The keys of a `top_segments` entry besides the segment's covariate values.
SEGMENT_FIELDS = frozenset({"stage", "value_per_lead", "value_ci", "episodes", "leads", "action_sequences"})


def top_segments(
    rollout: Rollout,
    leads: Leads,
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
