"""Benchmark: pages per second of the session simulator, one Gymnasium env vs the batched path (same simulator).

Steps ``nextbest/SessionRetention-v0`` one session at a time for ``--env-pages`` pages, then
``SessionSimulator.step`` on ``--batch`` sessions at once until they all end, with a random strategy per page;
prints one JSON line: pages/s of each and the ratio.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def env_pages_per_second(simulator, pages: int) -> float:
    from nextbest.envs.sessions import SessionRetentionEnv

    env = SessionRetentionEnv(simulator)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    for _ in range(pages):
        _, _, terminated, truncated, _ = env.step(int(rng.integers(0, 3)))
        if terminated or truncated:
            env.reset()
    return pages / (time.perf_counter() - started)


def batch_pages_per_second(simulator, sessions: int) -> float:
    rng = np.random.default_rng(0)
    state = simulator.reset(sessions, rng)
    pages, started = 0, time.perf_counter()
    while state.active.any():
        pages += int(state.active.sum())
        simulator.step(state, rng.integers(0, 3, sessions), rng)
    return pages / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-pages", type=int, default=5_000)
    parser.add_argument("--batch", type=int, default=100_000)
    args = parser.parse_args()
    from nextbest.envs.sessions import default_session_simulator

    simulator = default_session_simulator()
    single = env_pages_per_second(simulator, args.env_pages)
    batched = batch_pages_per_second(simulator, args.batch)
    print(json.dumps({"benchmark": "session_sim", "env_pages_per_s": round(single, 1),
                      "batch_sessions": args.batch, "batch_pages_per_s": round(batched, 1),
                      "ratio": round(batched / single, 1)}))  # fmt: skip


if __name__ == "__main__":
    main()
