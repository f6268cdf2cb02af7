"""Off-policy estimators: formulas on a hand-checked log, coverage of the truth on a known bandit, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from nextbest.errors import NextbestError
from nextbest.evaluation.ope_coverage import coverage_study
from nextbest.ope import ESTIMATORS, IPS, DirectMethod, DoublyRobust, LoggedBandit, SelfNormalizedIPS, SupportViolation
from nextbest.ope.estimators import SelfNormalizedDR, SwitchDR
from nextbest.sim.shop import World


def _tiny() -> tuple[LoggedBandit, np.ndarray, np.ndarray]:
    log = LoggedBandit(np.array([0, 1, 1, 0]), np.array([1.0, 0.0, 2.0, 0.0]), np.array([0.5, 0.5, 0.25, 0.8]), 2)
    target = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0], [0.2, 0.8]])
    model = np.array([[0.8, 0.2], [0.5, 0.5], [0.1, 1.5], [0.3, 0.4]])
    return log, target, model


def test_estimates_follow_their_formulas() -> None:
    log, target, model = _tiny()
    w = np.array([1.0 / 0.5, 0.5 / 0.5, 1.0 / 0.25, 0.2 / 0.8])
    r = log.rewards
    factual = model[np.arange(4), log.actions]
    direct = (target * model).sum(axis=1)
    expected = {
        "dm": direct.mean(),
        "ips": (w * r).mean(),
        "snips": (w * r).sum() / w.sum(),
        "dr": (direct + w * (r - factual)).mean(),
        "sndr": direct.mean() + (w * (r - factual)).sum() / w.sum(),
        "switch-dr": (direct + np.where(w <= 3.0, w, 0.0) * (r - factual)).mean(),
    }
    estimators = {"dm": DirectMethod(), "ips": IPS(), "snips": SelfNormalizedIPS(), "dr": DoublyRobust(),
                  "sndr": SelfNormalizedDR(), "switch-dr": SwitchDR(tau=3.0)}  # fmt: skip
    for name, estimator in estimators.items():
        result = estimator.estimate(log, target, model, n_boot=50)
        assert result.estimate == pytest.approx(expected[name]), name
        assert result.ci[0] <= result.ci[1] and result.n == 4
    ips = IPS().estimate(log, target)
    assert ips.max_weight == pytest.approx(4.0) and ips.ess == pytest.approx(w.sum() ** 2 / (w**2).sum())


def test_intervals_cover_a_known_policy_value() -> None:
    """A bandit with 6 contexts and 3 actions whose true target value is exact: IPS, SNIPS and DR intervals
    cover it in about 95% of 120 logs (a broken weight or bootstrap fails this)."""
    rng0 = np.random.default_rng(0)
    groups, actions = 6, 3
    p_reward = rng0.uniform(0.05, 0.4, size=(groups, actions))
    logging = rng0.dirichlet(np.ones(actions) * 2, size=groups) * 0.85 + 0.15 / actions
    target = np.eye(actions)[np.argmax(p_reward, axis=1)] * 0.9 + 0.1 / actions
    truth = float((target * p_reward).mean(axis=0).sum())
    hits = {"ips": 0, "snips": 0, "dr": 0}
    for seed in range(120):
        rng = np.random.default_rng(seed)
        x = rng.integers(0, groups, 1000)
        a = (rng.random(1000)[:, None] < logging[x].cumsum(axis=1)).argmax(axis=1)
        r = (rng.random(1000) < p_reward[x, a]).astype(float)
        log = LoggedBandit(a, r, logging[x, a], actions, logging=logging[x])
        model = np.tile(np.bincount(a, weights=r, minlength=actions) / np.bincount(a, minlength=actions), (1000, 1))
        for name in hits:
            low, high = ESTIMATORS[name]().estimate(log, target[x], model, n_boot=150, seed=seed).ci
            hits[name] += low <= truth <= high
    for name, count in hits.items():
        assert 0.88 <= count / 120 <= 0.99, (name, count)


def test_unsupported_actions_are_refused_by_ips_and_reported_by_dr() -> None:
    log = LoggedBandit(np.array([0, 0, 1]), np.array([1.0, 0.0, 1.0]), np.array([0.5, 0.5, 0.5]), 3)
    target = np.tile([0.0, 0.5, 0.5], (3, 1))  # half its mass on action 2, never logged
    with pytest.raises(SupportViolation, match="50.00%"):
        IPS().estimate(log, target)
    dr = DoublyRobust().estimate(log, target, np.full((3, 3), 0.5), n_boot=20)
    assert dr.unsupported_mass == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pscores": np.array([0.5, 0.0])}, r"propensity must be in \(0, 1\]: row 1"),
        ({"pscores": np.array([0.5, 1.5])}, r"propensity must be in \(0, 1\]: row 1"),
        ({"actions": np.array([0, 7])}, r"action must be in 0\.\.1: row 1"),
        ({"rewards": np.array([1.0, np.nan])}, "reward must be a number: row 1"),
    ],
)
def test_bad_logs_name_the_row(kwargs: dict, message: str) -> None:
    fields = {"actions": np.array([0, 1]), "rewards": np.array([1.0, 0.0]), "pscores": np.array([0.5, 0.5])}
    with pytest.raises(NextbestError, match=message):
        LoggedBandit(**{**fields, **kwargs}, n_actions=2)


def test_a_target_that_does_not_sum_to_one_is_refused() -> None:
    log, target, _ = _tiny()
    target[2] = [0.3, 0.3]
    with pytest.raises(NextbestError, match="context 2 sums to 0.6"):
        IPS().estimate(log, target)
    with pytest.raises(NextbestError, match="needs a reward model"):
        DoublyRobust().estimate(log, _tiny()[1])


def test_the_shop_world_study_reports_coverage_of_the_exact_truth() -> None:
    """A small version of benchmarks/ope_coverage.py: logs of the ε-greedy original rule, five targets."""
    world = World(0)
    study = coverage_study(world, repetitions=6, customers=4_000, n_boot=100)
    assert study.truths["original"] == pytest.approx(world.expected_revenue("original"))
    assert study.truths["oracle"] > max(study.truths["show_all"], study.truths["show_none"])
    for name, record in study.estimators.items():
        assert record.intervals == 30
        assert record.coverage >= 0.7, (name, record)  # 95% intervals: 30 checks, at most 9 misses
    assert study.estimators["dr"].rmse < study.estimators["ips"].rmse
