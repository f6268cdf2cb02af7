"""Off-policy estimators checked against the shop world's exact truth (``benchmarks/ope_coverage.py``).

Each repetition draws ``n`` customers, serves them with an exploring logging policy — the original age/sex rule,
ε-greedy (show with probability 1 − ε/2 where the rule shows, ε/2 elsewhere) — samples their session revenue, and
estimates several target policies from that log. Every target's true value is the world's exact expected revenue
per customer (`World.expected_revenue`, purchase draw and noise integrated out). Over the repetitions each
estimator's bias, RMSE and the share of its 95% intervals that contain the truth are reported.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from nextbest.evaluation.offpolicy import cross_fitted_rewards
from nextbest.ope import ESTIMATORS, LoggedBandit
from nextbest.parallel import SERIAL, Executor
from nextbest.results import Result
from nextbest.sim.shop import Customers, World


class EstimatorCoverage(Result):
    """One estimator over every repetition and target: bias and RMSE of the estimates, and the share of intervals
    containing the truth: ``coverage`` for the default (normal, influence-function) interval, ``coverage_bootstrap``
    for the percentile bootstrap of ``n_boot`` replicates."""

    bias: float
    rmse: float
    coverage: float
    coverage_bootstrap: float
    intervals: int


class CoverageStudy(Result):
    """The study's settings, the targets' true values and each estimator's record."""

    repetitions: int
    customers_per_log: int
    epsilon: float
    truths: dict[str, float]
    estimators: dict[str, EstimatorCoverage]


def targets(world: World) -> dict[str, Callable[[Customers], np.ndarray]]:
    """The policies estimated from the logs: P(show) per customer."""
    return {
        "show_all": lambda c: np.ones(len(c)),
        "show_none": lambda c: np.zeros(len(c)),
        "original": lambda c: world.original_policy(c).astype(float),
        "oracle": lambda c: world.oracle_policy(c).astype(float),
        "men_under_50": lambda c: ((c.man == 1) & (c.age < 50)).astype(float),
    }


def coverage_study(world: World, repetitions: int = 500, customers: int = 10_000, epsilon: float = 0.2,
                   estimators: tuple[str, ...] = ("ips", "snips", "dr"), n_boot: int = 200,
                   seed: int = 0, executor: Executor = SERIAL) -> CoverageStudy:  # fmt: skip
    """Run the study (see the module doc); the same seed gives the same figures on any `executor` (each repetition
    is seeded by its number)."""
    policies = targets(world)
    truths = {name: world.expected_revenue(lambda c, f=f: (f(c) >= 0.5).astype(np.int8))
              for name, f in policies.items()}  # fmt: skip
    context = (world, truths, customers, epsilon, estimators, n_boot, seed)
    repeated = executor.map(_repetition, list(range(repetitions)), context)
    records = {}
    for estimator in estimators:
        e = np.concatenate([errors[estimator] for errors, _ in repeated])
        hits = {kind: sum(covered[(estimator, kind)] for _, covered in repeated) for kind in ("normal", "bootstrap")}
        records[estimator] = EstimatorCoverage(bias=float(e.mean()), rmse=float(np.sqrt(np.mean(e**2))),
                                               coverage=hits["normal"] / e.size,
                                               coverage_bootstrap=hits["bootstrap"] / e.size,
                                               intervals=int(e.size))  # fmt: skip
    return CoverageStudy(repetitions=repetitions, customers_per_log=customers, epsilon=epsilon, truths=truths,
                         estimators=records)  # fmt: skip


def _repetition(context: tuple, rep: int) -> tuple[dict[str, np.ndarray], dict[tuple[str, str], int]]:
    """One log and every target's estimates from it: per estimator, the errors (estimate − truth, one per target);
    per (estimator, interval kind), how many of its intervals contain the truth."""
    world, truths, customers, epsilon, estimators, n_boot, seed = context
    log, frame, people = _logged(world, customers, epsilon, stream=1_000 + seed * 100_000 + rep)
    model = cross_fitted_rewards(frame, list(frame.columns), log, seed + rep, "shop log")
    errors: dict[str, list[float]] = {name: [] for name in estimators}
    hits = {(name, kind): 0 for name in estimators for kind in ("normal", "bootstrap")}
    for name, policy in targets(world).items():
        show = policy(people)
        target = np.column_stack([1.0 - show, show])
        for estimator in estimators:
            for kind in ("normal", "bootstrap"):
                result = ESTIMATORS[estimator]().estimate(log, target, model, n_boot=n_boot, seed=rep, interval=kind)
                hits[(estimator, kind)] += result.ci[0] <= truths[name] <= result.ci[1]
            errors[estimator].append(result.estimate - truths[name])
    return {name: np.asarray(values) for name, values in errors.items()}, hits


def _logged(world: World, n: int, epsilon: float, stream: int) -> tuple[LoggedBandit, pd.DataFrame, Customers]:
    """One log: customers, the ε-greedy original rule's decisions with their propensities, sampled revenue."""
    people = world.sample(n, stream=stream)
    greedy = world.original_policy(people).astype(float)
    p_show = (1 - epsilon / 2) * greedy + (epsilon / 2) * (1 - greedy)
    rng = np.random.default_rng([stream, 7])
    shown = (rng.random(n) < p_show).astype(np.int64)
    revenue = world.simulate_revenue(people, shown, stream=stream + 500_000)
    propensity = np.where(shown == 1, p_show, 1 - p_show)
    logging = np.column_stack([1 - p_show, p_show])
    frame = pd.DataFrame({"age": people.age, "man": people.man, "categories": people.cats.sum(axis=1),
                          **{name: people.cats[:, int(name[3:])] for name in world.config.cross_sell}})  # fmt: skip
    return LoggedBandit(shown, revenue, propensity, 2, logging=logging), frame, people
