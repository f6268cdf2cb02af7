"""Baseline sales policies: random, always-wait, the logged process, and a hand-written rule.

Each is a callable `policy(obs, rng) -> actions` on a batch of 16-dimensional observations
(see `FunnelSimulator.observe`), like every learned policy.
"""

from __future__ import annotations

import numpy as np

from nextbest.sim.funnel import ACTIONS, CALL, DEMO, EMAIL, MANAGER, SURVEY, WAIT

#: Observation columns used by the rules.
OBS_SINCE_FIRST, OBS_CONTACTS_FREQ = 4, 7
OBS_CALL, OBS_DEMO, OBS_SURVEY, OBS_SIGNUP, OBS_MANAGER = 8, 9, 10, 11, 12

#: The logged sales process read off the data: three messages, then the offers in funnel order,
#: then waiting for the lead (see docs/crm_funnel.md).
LOGGED_SEQUENCE = (EMAIL, EMAIL, EMAIL, CALL, DEMO, SURVEY, MANAGER, WAIT, WAIT, WAIT)


def _week(obs: np.ndarray, horizon: int) -> np.ndarray:
    """Weeks since first contact, for policies that contact every week from week 0."""
    return np.rint(obs[:, OBS_SINCE_FIRST] * horizon).astype(np.int64)


class RandomPolicy:
    """Uniformly random action each week."""

    name = "random"

    def __call__(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return rng.integers(0, len(ACTIONS), size=obs.shape[0])


class AlwaysWaitPolicy:
    """Never contact the lead."""

    name = "always_wait"

    def __call__(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.full(obs.shape[0], WAIT, dtype=np.int64)


class LoggedPolicy:
    """The behaviour policy: the logged process, every offer once in funnel order, then wait."""

    name = "logged"

    def __init__(self, horizon: int = 10) -> None:
        self.horizon = horizon

    def __call__(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        contacted = obs[:, OBS_CONTACTS_FREQ] > 0
        week = np.where(contacted, _week(obs, self.horizon), 0)
        sequence = np.asarray(LOGGED_SEQUENCE)
        return sequence[np.minimum(week, sequence.size - 1)]


class RulePolicy:
    """"Message until the call, then demo, then account manager": two e-mails, a call; if the lead
    took the call, a demo and then an account manager; otherwise wait."""

    name = "rule"

    def __init__(self, horizon: int = 10) -> None:
        self.horizon = horizon

    def __call__(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        contacted = obs[:, OBS_CONTACTS_FREQ] > 0
        week = np.where(contacted, _week(obs, self.horizon), 0)
        had_call, had_demo = obs[:, OBS_CALL] > 0.5, obs[:, OBS_DEMO] > 0.5
        had_manager = obs[:, OBS_MANAGER] > 0.5
        action = np.where(week < 2, EMAIL, np.where(week == 2, CALL, WAIT))
        action = np.where(had_call & ~had_demo & (week > 2), DEMO, action)
        action = np.where(had_call & had_demo & ~had_manager, MANAGER, action)
        return action.astype(np.int64)


BASELINES = {p.name: p for p in (RandomPolicy, AlwaysWaitPolicy, LoggedPolicy, RulePolicy)}
__all__ = ["BASELINES", "AlwaysWaitPolicy", "LoggedPolicy", "RandomPolicy", "RulePolicy", "SURVEY"]
