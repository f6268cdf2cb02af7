"""Baseline sales policies: random, always-wait, the logged process, and a hand-written rule.

Each keeps the one policy contract (``nextbest.policies``): ``choose(obs, rng)`` gives the actions on a batch of
16-dimensional observations (see `FunnelSimulator.observe`) and the probability of each; calling the policy gives
the actions alone, like every learned policy.
"""

from __future__ import annotations

import numpy as np

from nextbest.policies import Decision, Policy
from nextbest.policies.contract import deterministic
from nextbest.sim.funnel import ACTIONS, CALL, DEMO, EMAIL, MANAGER, SURVEY, WAIT, FunnelConfig

#: Observation columns used by the rules.
OBS_WEEK = 4
OBS_CALL, OBS_DEMO, OBS_SURVEY, OBS_SIGNUP, OBS_MANAGER = 8, 9, 10, 11, 12

#: The logged sales process read off the data: three messages, then the offers in funnel order,
#: then waiting for the lead (see docs/crm_funnel.md).
LOGGED_SEQUENCE = (EMAIL, EMAIL, EMAIL, CALL, DEMO, SURVEY, MANAGER, WAIT, WAIT, WAIT)


def _week(obs: np.ndarray, horizon: int) -> np.ndarray:
    """Weeks since the lead entered the CRM (days since first contact / 7)."""
    return np.rint(obs[:, OBS_WEEK] * horizon).astype(np.int64)


class RandomPolicy(Policy):
    """Uniformly random action each week (probability 1/6 each)."""

    name = "random"
    n_actions = len(ACTIONS)

    def choose(self, obs: np.ndarray, rng: np.random.Generator | None = None) -> Decision:
        n = obs.shape[0]
        actions = rng.integers(0, self.n_actions, size=n).astype(np.int64)
        return Decision(actions, np.full(n, 1.0 / self.n_actions), np.full((n, self.n_actions), 1.0 / self.n_actions))


class AlwaysWaitPolicy(Policy):
    """Never contact the lead."""

    name = "always_wait"
    n_actions = len(ACTIONS)

    def choose(self, obs: np.ndarray, rng: np.random.Generator | None = None) -> Decision:
        return deterministic(np.full(obs.shape[0], WAIT), self.n_actions)


class LoggedPolicy(Policy):
    """The behaviour policy: the logged process, each offer once in funnel order, then wait.

    The call is offered with the rate the simulator's FunnelConfig assumes (1.0: to every lead); a
    lead not offered the call is left alone that week.
    """

    name = "logged"
    n_actions = len(ACTIONS)

    def __init__(self, config: FunnelConfig | None = None) -> None:
        self.config = config or FunnelConfig()
        self._rates = np.ones(len(ACTIONS))
        self._rates[CALL] = self.config.call_offer_rate

    def choose(self, obs: np.ndarray, rng: np.random.Generator | None = None) -> Decision:
        """The planned offer with its offer rate r, else wait with 1 - r (a planned wait has probability 1)."""
        week = _week(obs, self.config.horizon)
        sequence = np.asarray(LOGGED_SEQUENCE)
        planned = sequence[np.minimum(week, sequence.size - 1)]
        rate = self._rates[planned]
        offered = rng.random(obs.shape[0]) < rate
        actions = np.where(offered, planned, WAIT).astype(np.int64)
        rows = np.arange(actions.size)
        distribution = np.zeros((actions.size, self.n_actions))
        distribution[rows, WAIT] = 1.0 - rate
        distribution[rows, planned] += rate
        return Decision(actions, distribution[rows, actions], distribution)


class RulePolicy(Policy):
    """ "Message until the call, then demo, then account manager": two e-mails, a call; if the lead
    took the call, a demo and then an account manager; otherwise wait."""

    name = "rule"
    n_actions = len(ACTIONS)

    def __init__(self, config: FunnelConfig | None = None) -> None:
        self.horizon = (config or FunnelConfig()).horizon

    def choose(self, obs: np.ndarray, rng: np.random.Generator | None = None) -> Decision:
        return deterministic(self._actions(obs), self.n_actions)

    def _actions(self, obs: np.ndarray) -> np.ndarray:
        week = _week(obs, self.horizon)
        had_call, had_demo = obs[:, OBS_CALL] > 0.5, obs[:, OBS_DEMO] > 0.5
        had_manager = obs[:, OBS_MANAGER] > 0.5
        action = np.where(week < 2, EMAIL, np.where(week == 2, CALL, WAIT))
        action = np.where(had_call & ~had_demo & (week > 2), DEMO, action)
        action = np.where(had_call & had_demo & ~had_manager, MANAGER, action)
        return action.astype(np.int64)


BASELINES = {p.name: p for p in (RandomPolicy, AlwaysWaitPolicy, LoggedPolicy, RulePolicy)}


def make_baseline(name: str, config: FunnelConfig | None = None):
    """A baseline policy by name (random, always_wait, logged, rule) for a simulator's config."""
    if name in ("logged", "rule"):
        return BASELINES[name](config)
    return BASELINES[name]()
