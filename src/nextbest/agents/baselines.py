"""Baseline sales policies for any funnel spec: random, always-wait, the logged process, and a playbook rule.

Each keeps the one policy contract (``nextbest.policies``): ``choose(obs, rng)`` gives the actions on a batch of
observations (see `FunnelSimulator.observe` and `FunnelLayout.columns`) and the probability of each; calling the
policy gives the actions alone, like every learned policy.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from nextbest.errors import NextbestError
from nextbest.policies import Decision, Policy
from nextbest.policies.contract import deterministic
from nextbest.sim.funnel import FunnelConfig, FunnelLayout, step_offer_rates
from nextbest.sim.journeys import SPEC


def logged_sequence(layout: FunnelLayout) -> tuple[int, ...]:
    """The logged sales process read off the data: each company step's action once, in funnel order
    (SalesCRM: three e-mails, call, demo, survey, manager), then waiting for the lead (docs/crm_funnel.md)."""
    offered_by = {step: action for action in range(len(layout.spec.actions)) for step in layout.offers(action)}
    return tuple(offered_by[i] for i, step in enumerate(layout.spec.steps) if step.taken_by == "company")


def _week(obs: np.ndarray, layout: FunnelLayout, horizon: int) -> np.ndarray:
    """Weeks since the lead entered the CRM."""
    return np.rint(obs[:, layout.column("weeks since entry")] * horizon).astype(np.int64)


class _FunnelBaseline(Policy):
    def __init__(self, config: FunnelConfig | None = None, layout: FunnelLayout | None = None) -> None:
        self.config = config or FunnelConfig()
        self.layout = layout or FunnelLayout(SPEC)
        self.n_actions = len(self.layout.spec.actions)


class RandomPolicy(_FunnelBaseline):
    """Uniformly random action each week (probability 1/actions each)."""

    name = "random"

    def choose(self, obs: np.ndarray, rng: np.random.Generator | None = None) -> Decision:
        n = obs.shape[0]
        actions = rng.integers(0, self.n_actions, size=n).astype(np.int64)
        return Decision(actions, np.full(n, 1.0 / self.n_actions), np.full((n, self.n_actions), 1.0 / self.n_actions))


class AlwaysWaitPolicy(_FunnelBaseline):
    """Never contact the lead."""

    name = "always_wait"

    def choose(self, obs: np.ndarray, rng: np.random.Generator | None = None) -> Decision:
        return deterministic(np.full(obs.shape[0], self.layout.wait), self.n_actions)


#: P(the logged process offered a step to each lead), from their observations: (obs, step index) → (n,).
OfferProbability = Callable[[np.ndarray, int], np.ndarray]


class LoggedPolicy(_FunnelBaseline):
    """The behaviour policy: the logged process, each offer once in funnel order, then wait.

    Each week's planned offer is made with the probability the simulator assumes for its step: `offer(obs, step)`
    when given (`FunnelSimulator.logged_offer_probability`, which a reading of the data needs), else the
    constant `step_offer_rates` (1.0 but for the uncertain offer, SalesCRM's call). A lead not offered it is left
    alone that week.
    """

    name = "logged"

    def __init__(self, config: FunnelConfig | None = None, layout: FunnelLayout | None = None,
                 offer: OfferProbability | None = None) -> None:  # fmt: skip
        super().__init__(config, layout)
        if offer is None and self.config.offer_dial > 0:
            raise NextbestError("the logged process under a reading of the data (offer_dial > 0) needs the "
                                "simulator's offer probability: make_baseline('logged', ..., offer=...)")  # fmt: skip
        self._sequence = np.asarray(logged_sequence(self.layout), dtype=np.int64)
        spec = self.layout.spec
        self._steps = [i for i, step in enumerate(spec.steps) if step.taken_by == "company"]  # week's planned step
        self._rates = step_offer_rates(self.config, spec)[self._steps]
        self._offer = offer

    def _offer_rate(self, obs: np.ndarray, position: np.ndarray, in_plan: np.ndarray) -> np.ndarray:
        rate = np.where(in_plan, self._rates[position], 1.0)
        if self._offer is None:
            return rate
        for j in np.unique(position[in_plan]).tolist():
            rows = np.flatnonzero(in_plan & (position == j))
            rate[rows] = self._offer(obs[rows], self._steps[j])
        return rate

    def choose(self, obs: np.ndarray, rng: np.random.Generator | None = None) -> Decision:
        """The planned offer with its offer rate r, else wait with 1 - r (a planned wait has probability 1)."""
        week = _week(obs, self.layout, self.config.horizon)
        wait = self.layout.wait
        position = np.minimum(week, self._sequence.size - 1)
        in_plan = week < self._sequence.size
        planned = np.where(in_plan, self._sequence[position], wait)
        rate = self._offer_rate(obs, position, in_plan)
        offered = rng.random(obs.shape[0]) < rate
        actions = np.where(offered, planned, wait).astype(np.int64)
        rows = np.arange(actions.size)
        distribution = np.zeros((actions.size, self.n_actions))
        distribution[rows, wait] = 1.0 - rate
        distribution[rows, planned] += rate
        return Decision(actions, distribution[rows, actions], distribution)


class RulePolicy(_FunnelBaseline):
    """A sales playbook: the non-key offers first, one a week (SalesCRM: the three e-mails); then the company's
    key steps in funnel order: the first once, the week after the opening (SalesCRM: the call in week 4), each later
    one every week once all before it were taken (SalesCRM: demo, survey, manager while the lead keeps saying
    yes); wait otherwise."""

    name = "rule"

    def choose(self, obs: np.ndarray, rng: np.random.Generator | None = None) -> Decision:
        return deterministic(self._actions(obs), self.n_actions)

    def _actions(self, obs: np.ndarray) -> np.ndarray:
        layout, spec = self.layout, self.layout.spec
        sequence = logged_sequence(layout)
        key = set(spec.key_steps)
        company = [i for i, step in enumerate(spec.steps) if step.taken_by == "company"]
        opening = [sequence[j] for j, i in enumerate(company) if spec.steps[i].name not in key]
        escalation = [(i, sequence[j]) for j, i in enumerate(company) if spec.steps[i].name in key]
        week = _week(obs, layout, self.config.horizon)
        action = np.full(obs.shape[0], layout.wait, dtype=np.int64)
        for j, planned in enumerate(opening):
            action = np.where(week == j, planned, action)
        start = len(opening)
        had_previous = np.ones(obs.shape[0], dtype=bool)
        for n, (step, planned) in enumerate(escalation):
            had = obs[:, layout.column(f"had {spec.step_names[step]}")] > 0.5
            allowed = (week == start) if n == 0 else (week > start) & had_previous
            action = np.where(allowed & ~had & (action == layout.wait), planned, action)
            had_previous = had_previous & had
        return action


BASELINES = {p.name: p for p in (RandomPolicy, AlwaysWaitPolicy, LoggedPolicy, RulePolicy)}


def make_baseline(name: str, config: FunnelConfig | None = None, layout: FunnelLayout | None = None,
                  offer: OfferProbability | None = None) -> Policy:  # fmt: skip
    """A baseline policy by name (random, always_wait, logged, rule) for a simulator's config and layout; `offer`
    gives the logged process its offer probabilities under a reading of the data."""
    if name == "logged":
        return LoggedPolicy(config, layout, offer)
    return BASELINES[name](config, layout)
