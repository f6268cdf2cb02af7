"""WHO should sales contact: a lead score at decision points, measured on held-out leads (no simulator needed).

A CRM export holds each lead's final state; scoring a test lead from it would "predict" conversion from steps
taken after the decision (a lead with an account manager is nearly subscribed). So every score is taken at a
**decision point**: for each funnel step s before the conversion step, the leads that reached s, described only by
what was known there — their covariates and the steps reached up to s in funnel order (every later step masked).
The outcome is whether the lead converted.

Two scorers on the same decision points:
* ``funnel_scores``: P(conversion | covariates, key steps reached so far) from the funnel model fitted on the
  train leads (``nextbest.sim.funnel_model.FunnelModel``);
* ``GradientBoostedScorer``: a LightGBM classifier on the covariate codes, the known steps and the decision step,
  fitted on the train leads' decision points.

``ranking_quality`` pools the test leads' decision points (one row per lead and step reached) and reports, each
with a percentile interval from a bootstrap that resamples **leads** (a lead's rows move together):

    AUC, PR-AUC (average precision)
    capture@k = Σ_{rows in the top k% of scores} y / Σ y       (random ranking: k; k = 10%, 20%; ties shared)
    lift@10  = capture@10 / 0.10
    reliability: mean score and observed conversion rate per score decile (calibration)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from nextbest.errors import NextbestError
from nextbest.results import Result
from nextbest.sim.funnel_model import FunnelModel
from nextbest.sim.journeys import Journeys
from nextbest.stats import percentile_interval, proportion_interval


@dataclass(frozen=True)
class DecisionPoints:
    """Rows = (lead, decision step): ``lead`` index into the journeys, ``step`` index of the decision step,
    ``known`` the steps reached up to it (bool [m, n_steps], later steps False), ``codes`` the lead's covariate
    codes [m, C], ``converted`` the outcome."""

    lead: np.ndarray
    step: np.ndarray
    known: np.ndarray
    codes: np.ndarray
    converted: np.ndarray

    def __len__(self) -> int:
        return int(self.lead.size)


def decision_points(journeys: Journeys, codes: np.ndarray) -> DecisionPoints:
    """Every (lead, step reached before the conversion step) of ``journeys``, with only what was known there."""
    spec = journeys.spec
    conversion = spec.step_names.index(spec.conversion_step)
    steps = [s for s in range(len(spec.step_names)) if s < conversion]
    leads, at = [], []
    for s in steps:
        reached = np.flatnonzero(journeys.reached[:, s])
        leads.append(reached)
        at.append(np.full(reached.size, s))
    lead, step = np.concatenate(leads), np.concatenate(at)
    mask = np.arange(len(spec.step_names))[None, :] <= step[:, None]
    known = journeys.reached[lead] & mask
    return DecisionPoints(lead, step, known, np.asarray(codes)[lead], journeys.reached[lead, conversion].copy())


def funnel_scores(model: FunnelModel, points: DecisionPoints) -> np.ndarray:
    """P(conversion | covariates, key steps known at the decision point) from the fitted funnel model."""
    return model.probability(model.spec.conversion_step, points.codes, points.known[:, model.key_index])


class GradientBoostedScorer:
    """LightGBM on [covariate codes, known steps, decision step]; ``fit(points)`` then ``scores(points)``."""

    def __init__(self, seed: int = 0, n_estimators: int = 200) -> None:
        self.seed, self.n_estimators = seed, n_estimators

    @staticmethod
    def features(points: DecisionPoints) -> np.ndarray:
        return np.column_stack([points.codes, points.known.astype(float), points.step]).astype(float)

    def fit(self, points: DecisionPoints) -> GradientBoostedScorer:
        from lightgbm import LGBMClassifier

        if points.converted.all() or not points.converted.any():
            raise NextbestError("the training leads need converters and non-converters to fit a lead score")
        n_codes = points.codes.shape[1]
        self.model_ = LGBMClassifier(n_estimators=self.n_estimators, learning_rate=0.05, num_leaves=15,
                                     min_child_samples=50, random_state=self.seed, n_jobs=1, verbose=-1)  # fmt: skip
        self.model_.fit(self.features(points), points.converted.astype(int), categorical_feature=list(range(n_codes)))
        return self

    def scores(self, points: DecisionPoints) -> np.ndarray:
        return self.model_.predict_proba(self.features(points))[:, 1]


class Reliability(Result):
    """Per score decile: rows, mean score, observed conversion rate."""

    rows: list[int]
    mean_score: list[float]
    observed: list[float]


class RankingQuality(Result):
    """How well a score ranks the held-out decision points (module doc), each figure with its interval."""

    rows: int
    leads: int
    converting_rows: int
    base_rate: float
    auc: float
    auc_ci: list[float]
    pr_auc: float
    pr_auc_ci: list[float]
    top10_capture: float
    top10_capture_ci: list[float]
    top20_capture: float
    top20_capture_ci: list[float]
    lift_top10: float
    lift_top10_ci: list[float]
    reliability: Reliability
    interval: str = "percentile bootstrap over leads"


def capture(scores: np.ndarray, outcome: np.ndarray, share: float) -> float:
    """Share of the positives among the top ``share`` of rows by score. Rows tied with the last one taken count
    in proportion (the expected capture under a random order of the ties): a score that ties most leads (the
    funnel model's floor) gains nothing from the order the rows happen to be in."""
    positives = outcome.sum()
    if positives == 0:
        return float("nan")
    take = int(np.ceil(share * scores.size))
    if take == 0:
        return 0.0
    threshold = np.sort(scores)[::-1][take - 1]
    above = scores > threshold
    tied = scores == threshold
    room = take - above.sum()
    return float((outcome[above].sum() + outcome[tied].sum() * room / tied.sum()) / positives)


def _figures(scores: np.ndarray, outcome: np.ndarray) -> np.ndarray:
    """[AUC, PR-AUC, capture@10, capture@20, lift@10]."""
    if outcome.all() or not outcome.any():
        return np.full(5, np.nan)
    top10 = capture(scores, outcome, 0.10)
    return np.array([roc_auc_score(outcome, scores), average_precision_score(outcome, scores), top10,
                     capture(scores, outcome, 0.20), top10 / 0.10])  # fmt: skip


def ranking_quality(scores: np.ndarray, points: DecisionPoints, n_boot: int = 200, seed: int = 0,
                    level: float = 0.95) -> RankingQuality:  # fmt: skip
    """The figures of the module doc on ``points`` scored by ``scores``; intervals resample leads."""
    scores = np.asarray(scores, dtype=float)
    outcome = points.converted.astype(bool)
    point = _figures(scores, outcome)
    if np.isnan(point).any():
        raise NextbestError("the held-out decision points need converters and non-converters to rank")
    leads, rows_of = np.unique(points.lead, return_inverse=True)
    order = np.argsort(rows_of, kind="stable")
    starts = np.searchsorted(rows_of[order], np.arange(leads.size))
    counts = np.bincount(rows_of, minlength=leads.size)
    rng = np.random.default_rng(seed)
    replicates = np.empty((n_boot, 5))
    for b in range(n_boot):
        drawn = rng.integers(0, leads.size, leads.size)
        rows = order[np.concatenate([np.arange(starts[d], starts[d] + counts[d]) for d in drawn])]
        replicates[b] = _figures(scores[rows], outcome[rows])
    intervals = [list(map(float, percentile_interval(replicates[~np.isnan(replicates[:, j]), j], level)))
                 for j in range(5)]  # fmt: skip
    return RankingQuality(
        rows=len(points), leads=int(leads.size), converting_rows=int(outcome.sum()), base_rate=float(outcome.mean()),
        auc=float(point[0]), auc_ci=intervals[0], pr_auc=float(point[1]), pr_auc_ci=intervals[1],
        top10_capture=float(point[2]), top10_capture_ci=intervals[2], top20_capture=float(point[3]),
        top20_capture_ci=intervals[3], lift_top10=float(point[4]), lift_top10_ci=intervals[4],
        reliability=reliability(scores, outcome),
    )  # fmt: skip


def reliability(scores: np.ndarray, outcome: np.ndarray, bins: int = 10) -> Reliability:
    """Mean score and observed rate per score decile (equal-count bins; empty bins left out)."""
    order = np.argsort(scores, kind="stable")
    groups = [g for g in np.array_split(order, bins) if g.size]
    return Reliability(rows=[int(g.size) for g in groups], mean_score=[float(scores[g].mean()) for g in groups],
                       observed=[float(outcome[g].mean()) for g in groups])  # fmt: skip


class SegmentScore(Result):
    """A segment of held-out decision points (covariates × decision step): its mean score, and the conversion rate
    its leads then showed with the Wilson interval."""

    segment: dict[str, str]
    rows: int
    leads: int
    mean_score: float
    observed_rate: float
    observed_ci: list[float]


class Who(RankingQuality, kw_only=True):
    """``who`` of evaluation.json: the funnel model's lead score on the held-out decision points (the figures
    above, flat), which scorer that is, the alternatives measured the same way, and the top segments by score."""

    scorer: str = "funnel model"
    alternatives: dict[str, RankingQuality]
    top_segments: list[SegmentScore] = []


def top_segments(points: DecisionPoints, scores: np.ndarray, names: list[str], vocabularies: list[list[str]],
                 step_names: tuple[str, ...], min_rows: int = 10, top: int = 10,
                 level: float = 0.95) -> list[SegmentScore]:  # fmt: skip
    """The ``top`` segments (covariate values × decision step, at least ``min_rows`` decision points) with the
    highest mean score, each with the conversion its leads showed (Wilson interval): who to contact first."""
    labels = [np.append(np.asarray(v, dtype=object), "unseen")[points.codes[:, c]] for c, v in enumerate(vocabularies)]
    keys = np.array(["|".join(map(str, parts)) for parts in zip(*labels, points.step)], dtype=object)
    segments = []
    for key in np.unique(keys):
        rows = np.flatnonzero(keys == key)
        if rows.size < min_rows:
            continue
        converted = int(points.converted[rows].sum())
        *values, step = key.split("|")
        segments.append(SegmentScore(
            segment={**dict(zip(names, values)), "step": step_names[int(step)]}, rows=int(rows.size),
            leads=int(np.unique(points.lead[rows]).size), mean_score=float(scores[rows].mean()),
            observed_rate=converted / rows.size, observed_ci=list(proportion_interval(converted, rows.size, level)),
        ))  # fmt: skip
    return sorted(segments, key=lambda s: -s.mean_score)[:top]


def who_quality(model: FunnelModel, train: Journeys, test: Journeys, n_boot: int = 200, seed: int = 0,
                level: float = 0.95) -> Who:  # fmt: skip
    """The lead scores of ``model`` (fitted on ``train``) and of the gradient-boosting alternative (fitted on
    ``train``'s decision points) ranked on ``test``'s decision points, and the top segments by score."""
    held_out = decision_points(test, model.encode_leads(test))
    scores = funnel_scores(model, held_out)
    funnel = ranking_quality(scores, held_out, n_boot, seed, level)
    boosted = GradientBoostedScorer(seed).fit(decision_points(train, model.encode_leads(train)))
    alternative = ranking_quality(boosted.scores(held_out), held_out, n_boot, seed, level)
    segments = top_segments(held_out, scores, list(model.spec.covariates), model.vocabularies_, model.spec.step_names,
                            level=level)  # fmt: skip
    return Who.from_dict({**funnel.to_dict(), "alternatives": {"gradient_boosting": alternative.to_dict()},
                          "top_segments": [s.to_dict() for s in segments]}, "lead score")  # fmt: skip
