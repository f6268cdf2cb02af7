"""Benchmark: do the off-policy estimators' 95% intervals cover the shop world's exact truth? (one JSON line)

500 logs of 10,000 customers served by the ε-greedy original rule (ε = 0.2); five target policies (show all, show
none, the original rule, the oracle, men under 50) estimated from each log by IPS, SNIPS and DR (cross-fitted
ridge reward model); truth = the world's exact expected revenue per customer (``nextbest.evaluation.ope_coverage``).
Goal: coverage 93–97% for IPS, SNIPS and DR, and DR's RMSE below IPS's. IPS is the baseline DR is compared with.
"""

from __future__ import annotations

import json
import sys
import time

from nextbest.evaluation.ope_coverage import coverage_study
from nextbest.sim.shop import World

REPETITIONS = int(sys.argv[1]) if len(sys.argv) > 1 else 500
GOAL = (0.93, 0.97)


def main() -> None:
    started = time.perf_counter()
    study = coverage_study(World(0), repetitions=REPETITIONS)
    result = study.to_dict()
    estimators = study.estimators
    result.update({
        "benchmark": "ope_coverage",
        "goal_coverage": list(GOAL),
        "coverage_met": {name: GOAL[0] <= e.coverage <= GOAL[1] for name, e in estimators.items()},
        "dr_rmse_below_ips": estimators["dr"].rmse < estimators["ips"].rmse,
        "dr_rmse_vs_ips": round(estimators["dr"].rmse / estimators["ips"].rmse, 3),
        "wall_seconds": round(time.perf_counter() - started, 1),
    })  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()
