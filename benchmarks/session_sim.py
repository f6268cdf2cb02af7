"""Benchmark: pages per second of the session simulator, one Gymnasium env vs the batched path (same simulator).

Steps ``nextbest/SessionRetention-v0`` one session at a time for ``--env-pages`` pages (random strategies drawn
beforehand, resets included), then ``SessionSimulator.step`` on ``--batch`` sessions at once until they all end, with
a random strategy per page; each figure is the best of ``--repeats`` runs, after a first call that loads (or, on a
fresh checkout, compiles) the kernels, timed apart as ``first_call_seconds``. Prints one JSON line: pages/s of each,
their ratio, the before-figures (the numpy and scikit-learn simulator, measured with this script) and whether issue
16's goals are met: single env ≥ 20×, batched ≥ 5×; and the share of a batched step the generator's draws alone take,
with the ratio the batched path would reach if nothing else took time (the draws bound it).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from funnel_sim import goal

# Measured on this 2-core machine at commit 643f3e8 (src unchanged at ea3a676), the numpy and scikit-learn simulator:
# `PYTHONPATH=<a copy of src at 643f3e8> .venv/bin/python benchmarks/session_sim.py` (defaults), the best of three
# such runs on 2026-11-30 (other engineers share the cores: 2,200, 2,341 and 2,167 pages/s single; 0.36M, 1.48M and
# 1.37M batched). The figures, taken with the earlier version of this script: 2,222 and 1.36M pages/s.
BEFORE_ENV_PAGES_PER_S = 2_340.5
BEFORE_BATCH_PAGES_PER_S = 1_480_204.7
GOALS = {"env": 20.0, "batch": 5.0}


def first_call_seconds(simulator) -> float:
    """One page of one session and its observation: compiles the kernels on a fresh checkout, else loads them."""
    from nextbest.envs.sessions import observe

    started = time.perf_counter()
    rng = np.random.default_rng(0)
    state = simulator.reset(1, rng)
    simulator.step(state, np.zeros(1, dtype=np.int64), rng)
    observe(state, simulator.max_depth)
    return time.perf_counter() - started


def env_pages_per_second(simulator, pages: int, seed: int) -> float:
    from nextbest.envs.sessions import SessionRetentionEnv

    env = SessionRetentionEnv(simulator)
    env.reset(seed=seed)
    actions = np.random.default_rng(seed).integers(0, len(simulator.names), pages).tolist()
    started = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return pages / (time.perf_counter() - started)


def batch_pages_per_second(simulator, sessions: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    state = simulator.reset(sessions, rng)
    pages, started = 0, time.perf_counter()
    while state.active.any():
        pages += int(state.active.sum())
        simulator.step(state, rng.integers(0, len(simulator.names), sessions), rng)
    return pages / (time.perf_counter() - started)


def draw_seconds_share(simulator, sessions: int, seed: int) -> float:
    """The share of the batched steps' time that the generator's draws alone take (a Poisson engagement and two
    uniforms for every session, finished ones included, as the simulator always drew them), timed on a generator of
    their own with the means of the same states, each batch step then made and timed as usual."""
    rng, own = np.random.default_rng(seed), np.random.default_rng(seed + 1)
    state = simulator.reset(sessions, rng)
    drawing = stepping = 0.0
    while state.active.any():
        actions = rng.integers(0, len(simulator.names), sessions)
        mean = simulator.engagement_by_power[state.power] * simulator._factors[actions, 0]
        started = time.perf_counter()
        own.poisson(mean), own.random(sessions), own.random(sessions)
        drawing += time.perf_counter() - started
        started = time.perf_counter()
        simulator.step(state, actions, rng)
        stepping += time.perf_counter() - started
    return drawing / stepping


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-pages", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from nextbest.envs.sessions import default_session_simulator

    simulator = default_session_simulator()
    first = first_call_seconds(simulator)
    single = max(env_pages_per_second(simulator, args.env_pages, seed) for seed in range(args.repeats))
    batched = max(batch_pages_per_second(simulator, args.batch, seed) for seed in range(args.repeats))
    share = draw_seconds_share(simulator, args.batch, 0)
    print(json.dumps({"benchmark": "session_sim", "first_call_seconds": round(first, 3),
                      "env_pages_per_s": round(single, 1), "env_pages_per_s_before": BEFORE_ENV_PAGES_PER_S,
                      "env": goal(single, BEFORE_ENV_PAGES_PER_S, GOALS["env"]),
                      "batch_sessions": args.batch, "batch_pages_per_s": round(batched, 1),
                      "batch_pages_per_s_before": BEFORE_BATCH_PAGES_PER_S,
                      "batch": goal(batched, BEFORE_BATCH_PAGES_PER_S, GOALS["batch"]),
                      "batch_draws_share_of_step_time": round(share, 2),
                      "batch_bound_by_draws_alone_ratio": round(batched / share / BEFORE_BATCH_PAGES_PER_S, 2),
                      "ratio": round(batched / single, 1), "repeats": args.repeats}))  # fmt: skip


if __name__ == "__main__":
    main()
