"""Benchmark: 100,000 tabular Q-learning episodes on the CRM funnel simulator (target ≤ 5 s on 2 cores).

Prints one JSON line: wall seconds of training (simulator fitted beforehand, no checkpoint files; the best of
``REPEATS`` runs, each a fresh agent, after a first call that loads or compiles the compiled kernels, timed apart as
``first_call_seconds``), episodes per second, the size of the learned table, and for comparison the time the same
number of episodes would take stepped one lead at a time through the Gymnasium environment (measured on
``SAMPLE_EPISODES`` episodes with random actions drawn beforehand, best of ``REPEATS``, and extrapolated) and that
environment's steps per second. Next to them the before-figures (the vectorized numpy simulator, measured with this
script) and whether issue 16's goals are met: training ≥ 2.5× faster, the one-lead env ≥ 20×.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from funnel_sim import env_steps_per_second as env_steps_per_second_of
from funnel_sim import goal
from nextbest.agents.qlearning import QLearningAgent, QLearningConfig
from nextbest.data import prepare_crm
from nextbest.data.prepared import load_prepared
from nextbest.sim import journeys_from_frame, simulator_from_frame

EPISODES = 100_000
TARGET_SECONDS = 5.0
SAMPLE_EPISODES = 5_000
REPEATS = 3
# Measured on this 2-core machine at commit 643f3e8 (src unchanged at ea3a676), the vectorized numpy simulator:
# `PYTHONPATH=<a copy of src at 643f3e8> .venv/bin/python benchmarks/crm_qlearning.py`, the best of three such runs
# on 2026-11-30 (other engineers share the cores: 0.795, 0.778 and 1.156 s). The figures, taken with the
# earlier version of this script (one generator call per env step, no repeats), were 0.85–0.90 s and 6,808 steps/s.
BEFORE_SECONDS = 0.778
BEFORE_ENV_STEPS_PER_S = 7_766
GOALS = {"training": 2.5, "env": 20.0}


def first_call_seconds(sim, codes) -> float:
    """The first step and observation in this process (compiles the kernels on a fresh checkout, else loads them
    from numba's on-disk cache), and the state table's first lookup."""
    started = time.perf_counter()
    state = sim.reset(codes[:2], np.random.default_rng(0))
    sim.step(state, np.zeros(2, dtype=np.int64))
    QLearningAgent(sim).table.rows(sim.observe(state))
    return time.perf_counter() - started


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        prepare_crm(Path(folder))
        prepared = load_prepared(folder)
    sim = simulator_from_frame(prepared.train)
    journeys = journeys_from_frame(prepared.train)
    codes = sim.model.encode_leads(journeys)
    first = first_call_seconds(sim, codes)
    runs = []
    for _ in range(REPEATS):
        agent = QLearningAgent(sim, QLearningConfig(seed=0))
        started = time.perf_counter()
        agent.train(journeys, EPISODES)
        runs.append(time.perf_counter() - started)
    seconds = min(runs)
    env_steps_per_second, steps_per_episode = max(
        (env_steps_per_second_of(sim, codes, SAMPLE_EPISODES, seed) for seed in range(REPEATS)), key=lambda r: r[0])
    per_episode = steps_per_episode / env_steps_per_second
    result = {
        "benchmark": "crm_qlearning",
        "episodes": EPISODES,
        "first_call_seconds": round(first, 3),
        "wall_seconds": round(seconds, 3),
        "wall_seconds_runs": [round(run, 3) for run in runs],
        "episodes_per_second": round(EPISODES / seconds),
        "target_seconds": TARGET_SECONDS,
        "meets_target": seconds <= TARGET_SECONDS,
        "q_table_states": len(agent.table),
        "wall_seconds_before": BEFORE_SECONDS,
        "training": goal(BEFORE_SECONDS, seconds, GOALS["training"]),
        "one_lead_at_a_time_seconds_extrapolated": round(per_episode * EPISODES, 1),
        "speedup_vs_one_lead_at_a_time": round(per_episode * EPISODES / seconds, 1),
        "env_steps_per_second": round(env_steps_per_second),
        "env_steps_per_second_before": BEFORE_ENV_STEPS_PER_S,
        "env": goal(env_steps_per_second, BEFORE_ENV_STEPS_PER_S, GOALS["env"]),
        "python": sys.version.split()[0],
    }  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()
