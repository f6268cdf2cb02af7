"""Benchmark: speed of off-policy evaluation on 10 million logged decisions (one JSON line).

* IPS and SNIPS with their intervals (beyond 200,000 rows: the influence-function normal interval): target <= 10 s.
* DR with a linear reward model (per action a ridge regression on the encoded context, cross-fitted on two folds,
  ``nextbest.evaluation.offpolicy.cross_fitted_rewards``): target <= 60 s including the model.
* Baseline in the same run: IPS with the percentile bootstrap (200 replicates) on 150,000 rows, extrapolated
  linearly to 10 million — what the interval would cost without the large-log path.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pandas as pd

from nextbest.evaluation.offpolicy import cross_fitted_rewards
from nextbest.ope import IPS, DoublyRobust, LoggedBandit, SelfNormalizedIPS

ROWS, BASELINE_ROWS, ACTIONS = 10_000_000, 1_000_000, 3
IPS_TARGET, DR_TARGET = 10.0, 60.0


def logged(rows: int, seed: int = 0) -> tuple[pd.DataFrame, LoggedBandit, np.ndarray]:
    """A bandit log: a categorical segment and two numbers as context, an ε-greedy logging policy."""
    rng = np.random.default_rng(seed)
    segment = rng.integers(0, 4, rows)
    spend, visits = rng.gamma(2.0, 20.0, rows), rng.poisson(3.0, rows).astype(float)
    logging = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.34, 0.33, 0.33]])[segment]
    action = (rng.random(rows)[:, None] < logging.cumsum(axis=1)).argmax(axis=1)
    p_reward = 0.05 + 0.02 * action + 0.001 * np.minimum(spend, 100) + 0.01 * (segment == action)
    reward = (rng.random(rows) < p_reward).astype(float)
    frame = pd.DataFrame({"segment": np.array(["a", "b", "c", "d"])[segment], "spend": spend, "visits": visits})
    target = np.zeros((rows, ACTIONS))
    target[:, 2] = 1.0  # always the third action
    return frame, LoggedBandit(action, reward, logging[np.arange(rows), action], ACTIONS, logging=logging), target


def main() -> None:
    frame, log, target = logged(ROWS)
    started = time.perf_counter()
    ips = IPS().estimate(log, target)
    snips = SelfNormalizedIPS().estimate(log, target)
    ips_seconds = time.perf_counter() - started
    started = time.perf_counter()
    model = cross_fitted_rewards(frame, ["segment", "spend", "visits"], log, 0, "benchmark log")
    dr = DoublyRobust().estimate(log, target, model)
    dr_seconds = time.perf_counter() - started
    _, small, small_target = logged(BASELINE_ROWS, seed=1)
    started = time.perf_counter()
    IPS().estimate(LoggedBandit(small.actions[:150_000], small.rewards[:150_000], small.pscores[:150_000], ACTIONS),
                   small_target[:150_000], n_boot=200, interval="bootstrap")  # fmt: skip
    bootstrap_seconds = (time.perf_counter() - started) * ROWS / 150_000
    print(json.dumps({
        "benchmark": "ope_speed",
        "rows": ROWS,
        "ips_snips_seconds": round(ips_seconds, 2),
        "ips_snips_target_seconds": IPS_TARGET,
        "ips_snips_met": ips_seconds <= IPS_TARGET,
        "dr_with_linear_model_seconds": round(dr_seconds, 2),
        "dr_target_seconds": DR_TARGET,
        "dr_met": dr_seconds <= DR_TARGET,
        "estimates": {e.estimator: {"estimate": round(e.estimate, 5), "ci": [round(v, 5) for v in e.ci],
                                    "interval": e.interval, "ess": round(e.ess or 0)} for e in (ips, snips, dr)},
        "baseline_bootstrap_ips_seconds_extrapolated": round(bootstrap_seconds, 1),
        "speedup_vs_bootstrap": round(bootstrap_seconds / (ips_seconds / 2), 1),
        "cpu_count": os.cpu_count(),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
