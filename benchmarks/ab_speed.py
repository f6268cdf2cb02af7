"""Benchmark: speed of the A/B statistics (one JSON line).

* analyze() on 10 million outcome rows (5M per arm, float64, skewed revenue): target <= 1 s (best of 3; the
  first call is reported too). CUPED on the same rows is reported for information.
* 10,000 simulated experiments of n = 7,208 per arm, every unit drawn (144 million normal draws), each
  analyzed with Welch's t-test: target <= 10 s. The exact sufficient-statistics path is reported too.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

from nextbest.experiments import analyze
from nextbest.experiments.simulation import simulate_experiments

ROWS_PER_ARM = 5_000_000
EXPERIMENTS, N_PER_ARM = 10_000, 7_208
ANALYZE_TARGET, SIMULATION_TARGET = 1.0, 10.0


def _timed(function, repeats: int) -> list[float]:
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - started)
    return seconds


def main() -> None:
    rng = np.random.default_rng(0)
    control = rng.lognormal(2.0, 1.0, ROWS_PER_ARM)
    treatment = rng.lognormal(2.0, 1.0, ROWS_PER_ARM) * 1.05
    pre_c = control * 0.5 + rng.lognormal(1.5, 1.0, ROWS_PER_ARM)
    pre_t = treatment * 0.5 + rng.lognormal(1.5, 1.0, ROWS_PER_ARM)

    plain = _timed(lambda: analyze(control, treatment, target_effect=0.3), 3)
    cuped = _timed(lambda: analyze(control, treatment, covariate_control=pre_c, covariate_treatment=pre_t), 3)
    draws = _timed(lambda: simulate_experiments(EXPERIMENTS, N_PER_ARM, 0.0, 15.0, seed=1, method="draws"), 1)
    sufficient = _timed(lambda: simulate_experiments(EXPERIMENTS, N_PER_ARM, 0.0, 15.0, seed=1), 3)

    result = {
        "benchmark": "ab_speed",
        "analyze_rows": 2 * ROWS_PER_ARM,
        "analyze_seconds_best": round(min(plain), 3),
        "analyze_seconds_first": round(plain[0], 3),
        "analyze_target_seconds": ANALYZE_TARGET,
        "analyze_met": min(plain) <= ANALYZE_TARGET,
        "analyze_cuped_seconds_best": round(min(cuped), 3),
        "simulated_experiments": EXPERIMENTS,
        "simulated_n_per_arm": N_PER_ARM,
        "simulation_draws_seconds": round(draws[0], 3),
        "simulation_target_seconds": SIMULATION_TARGET,
        "simulation_met": draws[0] <= SIMULATION_TARGET,
        "simulation_sufficient_statistics_seconds_best": round(min(sufficient), 4),
        "cpu_count": os.cpu_count(),
    }
    result["all_met"] = bool(result["analyze_met"] and result["simulation_met"])
    print(json.dumps(result))


if __name__ == "__main__":
    main()
