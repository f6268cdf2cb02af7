"""Benchmark: do the off-policy estimators' 95% intervals cover the shop world's exact truth? (one JSON line)

500 logs of 10,000 customers served by the ε-greedy original rule (ε = 0.2); five target policies (show all, show
none, the original rule, the oracle, men under 50) estimated from each log by IPS, SNIPS and DR (cross-fitted
ridge reward model); truth = the world's exact expected revenue per customer (``nextbest.evaluation.ope_coverage``).
Goal: coverage 93–97% for IPS, SNIPS and DR, and DR's RMSE below IPS's. IPS is the baseline DR is compared with.

Usage: ``ope_coverage.py [REPETITIONS] [--workers N | --ray-address HOST:PORT]``: the repetitions run on the executor
(``nextbest.parallel``); the figures do not depend on it.
"""

from __future__ import annotations

import argparse
import json
import time

from nextbest.evaluation.ope_coverage import coverage_study
from nextbest.parallel import make_executor
from nextbest.sim.shop import World

GOAL = (0.93, 0.97)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repetitions", type=int, nargs="?", default=500)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--ray-address", default=None)
    args = parser.parse_args()
    executor = make_executor(args.workers, args.ray_address)
    started = time.perf_counter()
    study = coverage_study(World(0), repetitions=args.repetitions, executor=executor)
    described = executor.describe()
    executor.close()
    result = study.to_dict()
    estimators = study.estimators
    result.update({
        "benchmark": "ope_coverage",
        "goal_coverage": list(GOAL),
        "coverage_met": {name: GOAL[0] <= e.coverage <= GOAL[1] for name, e in estimators.items()},
        "dr_rmse_below_ips": estimators["dr"].rmse < estimators["ips"].rmse,
        "dr_rmse_vs_ips": round(estimators["dr"].rmse / estimators["ips"].rmse, 3),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "executor": described,
    })  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()
