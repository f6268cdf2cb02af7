"""Benchmark: the CRM funnel simulator's one compiled kernel, in its batched path and in the one-lead Gymnasium env.

Batched: ``FunnelSimulator.step`` on ``--leads`` leads (drawn from the train pool) with a random action per lead and
week until every episode ends; lead-steps per second of the steps alone and of steps plus observations. Single:
``CRMFunnelEnv`` stepped one lead at a time for ``--episodes`` episodes with random actions (drawn beforehand), env
steps per second, resets included. Each figure is the best of ``--repeats`` runs, after a first call that loads (or,
on a fresh checkout, compiles) the kernels, timed apart as ``first_call_seconds``.

Prints one JSON line with the figures next to the before-figures (the vectorized numpy simulator, measured with this
script) and whether issue 16's goals are met: batched ≥ 5×, single env ≥ 20×.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from nextbest.data import prepare_crm
from nextbest.data.prepared import load_prepared
from nextbest.sim import journeys_from_frame, simulator_from_frame

# Measured on this 2-core machine at commit 643f3e8 (src unchanged at ea3a676), the vectorized numpy simulator:
# `PYTHONPATH=<a copy of src at 643f3e8> .venv/bin/python benchmarks/funnel_sim.py` (defaults), the best of three
# such runs on 2026-11-30 (other engineers share the cores; the runs gave 5.5M, 4.7M and 5.5M lead-steps/s).
BEFORE_BATCH_LEAD_STEPS_PER_S = 5_505_866
BEFORE_BATCH_WITH_OBSERVE_PER_S = 3_480_103
BEFORE_ENV_STEPS_PER_S = 7_697
GOALS = {"batch": 5.0, "env": 20.0}


def first_call_seconds(sim, codes: np.ndarray) -> float:
    """The first step and observation in this process (a fresh checkout compiles the kernels; later, numba's on-disk
    cache loads them)."""
    started = time.perf_counter()
    state = sim.reset(codes[:2], np.random.default_rng(0))
    sim.step(state, np.zeros(2, dtype=np.int64))
    sim.observe(state)
    return time.perf_counter() - started


def batch_lead_steps_per_second(sim, codes: np.ndarray, leads: int, seed: int) -> tuple[float, float, int]:
    """(lead-steps/s of the steps, lead-steps/s of steps and observations, lead-steps): every lead until done."""
    rng = np.random.default_rng(seed)
    state = sim.reset(codes[rng.integers(len(codes), size=leads)], rng)
    steps, stepping, observing = 0, 0.0, 0.0
    while not state.done.all():
        actions = rng.integers(0, sim.n_actions, size=leads)
        steps += int((~state.done).sum())
        started = time.perf_counter()
        sim.step(state, actions)
        stepped = time.perf_counter()
        sim.observe(state)
        stepping += stepped - started
        observing += time.perf_counter() - stepped
    return steps / stepping, steps / (stepping + observing), steps


def env_steps_per_second(sim, codes: np.ndarray, episodes: int, seed: int) -> tuple[float, float]:
    """(env steps/s, steps per episode) of `episodes` one-lead episodes with random actions, resets included."""
    from nextbest.envs.crm import CRMFunnelEnv

    env = CRMFunnelEnv(simulator=sim, codes=codes)
    actions = iter(np.random.default_rng(seed).integers(0, sim.n_actions, episodes * sim.config.horizon).tolist())
    env.reset(seed=seed)
    steps = 0
    started = time.perf_counter()
    for _ in range(episodes):
        env.reset()
        done = False
        while not done:
            _, _, terminated, truncated, _ = env.step(next(actions))
            done = terminated or truncated
            steps += 1
    return steps / (time.perf_counter() - started), steps / episodes


def goal(after: float, before: float, target: float) -> dict[str, float | bool]:
    """after ÷ before (a rate's new and old values, or a duration's old and new), rounded, against ``target``;
    shared by the compiled-dynamics benchmarks (crm_qlearning.py, session_sim.py)."""
    ratio = after / before
    return {"ratio": round(ratio, 2), "goal_ratio": target, "meets_goal": ratio >= target}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--episodes", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        prepare_crm(Path(folder))
        prepared = load_prepared(folder)
    sim = simulator_from_frame(prepared.train)
    codes = sim.model.encode_leads(journeys_from_frame(prepared.train))
    first = first_call_seconds(sim, codes)
    batches = [batch_lead_steps_per_second(sim, codes, args.leads, seed) for seed in range(args.repeats)]
    envs = [env_steps_per_second(sim, codes, args.episodes, seed) for seed in range(args.repeats)]
    batch, with_observe = max(b[0] for b in batches), max(b[1] for b in batches)
    env = max(e[0] for e in envs)
    print(json.dumps({
        "benchmark": "funnel_sim",
        "first_call_seconds": round(first, 3),
        "batch_leads": args.leads,
        "batch_lead_steps": batches[0][2],
        "batch_lead_steps_per_s": round(batch),
        "batch_lead_steps_per_s_before": BEFORE_BATCH_LEAD_STEPS_PER_S,
        "batch": goal(batch, BEFORE_BATCH_LEAD_STEPS_PER_S, GOALS["batch"]),
        "batch_with_observe_per_s": round(with_observe),
        "batch_with_observe_per_s_before": BEFORE_BATCH_WITH_OBSERVE_PER_S,
        "batch_with_observe_ratio": round(with_observe / BEFORE_BATCH_WITH_OBSERVE_PER_S, 2),
        "env_episodes": args.episodes,
        "env_steps_per_episode": round(envs[0][1], 2),
        "env_steps_per_s": round(env),
        "env_steps_per_s_before": BEFORE_ENV_STEPS_PER_S,
        "env": goal(env, BEFORE_ENV_STEPS_PER_S, GOALS["env"]),
        "repeats": args.repeats,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
