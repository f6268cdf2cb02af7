"""Constant α against the visit-count step size: the same run trained twice, its convergence metrics side by side.

    compare_step_sizes(simulator, train_journeys, settings, episodes) -> dict

Each step size trains one `QLearningAgent` from the run's settings (seed, oversampling, state grid) with only the
step size changed, so the cost is two trainings of `episodes`. Per step size it returns `final_metrics()` (the
seed's max |ΔQ| and greedy-action change, and the established-pair metrics; formulas in the module doc of
`nextbest.agents.qlearning`) plus the wall-clock seconds. Both tables hash states the same way, so their greedy
policies can be compared state by state:

    same_greedy_action_pct                = 100 · #{s in both tables: argmax Q_const(s) = argmax Q_visit(s)} / #both
    same_greedy_action_pct_visit_weighted = the same with each state weighted by its updates (lead-steps, summed
                                            over actions and both runs): the states training spent its time in
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from nextbest.agents.qlearning import QLearningAgent
from nextbest.agents.runs import RunSettings
from nextbest.sim.funnel import FunnelSimulator
from nextbest.sim.journeys import Journeys

COMPARED_STEP_SIZES = ("constant", "visit-count")


def compare_step_sizes(simulator: FunnelSimulator, train_journeys: Journeys, settings: RunSettings,
                       episodes: int) -> dict:  # fmt: skip
    """Train Q-learning with constant α and with the visit-count step (all else as in `settings`); their
    technical metrics and how far their greedy policies agree (module doc)."""
    agents: dict[str, QLearningAgent] = {}
    metrics: dict[str, dict] = {}
    for step_size in COMPARED_STEP_SIZES:
        agent = QLearningAgent(simulator, replace(settings, step_size=step_size).qlearning())
        started = time.perf_counter()
        agent.train(train_journeys, episodes)
        metrics[step_size] = {**agent.final_metrics(), "wall_seconds": time.perf_counter() - started}
        agents[step_size] = agent
    return {
        "episodes": episodes,
        "seed": settings.seed,
        "decimals": settings.decimals,
        "step_sizes": metrics,
        "greedy_agreement": greedy_agreement(*agents.values()),
    }


def greedy_agreement(first: QLearningAgent, second: QLearningAgent) -> dict[str, float | int]:
    """How often two agents on the same state grid choose the same greedy action (module doc)."""
    common = [(row, second.table.index[key]) for key, row in first.table.index.items() if key in second.table.index]
    rows = np.array(common, dtype=np.int64).reshape(-1, 2)
    same = np.argmax(first.table.q[rows[:, 0]], axis=1) == np.argmax(second.table.q[rows[:, 1]], axis=1)
    weight = first.table.updates[rows[:, 0]].sum(axis=1) + second.table.updates[rows[:, 1]].sum(axis=1)
    weighted = float(100.0 * np.sum(weight * same) / np.sum(weight)) if weight.sum() > 0 else 0.0
    return {
        "states_in_both": int(rows.shape[0]),
        "same_greedy_action_pct": float(100.0 * same.mean()) if same.size else 0.0,
        "same_greedy_action_pct_visit_weighted": weighted,
    }
