"""Benchmark: 100,000 tabular Q-learning episodes on the CRM funnel simulator (target ≤ 5 s on 2 cores).

Prints one JSON line: wall seconds of training (simulator fitted beforehand, no checkpoint files),
episodes per second, and the size of the learned table.
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
    result = {
        "benchmark": "crm_qlearning",
        "episodes": EPISODES,
        "wall_seconds": round(seconds, 3),
        "episodes_per_second": round(EPISODES / seconds),
        "target_seconds": TARGET_SECONDS,
        "meets_target": seconds <= TARGET_SECONDS,
        "q_table_states": len(agent.table),
        "python": sys.version.split()[0],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
