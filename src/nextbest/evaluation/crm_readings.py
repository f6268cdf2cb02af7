"""WHAT actions lead to conversions, under each reading of the data: the part the export cannot tell, as a range.

The export records which steps each lead reached, never which were offered. How far a company action can move a
step's rate depends on which leads the logged process offered it, and the data fit every answer equally well. A
**reading** fixes it for every company step with one dial d in [0, 1] (`FunnelConfig.offer_dial`):

    P(offered j | s) = P(j | s)^d,     P(takes j | offered, s) = P(j | s)^(1 − d)

so their product, the logged rate P(j | s), and with it the replay of the logged process and the calibration,
are the same under every reading; what changes is what an offer the logged process did not make would do.

* d = 0, **conservative** (the default simulator): every lead was offered every step, so no action raises a step's
  rate above its logged rate; a policy can only choose when and whom to contact, and the cost.
* d = 1, **optimistic** (what the seed projects assume implicitly): the company's actions caused the steps seen
  after them (only the leads who took a step were offered it; an offer is always taken), and the steps a lead
  visited cause the later rates they are associated with (the funnel model's key-step evidence, read as causal).
* d = 0.5, **middle**: offer and acceptance are equally likely, both sqrt(P(j | s)).

Under each reading: the learned policy retrained in that simulator (the run's own policy when the run was trained
under the same reading); its metrics and the random and logged processes' with the main evaluation's bootstrap
intervals; the spec's business targets; the action sequences of the top segments; the break-even conversion value
of each action; and the learned policy retrained at other conversion values (the value is not in the data).

Break-even value of action a: the logged process with a made to every lead at its planned week ("with"; the other
offers as the reading says the logged process made them) against the same process with a replaced by waiting
("without"), common random numbers, per lead:

    V*_a = max(Δcost, 0) / Δconversions,   Δ = with a − without a

None when a adds no conversion under the reading (it never pays at any value). Its interval divides Δcost by the
bootstrap interval of Δconversions; an interval reaching 0 has no upper bound (None).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import numpy as np

from nextbest.agents.baselines import make_baseline
from nextbest.evaluation.crm_bootstrap import (
    EvaluationConfig,
    Leads,
    PolicyRun,
    bootstrap_policies,
    business_targets,
    improvement,
    policy_entries,
    simulate_policy,
    top_segments,
)
from nextbest.evaluation.metrics import json_number
from nextbest.parallel import SERIAL, Executor
from nextbest.sim.funnel import FunnelSimulator, expected_logged_offers, exposed_to, under_reading, variant
from nextbest.sim.journeys import Journeys
from nextbest.sim.rollout import PolicyFn
from nextbest.stats import percentile_interval


@dataclass(frozen=True)
class Reading:
    """A named reading of the data: the dial d from conservative (0) to optimistic (1)."""

    name: str
    dial: float

    def simulator(self, sim: FunnelSimulator, train: Journeys) -> FunnelSimulator:
        """`sim` under this reading (`nextbest.sim.funnel.under_reading`)."""
        return under_reading(sim, train, self.dial)


def mean_offer_rates(sim: FunnelSimulator, train: Journeys) -> dict[str, float]:
    """Per company step, the mean P(offered | s) = P(j | s)^d over the train leads exposed to it, under `sim`'s
    reading d; empty for the conservative reading (every step offered to every lead)."""
    dial = sim.config.offer_dial
    if dial <= 0:
        return {}
    names = sim.spec.step_names
    offers = expected_logged_offers(sim, train, dial)
    shares = {step: float(exposed_to(sim, train, names.index(step)).mean()) for step in offers}
    return {step: value / shares[step] for step, value in offers.items() if shares[step] > 0}


READINGS: tuple[Reading, ...] = (Reading("conservative", 0.0), Reading("middle", 0.5), Reading("optimistic", 1.0))

#: A function training a fresh learned policy in a simulator (the evaluation's retrain).
Retrain = Callable[[FunnelSimulator], PolicyFn]


class _Without:
    """The logged process with one action replaced by waiting."""

    def __init__(self, policy: PolicyFn, action: int, wait: int) -> None:
        self.policy, self.action, self.wait = policy, action, wait

    def __call__(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        actions = np.asarray(self.policy(obs, rng))
        return np.where(actions == self.action, self.wait, actions)


def evaluate_readings(
    sim: FunnelSimulator,
    train: Journeys,
    leads: Leads,
    learned: PolicyFn,
    retrain: Retrain | None,
    cfg: EvaluationConfig,
    progress: Callable[[int], None] | None = None,
    readings: tuple[Reading, ...] = READINGS,
    executor: Executor = SERIAL,
) -> dict[str, dict]:
    """``readings.<name>`` of evaluation.json for every reading (see the module docstring).

    `learned` is the run's policy, used for a reading whose offer rates equal the run's; other readings retrain
    with `retrain` (skipped when None, which also skips the value sensitivity)."""
    out = {}
    for reading in readings:
        twin = reading.simulator(sim, train)
        if twin.config == sim.config:
            policy, origin = learned, "the run's policy (trained under this reading)"
        elif retrain is not None:
            policy, origin = None, "retrained in this reading's simulator"
        else:
            continue
        policy = policy if policy is not None else retrain(twin)
        out[reading.name] = _one_reading(twin, train, leads, policy, cfg, progress, executor)
        out[reading.name].update(dial=reading.dial, offer_rates=mean_offer_rates(twin, train), learned_policy=origin)
        if retrain is not None:
            out[reading.name]["value_sensitivity"] = value_sensitivity(twin, leads, retrain, cfg, policy, executor)
    return out


def _one_reading(
    twin: FunnelSimulator,
    train: Journeys,
    leads: Leads,
    learned: PolicyFn,
    cfg: EvaluationConfig,
    progress: Callable[[int], None] | None,
    executor: Executor = SERIAL,
) -> dict:
    layout = twin.layout
    logged = make_baseline("logged", twin.config, layout, twin.logged_offer_probability)
    policies: dict[str, PolicyFn] = {
        "learned": learned,
        "random": make_baseline("random", twin.config, layout),
        "logged": logged,
    }
    contacts = [a for a in range(twin.n_actions) if a != layout.wait]
    for action in contacts:
        made = _made_to_every_lead(twin, action)
        policies[_with(twin, action)] = made
        policies[_without(twin, action)] = _Without(made, action, layout.wait)
    point = {name: simulate_policy(twin, leads.tile(cfg.replications), p, cfg.seed) for name, p in policies.items()}
    samples, _ = bootstrap_policies(twin, train, leads, policies, cfg, progress, executor)
    shown = ("learned", "random", "logged")
    out: dict = {"policies": policy_entries({name: point[name] for name in shown}, samples, cfg.level)}
    for baseline in ("random", "logged"):
        out[f"improvement_vs_{baseline}"] = improvement(point, samples, baseline, cfg.level)
    out["targets"] = business_targets(out, twin.spec.targets)
    out["top_segments"] = top_segments(
        point["learned"].rollout, leads, cfg.replications, cfg.segment_min_support, twin.spec.action_names
    )
    value = twin.reward.subscription_value
    out["break_even"] = {
        twin.spec.action_names[a]: break_even(point[_with(twin, a)], point[_without(twin, a)],
                                              samples[_with(twin, a)], samples[_without(twin, a)], value, cfg.level)
        for a in contacts
    }  # fmt: skip
    return out


def _made_to_every_lead(twin: FunnelSimulator, action: int) -> PolicyFn:
    """The logged process with `action`'s offers made to every lead at their planned weeks."""
    made = set(twin.layout.offers(action))

    def offer(obs: np.ndarray, step: int) -> np.ndarray:
        return np.ones(obs.shape[0]) if step in made else twin.logged_offer_probability(obs, step)

    return make_baseline("logged", twin.config, twin.layout, offer)


def _with(sim: FunnelSimulator, action: int) -> str:
    return f"logged_with_{sim.spec.action_names[action]}"


def _without(sim: FunnelSimulator, action: int) -> str:
    return f"logged_without_{sim.spec.action_names[action]}"


def _cost_per_lead(metrics: dict[str, float], value: float) -> float:
    """Spend per lead, from the metrics: V · conversion rate − value per lead."""
    return value * metrics["subscription_rate"] - metrics["value_per_lead"]


def break_even(
    with_run: PolicyRun,
    without_run: PolicyRun,
    with_samples: dict[str, list[float]],
    without_samples: dict[str, list[float]],
    value: float,
    level: float,
) -> dict:
    """The break-even conversion value of an action (module docstring), with the added conversions and spend per
    1,000 leads and their bootstrap intervals."""
    added = with_run.metrics["subscription_rate"] - without_run.metrics["subscription_rate"]
    spend = _cost_per_lead(with_run.metrics, value) - _cost_per_lead(without_run.metrics, value)
    replicate_added = np.subtract(with_samples["subscription_rate"], without_samples["subscription_rate"])
    low, high = percentile_interval(replicate_added, level)
    cost = max(spend, 0.0)
    return {
        "value": json_number(cost / added) if added > 0 else None,
        "value_ci": [json_number(cost / high) if high > 0 else None, json_number(cost / low) if low > 0 else None],
        "conversions_per_1000": 1000.0 * added,
        "conversions_per_1000_ci": [json_number(1000.0 * low), json_number(1000.0 * high)],
        "spend_per_1000": 1000.0 * spend,
    }


def value_sensitivity(
    twin: FunnelSimulator,
    leads: Leads,
    retrain: Retrain,
    cfg: EvaluationConfig,
    learned: PolicyFn | None = None,
    executor: Executor = SERIAL,
) -> list[dict]:
    """The learned policy retrained at each conversion value V × m (m in ``cfg.value_multiples``) in this reading's
    simulator, on the business reward: its conversion and first-key-step rates, spend and value per lead, and the
    share of its weeks per action (point estimates, common random numbers). `learned`, the reading's policy, is
    reused at m = 1 when it was trained on the business reward. The retrains run on `executor`."""
    return executor.map(_valued_row, list(cfg.value_multiples), (twin, leads, retrain, cfg, learned))


def _valued_row(context: tuple, multiple: float) -> dict:
    """One row of the value sensitivity: the policy (re)trained at conversion value V × `multiple`, simulated."""
    twin, leads, retrain, cfg, learned = context
    base = twin.reward.subscription_value
    valued = variant(twin, reward=replace(twin.reward, subscription_value=base * multiple, shaped=False))
    reuse = multiple == 1.0 and learned is not None and not twin.reward.shaped
    policy = learned if reuse else retrain(valued)
    run = simulate_policy(valued, leads.tile(cfg.replications), policy, cfg.seed)
    taken = run.rollout.actions[run.rollout.actions >= 0]
    counts = np.bincount(taken, minlength=twin.n_actions)
    return {
        "subscription_value": base * multiple,
        "subscription_rate": run.metrics["subscription_rate"],
        "first_call_rate": run.metrics["first_call_rate"],
        "spend_per_lead": _cost_per_lead(run.metrics, base * multiple),
        "value_per_lead": run.metrics["value_per_lead"],
        "action_shares": {
            name: float(c / max(taken.size, 1)) for name, c in zip(twin.spec.action_names, counts.tolist())
        },
    }


def reading_settings(readings: tuple[Reading, ...] = READINGS) -> list[dict]:
    """The readings as settings (name and dial), for evaluation.json."""
    return [asdict(r) for r in readings]


__all__ = ["READINGS", "Reading", "break_even", "evaluate_readings", "value_sensitivity"]
