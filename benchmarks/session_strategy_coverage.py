"""Benchmark: do the session strategy effects estimated from exploration logs cover the synthetic world's truth?

The true world is the simulator learned from 20,000 synthetic sessions (seed 0) with ``TRUE_STRATEGIES``
(``nextbest sessions explore``'s world). Each of ``--repetitions`` repetitions plays a fresh exploration log of
``--sessions`` sessions (strategies drawn at random: uniformly, and again with a logging policy that shows poor
users far more discounts) and estimates the engagement, buy and price multipliers of feed and discount relative
to mixed (``estimate_strategies``, ``--n-boot`` session-bootstrap replicates). Prints one JSON line: for each
logging policy and parameter, the coverage of the 95% interval, the bias and RMSE of the estimate and the mean
interval width; and, for comparison, the bias of a raw purchase-rate ratio (IPW mean of bought under s / under
mixed), which mixes the engagement effect into the buy multiplier. Goal: coverage 93-97% for every parameter
with sampling noise; the price is exact in this world (a purchase costs price(pp) x p_s, no noise), so its
interval has zero width and ``exact`` is true.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from nextbest.sim.session_sim import STRATEGIES
from nextbest.sim.strategy_effects import (
    ESTIMATED,
    TRUE_STRATEGIES,
    estimate_strategies,
    explore_pages,
    with_strategies,
)

GOAL = (0.93, 0.97)
STRATEGIES_ESTIMATED = ("feed", "discount")
#: P(strategy | purchase power) (feed, mixed, discount): discounts mostly for purchase power 0-2.
BY_POWER = np.array([[0.15, 0.25, 0.6]] * 3 + [[0.45, 0.45, 0.1]] * 8)


def raw_buy_ratio(log, name: str, reference: str = "mixed") -> float:
    """IPW purchase rate under ``name`` over that under ``reference`` (no baseline model)."""
    rates = {}
    for strategy in (name, reference):
        pages = log[log.strategy == strategy]
        weights = 1 / pages.propensity
        rates[strategy] = float((weights * pages.bought).sum() / weights.sum())
    return rates[name] / rates[reference]


def study(world, repetitions: int, sessions: int, n_boot: int, probabilities, seed0: int) -> dict:
    """Coverage, bias, RMSE and width of each (strategy, parameter) over ``repetitions`` fresh logs."""
    rows: dict[str, list[tuple[float, float, float]]] = {}
    raw: dict[str, list[float]] = {name: [] for name in STRATEGIES_ESTIMATED}
    pages = []
    for rep in range(repetitions):
        log = explore_pages(world, sessions, seed=seed0 + rep, probabilities=probabilities)
        estimates = estimate_strategies(log, STRATEGIES, "mixed", n_boot=n_boot, seed=seed0 + rep)
        pages.append(len(log))
        for name in STRATEGIES_ESTIMATED:
            raw[name].append(raw_buy_ratio(log, name) - TRUE_STRATEGIES[name].buy)
            for key in ESTIMATED:
                p = estimates.strategies[name].parameters[key]
                rows.setdefault(f"{name}.{key}", []).append((p.value, *p.ci))
    result = {"mean_pages": round(float(np.mean(pages)), 1), "parameters": {}}
    for label, values in rows.items():
        name, key = label.split(".")
        truth = getattr(TRUE_STRATEGIES[name], key)
        value, low, high = np.array(values).T
        tolerance = 1e-9 * abs(truth)  # the price estimate is exact in this world (deterministic prices)
        covered = (low - tolerance <= truth) & (truth <= high + tolerance)
        exact = bool(np.all(np.abs(value - truth) <= tolerance) and np.all(high - low <= tolerance))
        result["parameters"][label] = {
            "truth": truth, "assumed": getattr(STRATEGIES[name], key), "coverage": round(float(covered.mean()), 3),
            "bias": round(float((value - truth).mean()), 4),
            "rmse": round(float(np.sqrt(((value - truth) ** 2).mean())), 4),
            "mean_width": round(float((high - low).mean()), 4),
            "exact": exact,  # no sampling noise (the price): 100% coverage of a zero-width interval, not a goal
            "coverage_met": bool(covered.all()) if exact else bool(GOAL[0] <= covered.mean() <= GOAL[1]),
        }  # fmt: skip
    result["raw_purchase_rate_ratio_bias"] = {name: round(float(np.mean(v)), 4) for name, v in raw.items()}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=100)
    parser.add_argument("--sessions", type=int, default=5_000)
    parser.add_argument("--n-boot", type=int, default=200)
    args = parser.parse_args()
    from nextbest.envs.sessions import default_session_simulator

    started = time.perf_counter()
    world = with_strategies(default_session_simulator(sessions=20_000, seed=0), TRUE_STRATEGIES)
    result = {"benchmark": "session_strategy_coverage", "repetitions": args.repetitions, "sessions": args.sessions,
              "n_boot": args.n_boot, "goal_coverage": list(GOAL),
              "uniform": study(world, args.repetitions, args.sessions, args.n_boot, None, 1_000),
              "by_power": study(world, args.repetitions, args.sessions, args.n_boot, BY_POWER, 2_000)}  # fmt: skip
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
