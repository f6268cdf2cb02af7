"""The offline half of the loop: from a decision log to the next policy, with every candidate estimated (no I/O).

    split = split_log(n, learn_share=0.5, seed=0)             # rows to learn from, rows to evaluate on
    report = choose_policy(X[split.evaluate], log_eval, candidates, control="original")

``candidates`` maps a name to the policy's action probabilities on the evaluation rows ([n, k]; a deterministic
policy has one 1 per row). Every candidate is estimated by each estimator (``nextbest.ope``) and compared with the
``control`` on the same rows (paired intervals: ``Estimator.contrast``); the reward model of the DR family is
cross-fitted on the evaluation rows only. The candidate with the highest ``select_by`` estimate is chosen.

A policy learned from the log must be evaluated on rows it did not learn from: its own rows flatter it (the
learner fits their noise). ``split_log`` keeps the two shares apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from nextbest.data.decision_log import context_frame
from nextbest.errors import DataError, NextbestError
from nextbest.evaluation.offpolicy import OnPolicy, cross_fitted_rewards
from nextbest.models.offpolicy import learn_targeting_policy
from nextbest.models.targeting import Imputation, TargetingModel
from nextbest.ope import ESTIMATORS, LoggedBandit, OPEEstimate
from nextbest.results import Result
from nextbest.stats import mean_interval


@dataclass(frozen=True)
class LogSplit:
    """Row indices of the learning and the evaluation share of a log."""

    learn: np.ndarray
    evaluate: np.ndarray


def split_log(n: int, learn_share: float = 0.5, seed: int = 0) -> LogSplit:
    """A seeded random split of ``n`` logged rows; ``learn_share`` in (0, 1)."""
    if not 0 < learn_share < 1:
        raise NextbestError(f"the learning share must be in (0, 1), got {learn_share}")
    learn = np.random.default_rng([seed, 31]).random(n) < learn_share
    return LogSplit(np.flatnonzero(learn), np.flatnonzero(~learn))


def subset(log: LoggedBandit, rows: np.ndarray) -> LoggedBandit:
    """The log restricted to ``rows``."""
    logging = None if log.logging is None else np.asarray(log.logging)[rows]
    return LoggedBandit(np.asarray(log.actions)[rows], np.asarray(log.rewards)[rows], np.asarray(log.pscores)[rows],
                        log.n_actions, logging)  # fmt: skip


@dataclass(frozen=True)
class DecisionLog:
    """A decision log (``nextbest log collect``) read for learning: the features as served ``X`` (in the serving
    model's order) and the logged bandit (action 0/1, reward, propensity)."""

    X: pd.DataFrame
    log: LoggedBandit

    def rows(self, rows: np.ndarray) -> DecisionLog:
        return DecisionLog(self.X.iloc[rows].reset_index(drop=True), subset(self.log, rows))


def read_decision_log(frame: pd.DataFrame, features: Sequence[str], source: str = "decision log") -> DecisionLog:
    """The log's ``ctx_`` features (a feature never logged as non-zero is 0) and its action/reward/propensity
    columns; DataError naming the column when one is missing or invalid."""
    missing = [c for c in ("action", "reward", "propensity") if c not in frame.columns]
    if missing:
        raise DataError(f"{source}: not a decision log (no column {missing[0]!r}; write one with `nextbest log "
                        "collect`)")  # fmt: skip
    try:
        log = LoggedBandit(frame["action"].to_numpy(dtype=np.int64), frame["reward"].to_numpy(dtype=float),
                           frame["propensity"].to_numpy(dtype=float), 2)  # fmt: skip
    except (ValueError, TypeError, NextbestError) as error:
        raise DataError(f"{source}: {error}") from error
    return DecisionLog(context_frame(frame, list(features)), log)


def learn_from_log(data: DecisionLog, features: Sequence[str], imputation: Imputation,
                   seed: int = 0) -> TargetingModel:  # fmt: skip
    """A targeting policy learned from ``data`` (cross-fitted reward model, doubly robust weighted classification:
    ``nextbest.models.offpolicy``), with the serving model's ``features`` and missing-flag ``imputation`` so that
    it exports and serves like it."""
    reward_model = cross_fitted_rewards(data.X, list(features), data.log, seed, "decision log")
    template = TargetingModel("gbm", None, 0.5, list(features), {}, {}, "", imputation=imputation)
    return learn_targeting_policy(data.X, data.log, reward_model, template, seed=seed)


class CandidateOPE(Result):
    """One candidate: its value and its difference from the control per estimator, and how often it takes the
    action the log took (its support in the log)."""

    value: dict[str, OPEEstimate]
    versus_control: dict[str, OPEEstimate]
    agrees_with_logged: float


class PolicyChoice(Result):
    """The candidates estimated on the evaluation share of a log and the one chosen."""

    rows_evaluated: int
    control: str
    select_by: str
    chosen: str
    on_policy: OnPolicy
    candidates: dict[str, CandidateOPE]


def choose_policy(X: pd.DataFrame, log: LoggedBandit, candidates: Mapping[str, np.ndarray], control: str,
                  estimators: Sequence[str] = ("ips", "snips", "dr"), select_by: str = "dr", n_boot: int = 200,
                  seed: int = 0) -> PolicyChoice:  # fmt: skip
    """Estimate every candidate on ``log`` (contexts ``X``) and choose the best by ``select_by`` (module doc)."""
    if control not in candidates:
        raise NextbestError(f"the control {control!r} is not among the candidates {sorted(candidates)}")
    if select_by not in estimators:
        raise NextbestError(f"the estimator {select_by!r} that chooses must be among {list(estimators)}")
    reward_model = cross_fitted_rewards(X, list(X.columns), log, seed, "decision log")
    rows = np.arange(len(log))
    results = {}
    for name, target in candidates.items():
        value, versus = {}, {}
        for estimator in estimators:
            method = ESTIMATORS[estimator]()
            value[estimator] = method.estimate(log, target, reward_model, n_boot=n_boot, seed=seed)
            versus[estimator] = method.contrast(log, target, candidates[control], reward_model, n_boot=n_boot,
                                                seed=seed)  # fmt: skip
        agrees = float(np.asarray(target)[rows, log.actions].mean())
        results[name] = CandidateOPE(value=value, versus_control=versus, agrees_with_logged=agrees)
    chosen = max(results, key=lambda name: results[name].value[select_by].estimate)
    own = mean_interval(log.rewards)
    return PolicyChoice(rows_evaluated=len(log), control=control, select_by=select_by, chosen=chosen,
                        on_policy=OnPolicy(mean=own.mean, ci=[own.low, own.high], n=own.n),
                        candidates=results)  # fmt: skip


class ABOutcome(Result):
    """The platform's verdict on the chosen policy against the control (effect = new − original, per session)."""

    verdict: str | None
    effect: float | None
    ci: list[float] | None
    p_value: float | None
    n_original: int | None
    n_new: int | None
    srm_flagged: bool | None
    page: str


class LoopComparison(Result):
    """The chosen policy's effect over the control three ways: estimated off-policy from the log, measured by the
    A/B test, and true in the world; the two checks of ``benchmarks/loop_e2e.py``."""

    policy: str
    estimator: str
    ope_effect: float
    ope_ci: list[float]
    ab_effect: float | None
    ab_ci: list[float] | None
    true_effect: float
    ope_within_ab_ci: bool
    truth_within_ope_ci: bool
    passed: bool  # both


def compare(choice: PolicyChoice, ab: ABOutcome | None, true_effects: Mapping[str, float]) -> LoopComparison:
    """The chosen policy's OPE effect (by ``choice.select_by``) next to the A/B effect and the true effect."""
    ope = choice.candidates[choice.chosen].versus_control[choice.select_by]
    truth = float(true_effects[choice.chosen])
    measured = ab is not None and ab.effect is not None and ab.ci is not None
    within_ab = bool(measured and ab.ci[0] <= ope.estimate <= ab.ci[1])
    covers = bool(ope.ci[0] <= truth <= ope.ci[1])
    return LoopComparison(
        policy=choice.chosen, estimator=choice.select_by, ope_effect=ope.estimate, ope_ci=list(ope.ci),
        ab_effect=ab.effect if measured else None, ab_ci=list(ab.ci) if measured else None, true_effect=truth,
        ope_within_ab_ci=within_ab, truth_within_ope_ci=covers, passed=within_ab and covers,
    )  # fmt: skip


class LoopResult(Result, kw_only=True):
    """``loop.json``: one turn of the loop — the exploration that logged decisions, the log collected, every
    candidate estimated on the held-out share, the world's truth, the A/B verdict and the comparison."""

    settings: dict[str, Any]
    exploration: dict[str, Any]
    collected: dict[str, Any]
    rows_logged: int
    rows_learned: int
    choice: PolicyChoice
    true_value: dict[str, float]
    true_effect: dict[str, float]
    ab: ABOutcome | None = None
    comparison: LoopComparison
    files: dict[str, str]
    wall_seconds: float
