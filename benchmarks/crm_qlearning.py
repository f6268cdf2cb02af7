"""Benchmark: 100,000 tabular Q-learning episodes on the CRM funnel simulator (target ≤ 5 s on 2 cores).

Prints one JSON line: wall seconds of training (simulator fitted beforehand, no checkpoint files),
episodes per second, the size of the learned table, and for comparison the time the same number of
episodes would take stepped one lead at a time through the Gymnasium environment (measured on
2,000 episodes with random actions and extrapolated) and that environment's steps per second.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from nextbest.agents.qlearning import QLearningAgent, QLearningConfig
from nextbest.data import prepare_crm
from nextbest.data.prepared import load_prepared
from nextbest.sim import journeys_from_frame, simulator_from_frame

EPISODES = 100_000
TARGET_SECONDS = 5.0
SAMPLE_EPISODES = 2_000


def one_lead_at_a_time_seconds(sim, codes) -> tuple[float, float]:
    """Seconds per episode of the one-lead-at-a-time path (Gymnasium env, random actions), and its env steps per
    second."""
    import numpy as np

    from nextbest.envs.crm import CRMFunnelEnv

    env = CRMFunnelEnv(simulator=sim, codes=codes)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    steps = 0
    started = time.perf_counter()
    for _ in range(SAMPLE_EPISODES):
        env.reset()
        done = False
        while not done:
            _, _, terminated, truncated, _ = env.step(int(rng.integers(0, 6)))
            done = terminated or truncated
            steps += 1
    seconds = time.perf_counter() - started
    return seconds / SAMPLE_EPISODES, steps / seconds




def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        prepare_crm(Path(folder))
        prepared = load_prepared(folder)
    sim = simulator_from_frame(prepared.train)
    journeys = journeys_from_frame(prepared.train)
    agent = QLearningAgent(sim, QLearningConfig(seed=0))
    started = time.perf_counter()
    agent.train(journeys, EPISODES)
    seconds = time.perf_counter() - started
    per_episode, env_steps_per_second = one_lead_at_a_time_seconds(sim, sim.model.encode_leads(journeys))
    result = {
        "benchmark": "crm_qlearning",
        "episodes": EPISODES,
        "wall_seconds": round(seconds, 3),
        "episodes_per_second": round(EPISODES / seconds),
        "target_seconds": TARGET_SECONDS,
        "meets_target": seconds <= TARGET_SECONDS,
        "q_table_states": len(agent.table),
        "one_lead_at_a_time_seconds_extrapolated": round(per_episode * EPISODES, 1),
        "speedup_vs_one_lead_at_a_time": round(per_episode * EPISODES / seconds, 1),
        "env_steps_per_second": round(env_steps_per_second),
        "python": sys.version.split()[0],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
