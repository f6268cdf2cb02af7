"""WHO should sales contact: a lead score at decision points, measured on held-out leads (no simulator needed).

A CRM export holds each lead's final state; scoring a test lead from it would "predict" conversion from steps
taken after the decision (a lead with an account manager is nearly subscribed). So every score is taken at a
**decision point**: for each funnel step s before the conversion step, the leads that reached s, described only by
what was known there — their covariates and the steps reached up to s in funnel order (every later step masked).
The outcome is whether the lead converted.

Three scorers on the same decision points:
* ``horizon_scores`` (the lead score): P(conversion within the horizon | covariates, steps reached so far) — the
  funnel simulator fitted on the train leads continues each lead from its state for the horizon under the logged
  process (``replications`` simulated futures per lead, common random numbers); a lead converts when its latent
  threshold falls below P(conversion | the key steps it reaches), so early-stage leads get the chance of the
  steps still ahead of them;
* ``funnel_scores``: P(conversion | covariates, key steps reached so far) from the funnel model alone
  (``nextbest.sim.funnel_model.FunnelModel``), no future steps;
* ``GradientBoostedScorer``: a LightGBM classifier on the covariate codes, the known steps and the decision step,
  fitted on the train leads' decision points.

``ranking_quality`` pools the test leads' decision points (one row per lead and step reached) and reports, each
with a percentile interval from a bootstrap that resamples **leads** (a lead's rows move together):

    AUC, PR-AUC (average precision)
    capture@k = Σ_{rows in the top k% of scores} y / Σ y       (random ranking: k; k = 10%, 20%; ties shared)
    lift@10  = capture@10 / 0.10
    reliability: mean score and observed conversion rate per score decile (calibration)
    gains(k)  = capture@k at k = 5%, 10%, ..., 100% (the cumulative gains curve; lift(k) = gains(k) / k)

``as_of_cutoff`` scores the test leads a second way, the way sales would on a given day: every lead that had
entered by a cutoff date inside the test period and had not converted by it, described by the steps it had
reached by that date (``state_at_cutoff``), scored by the same lead score; the outcome is conversion
after the cutoff. Nothing dated after the cutoff reaches the score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from nextbest.data import lead_dates
from nextbest.data.funnel_spec import FunnelSpec
from nextbest.errors import DataError, NextbestError
from nextbest.results import Result
from nextbest.sim.funnel_model import FunnelModel
from nextbest.sim.journeys import Journeys, journeys_from_frame
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


#: Simulated futures per lead of the horizon score.
HORIZON_REPLICATIONS = 100


def horizon_scores(model: FunnelModel, codes: np.ndarray, known: np.ndarray, horizon: int = 10,
                   replications: int = HORIZON_REPLICATIONS, seed: int = 0) -> np.ndarray:  # fmt: skip
    """P(conversion within `horizon` weeks | covariate codes (n, C), steps reached (n, steps)): the share of
    `replications` simulated futures under the logged process (the conservative reading) that convert. Each
    distinct state is simulated once, its futures drawn from a generator seeded by (seed, the state), so a lead's
    score depends on its state and the seed only — never on which other leads are scored with it (module doc)."""
    from nextbest.agents.baselines import make_baseline
    from nextbest.sim.funnel import FunnelConfig, FunnelSimulator
    from nextbest.sim.rollout import run_episodes

    states, inverse = np.unique(np.column_stack([codes, known]).astype(np.int64), axis=0, return_inverse=True)
    n_codes = codes.shape[1]
    sim = FunnelSimulator(model, config=FunnelConfig(horizon=horizon))
    rng = np.random.default_rng(seed)
    state = sim.reset(np.tile(states[:, :n_codes], (replications, 1)), rng)
    thresholds = state.u.shape[1]
    futures = np.stack([np.random.default_rng([seed, *row]).random((replications, thresholds))
                        for row in states.tolist()], axis=1)  # (replications, states, thresholds)  # fmt: skip
    state.u[:] = futures.reshape(-1, state.u.shape[1])
    state.reached[:] = np.tile(states[:, n_codes:].astype(bool), (replications, 1))
    state.key[:] = state.reached[:, sim.layout.key_index]
    rollout = run_episodes(sim, state, make_baseline("logged", sim.config, sim.layout), rng)
    return rollout.state.subscribed.reshape(replications, len(states)).mean(axis=0)[inverse.ravel()]


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


#: The shares of rows contacted at which the gains curve is written (5%, 10%, ..., 100%).
GAINS_SHARES = tuple(round(0.05 * k, 2) for k in range(1, 21))


class GainsPoint(Result):
    """One point of the cumulative gains curve: contacting the top ``share_contacted`` of the rows by score
    reaches ``share_captured`` of the converting rows (``capture``), with its percentile bootstrap interval over
    leads; ``lift`` = share_captured / share_contacted (random ranking: 1), its interval the same divided."""

    share_contacted: float
    share_captured: float
    share_captured_ci: list[float]
    lift: float
    lift_ci: list[float]


class RankingQuality(Result):
    """How well a score ranks the held-out decision points (module doc), each figure with its interval; ``gains``
    the cumulative gains curve at ``GAINS_SHARES`` with its band."""

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
    gains: list[GainsPoint] = []


def gains(scores: np.ndarray, outcome: np.ndarray, shares) -> np.ndarray:
    """The cumulative gains curve at ``shares``: for each share k, the share of the positives among the top
    ceil(k·n) rows by score (``capture``). Rows tied with the last one taken count in proportion (the expected
    capture under a random order of the ties): through the ends of the groups of tied scores, taken best first,
    the curve passes through (rows so far, positives so far) and between them it is linear. NaN without
    positives."""
    scores, outcome = np.asarray(scores, dtype=float), np.asarray(outcome, dtype=bool)
    shares = np.atleast_1d(np.asarray(shares, dtype=float))
    positives = outcome.sum()
    if positives == 0:
        return np.full(shares.shape, np.nan)
    order = np.argsort(-scores, kind="stable")
    ranked, hits = scores[order], np.cumsum(outcome[order])
    ends = np.flatnonzero(np.append(ranked[1:] != ranked[:-1], True))  # the last row of each group of ties
    take = np.ceil(np.round(shares * scores.size, 9))  # round: 0.15 × 100 is 15.000000000000002 in floats
    return np.interp(take, np.append(0, ends + 1), np.append(0, hits[ends])) / positives


def capture(scores: np.ndarray, outcome: np.ndarray, share: float) -> float:
    """Share of the positives among the top ``share`` of rows by score, ties shared in proportion: ``gains`` at
    one share. A score that ties most leads (the funnel model's floor) gains nothing from the order the rows
    happen to be in."""
    return float(gains(scores, outcome, [share])[0])


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
    replicates, curves = np.empty((n_boot, 5)), np.empty((n_boot, len(GAINS_SHARES)))
    for b in range(n_boot):
        drawn = rng.integers(0, leads.size, leads.size)
        rows = order[np.concatenate([np.arange(starts[d], starts[d] + counts[d]) for d in drawn])]
        replicates[b] = _figures(scores[rows], outcome[rows])
        curves[b] = gains(scores[rows], outcome[rows], GAINS_SHARES)
    intervals = [list(map(float, percentile_interval(replicates[~np.isnan(replicates[:, j]), j], level)))
                 for j in range(5)]  # fmt: skip
    curve = gains(scores, outcome, GAINS_SHARES)
    bands = [percentile_interval(curves[:, j], level) for j in range(len(GAINS_SHARES))]
    gains_points = [GainsPoint(share_contacted=k, share_captured=float(c), share_captured_ci=band,
                               lift=float(c / k), lift_ci=[band[0] / k, band[1] / k])
                    for k, c, band in zip(GAINS_SHARES, curve, bands)]  # fmt: skip
    return RankingQuality(
        rows=len(points), leads=int(leads.size), converting_rows=int(outcome.sum()), base_rate=float(outcome.mean()),
        auc=float(point[0]), auc_ci=intervals[0], pr_auc=float(point[1]), pr_auc_ci=intervals[1],
        top10_capture=float(point[2]), top10_capture_ci=intervals[2], top20_capture=float(point[3]),
        top20_capture_ci=intervals[3], lift_top10=float(point[4]), lift_top10_ci=intervals[4],
        reliability=reliability(scores, outcome), gains=gains_points,
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


class AsOfCutoff(RankingQuality, kw_only=True):
    """The funnel-model score ranked as of a cutoff date (``state_at_cutoff``): one row per lead that had entered
    by ``cutoff`` and not converted by it (``leads``; ``rows`` is the same), the outcome is conversion after it.
    ``entered``: leads with a recorded date on or before the cutoff; ``converted_before``: of them, left out
    because they had converted by it; ``converted_after``: the converting rows; ``undated_steps``: the steps
    the export records without a date, left out of the state (``state_at_cutoff``)."""

    cutoff: str
    entered: int
    converted_before: int
    converted_after: int
    undated_steps: list[str]
    scorer: str = "funnel simulator, within the horizon"


class Who(RankingQuality, kw_only=True):
    """``who`` of evaluation.json: the funnel model's lead score on the held-out decision points (the figures
    above, flat), which scorer that is, the alternatives measured the same way, the top segments by score and,
    when the test frame was given, the same score ranked as of a cutoff date (``as_of_cutoff``)."""

    scorer: str = "funnel simulator, within the horizon"
    alternatives: dict[str, RankingQuality]
    top_segments: list[SegmentScore] = []
    as_of_cutoff: AsOfCutoff | None = None


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
                level: float = 0.95, test_frame: pd.DataFrame | None = None, horizon: int = 10) -> Who:  # fmt: skip
    """The lead scores of ``model`` (fitted on ``train``) and of the gradient-boosting alternative (fitted on
    ``train``'s decision points) ranked on ``test``'s decision points, and the top segments by score.

    With ``test_frame`` (the prepared test frame ``test`` was read from, with its date columns) also
    ``as_of_cutoff``: the funnel score ranked as of the middle of the test period (``cutoff_quality``). It stays
    None without the frame, when the spec's conversion step has no date, or when the leads open at the cutoff
    do not include both converters after it and non-converters (nothing to rank)."""
    held_out = decision_points(test, model.encode_leads(test))
    scores = horizon_scores(model, held_out.codes, held_out.known, horizon, seed=seed)
    funnel = ranking_quality(scores, held_out, n_boot, seed, level)
    boosted = GradientBoostedScorer(seed).fit(decision_points(train, model.encode_leads(train)))
    alternatives = {"funnel_model": ranking_quality(funnel_scores(model, held_out), held_out, n_boot, seed, level),
                    "gradient_boosting": ranking_quality(boosted.scores(held_out), held_out, n_boot, seed, level)}
    segments = top_segments(held_out, scores, list(model.spec.covariates), model.vocabularies_, model.spec.step_names,
                            level=level)  # fmt: skip
    as_of = None
    if test_frame is not None and "date" in model.spec.step(model.spec.conversion_step).reached:
        state = state_at_cutoff(test_frame, model.spec)
        if 0 < state.converted_after.sum() < len(state):
            as_of = cutoff_quality(model, test_frame, model.spec, state.cutoff, n_boot, seed, level, horizon).to_dict()
    return Who.from_dict({**funnel.to_dict(), "alternatives": {k: q.to_dict() for k, q in alternatives.items()},
                          "top_segments": [s.to_dict() for s in segments], "as_of_cutoff": as_of},
                         "lead score")  # fmt: skip


# ------------------------------------------------------------------------------------------ as of a cutoff date


@dataclass(frozen=True)
class CutoffState:
    """The test leads open at ``cutoff`` (``state_at_cutoff``): ``index`` their positions in the frame,
    ``reached`` the steps each had reached by the cutoff (bool [m, n_steps]), ``converted_after`` the outcome;
    ``entered`` and ``converted_before`` count the leads with a date by the cutoff and those left out because
    they had converted by it; ``undated_steps`` the steps left out of ``reached``."""

    cutoff: pd.Timestamp
    index: np.ndarray
    reached: np.ndarray
    converted_after: np.ndarray
    entered: int
    converted_before: int
    undated_steps: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.index.size)


def default_cutoff(frame: pd.DataFrame, spec: FunnelSpec) -> pd.Timestamp:
    """The middle of the frame's lead dates (each lead's earliest recorded date), to the day:
    first + (last - first) / 2, floored."""
    dates = lead_dates(frame, spec).dropna()
    if dates.empty:
        raise NextbestError("the test leads have no dates: there is no test period to put a cutoff in")
    return (dates.min() + (dates.max() - dates.min()) / 2).floor("D")


def state_at_cutoff(frame: pd.DataFrame, spec: FunnelSpec, cutoff: str | pd.Timestamp | None = None) -> CutoffState:
    """Each test lead's state at ``cutoff`` (default ``default_cutoff``), from the prepared frame's dates.

    * the leads: those that had **entered** by the cutoff — the earliest of the spec's date columns
      (``lead_dates``) ≤ cutoff — and had **not converted** by it (no conversion date ≤ cutoff);
    * a step recorded by a date counts as reached when its date ≤ cutoff (a date after it, or none: not reached);
    * a step recorded **without a date** (a status or a value column, e.g. SalesCRM's messages, read from the
      final status) is **left out** (not reached): the export cannot tell whether it happened before the cutoff,
      and counting it would let the lead's later history into its state. SalesCRM's funnel-model score reads
      only the key steps (all dated), so there the rule moves no score;
    * the outcome: converted **after** the cutoff (conversion date > cutoff). The conversion step must be
      recorded by a date (else NextbestError): without one, neither the leads already converted nor the outcome
      can be told apart.

    The drop-out column has no date either and is not read: a lead that left after the cutoff is still open at
    it. Nothing dated after the cutoff changes the leads, their state or their codes."""
    conversion = spec.step(spec.conversion_step)
    if "date" not in conversion.reached:
        raise NextbestError(f"the conversion step {spec.conversion_step!r} is not recorded by a date: the state "
                            "as of a cutoff needs to know when leads converted")  # fmt: skip
    cutoff = default_cutoff(frame, spec) if cutoff is None else pd.Timestamp(cutoff)
    absent = [column for column in spec.date_columns() if column not in frame.columns]
    if absent:
        raise DataError(f"the test frame lacks the date columns {absent} that the state at a cutoff reads")
    entered = (lead_dates(frame, spec) <= cutoff).to_numpy()
    by_cutoff = [(frame[step.reached["date"]] <= cutoff).to_numpy() if "date" in step.reached
                 else np.zeros(len(frame), dtype=bool) for step in spec.steps]  # fmt: skip
    reached = np.column_stack(by_cutoff)
    converted = frame[conversion.reached["date"]]
    before = reached[:, spec.step_names.index(spec.conversion_step)]
    index = np.flatnonzero(entered & ~before)
    return CutoffState(cutoff, index, reached[index], (converted > cutoff).to_numpy()[index], int(entered.sum()),
                       int((entered & before).sum()),
                       tuple(step.name for step in spec.steps if "date" not in step.reached))  # fmt: skip


def cutoff_points(model: FunnelModel, frame: pd.DataFrame, state: CutoffState) -> DecisionPoints:
    """The open leads of ``state`` as decision points: one row per lead (``lead`` its position in the frame),
    ``known`` the steps reached by the cutoff, ``step`` the last of them in funnel order (-1: none), the codes
    of its covariates as ``model`` encodes them, ``converted`` conversion after the cutoff."""
    n_steps = state.reached.shape[1]
    last = np.where(state.reached.any(axis=1), n_steps - 1 - np.argmax(state.reached[:, ::-1], axis=1), -1)
    codes = model.encode_leads(journeys_from_frame(frame.iloc[state.index], model.spec))
    return DecisionPoints(state.index, last, state.reached, codes, state.converted_after)


def cutoff_quality(model: FunnelModel, frame: pd.DataFrame, spec: FunnelSpec | None = None,
                   cutoff: str | pd.Timestamp | None = None, n_boot: int = 200, seed: int = 0,
                   level: float = 0.95, horizon: int = 10) -> AsOfCutoff:  # fmt: skip
    """The lead score (``horizon_scores``) of the leads open at ``cutoff`` (``state_at_cutoff``; default the
    middle of the frame's lead dates), ranked against conversion after it by ``ranking_quality`` (one row per
    lead; intervals resample leads). ``spec`` defaults to the model's."""
    state = state_at_cutoff(frame, spec or model.spec, cutoff)
    points = cutoff_points(model, frame, state)
    quality = ranking_quality(horizon_scores(model, points.codes, points.known, horizon, seed=seed), points, n_boot,
                              seed, level)  # fmt: skip
    return AsOfCutoff.from_dict({**quality.to_dict(), "cutoff": state.cutoff.date().isoformat(),
                                 "entered": state.entered, "converted_before": state.converted_before,
                                 "converted_after": int(state.converted_after.sum()),
                                 "undated_steps": list(state.undated_steps)}, "lead score as of a cutoff")  # fmt: skip
