"""The whole uplift comparison on one randomized experiment → the ``uplift.json`` structure.

Split: stratified train/test (``test_size``); TRAIN is split again into a fit part and a validation part
(``validation_size``). Every method is fitted on the fit part; the share of customers to treat
("treat the top-k% by predicted uplift") is chosen by the IPW value on validation, turned into a score
cutoff, and only then applied to TEST. Nothing is chosen on test. All reported metrics are on TEST.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from nextbest.results import Result
from nextbest.stats import difference_interval, mean_interval
from nextbest.uplift.data import Experiment, split_experiment
from nextbest.uplift.learners import UpliftPolicy, make_learners
from nextbest.uplift.metrics import (
    BootstrapMean,
    Economics,
    bootstrap_indices,
    bootstrap_mean,
    curve_on_grid,
    net_contributions,
    policy_value,
    policy_value_curve,
    qini_auc_score,
    qini_curve,
    top_share_policy,
    uplift_auc_score,
)

SHARES = [round(s, 2) for s in np.linspace(0.0, 1.0, 21)]
POLICY_VALUE_RULE = ("net IPW on test: mean(value*Y*1[T=pi(x)]/P(T=pi(x)) - cost*1[pi(x)=treat]), percentile "
                     "bootstrap over test rows")  # fmt: skip
THRESHOLD_RULE = "share maximizing IPW value on the validation part of train, applied as a score cutoff on test"


# ----------------------------------------------------------------------------------------------------------------
# the uplift.json structure
# ----------------------------------------------------------------------------------------------------------------


class MeanOutcome(Result):
    """Mean outcome per arm."""

    treated: float
    control: float


class AverageEffect(Result):
    """Average treatment effect (treated minus control mean) with its Welch normal interval and standard error."""

    estimate: float
    ci: list[float]
    se: float


class DatasetSummary(Result):
    """The experiment: where it came from, its arms and outcome, rows per arm and the average treatment effect."""

    source: str
    treatment_col: str
    treatment: str
    control: str
    outcome: str
    binary_outcome: bool
    features: list[str]
    encoded_features: list[str]
    rows: int
    dropped_other_treatments: int
    dropped_missing_outcome: int
    treated: int
    control_rows: int
    propensity: float
    mean_outcome: MeanOutcome
    outcome_sd: float
    ate: AverageEffect


class SplitSummary(Result):
    """How the rows were split into fit, validation and test."""

    test_size: float
    validation_size_of_train: float
    fit_rows: int
    validation_rows: int
    test_rows: int
    stratified_by: str


class UpliftSettings(Result, kw_only=True):
    """The run's settings and economics, and the rules of the policy value and of the threshold (as text)."""

    seed: int
    bootstrap: int
    base_learner: str
    level: float
    shares_grid: list[float]
    propensity: float
    outcome_value: float = 1.0  # files written before economics existed: the outcome itself
    treatment_cost: float = 0.0
    policy_value: str
    threshold: str


class PolicyValue(BootstrapMean, kw_only=True):
    """A method's policy on test: its IPW net value with interval, the share it treated, and the share, value and
    score cutoff chosen on validation (cutoff None: treat everyone or no one)."""

    treated_share: float
    validation_share: float
    validation_value: float
    score_cutoff: float | None


class Curve(Result):
    """A curve over the share of test customers targeted."""

    share: list[float]
    value: list[float]


class MethodCurves(Result):
    """The Qini curve and the policy-value curve of one method, on test."""

    qini: Curve
    policy_value: Curve


class MethodResult(Result):
    """One uplift method (or the response-model baseline) on test."""

    qini_coefficient: float | None
    auuc: float | None
    policy_value: PolicyValue
    treat_all: BootstrapMean
    treat_none: BootstrapMean
    vs_treat_none: BootstrapMean
    vs_treat_all: BootstrapMean
    is_uplift_method: bool
    curves: MethodCurves
    fit_seconds: float


class BestUpliftMethod(Result):
    """The uplift method with the best validation value, and whether its interval clears treat-none."""

    name: str
    chosen_by: str
    policy_value: PolicyValue
    ci_low_above_treat_none: bool
    ci_low_above_treat_none_ci_high: bool
    vs_treat_none: BootstrapMean
    vs_treat_all: BootstrapMean


class UpliftResult(Result):
    """The whole comparison: ``uplift.json`` of `nextbest uplift run` (methods by name, in fitting order)."""

    dataset: DatasetSummary
    split: SplitSummary
    settings: UpliftSettings
    treat_all: BootstrapMean
    treat_none: BootstrapMean
    methods: dict[str, MethodResult]
    best_uplift_method: BestUpliftMethod
    wall_seconds: float


def dataset_summary(experiment: Experiment, level: float = 0.95) -> DatasetSummary:
    """Rows, arms, mean outcome per arm and the average treatment effect with a Welch normal interval."""
    y, t = experiment.y, experiment.t.astype(bool)
    y1, y0 = y[t], y[~t]
    ate = difference_interval(mean_interval(y1, level), mean_interval(y0, level))
    return DatasetSummary(
        source=experiment.source,
        treatment_col=experiment.treatment_col,
        treatment=experiment.treatment,
        control=experiment.control,
        outcome=experiment.outcome,
        binary_outcome=experiment.binary_outcome,
        features=experiment.features,
        encoded_features=list(experiment.X.columns),
        rows=int(len(y)),
        dropped_other_treatments=experiment.dropped_other_treatments,
        dropped_missing_outcome=experiment.dropped_missing_outcome,
        treated=int(t.sum()),
        control_rows=int((~t).sum()),
        propensity=experiment.propensity,
        mean_outcome=MeanOutcome(treated=float(y1.mean()), control=float(y0.mean())),
        outcome_sd=float(y.std(ddof=1)),
        ate=AverageEffect(estimate=float(ate.mean), ci=[float(ate.low), float(ate.high)], se=float(ate.se)),
    )


def choose_share(
    y, t, scores, propensity: float, shares=SHARES, economics: Economics = Economics()
) -> tuple[float, float, float]:
    """The share maximizing the IPW net value on validation → (share, validation value, score cutoff)."""
    values = policy_value_curve(y, t, scores, propensity, shares, economics)
    best = int(np.argmax(values))
    share = float(shares[best])
    ordered = np.sort(np.asarray(scores, float))[::-1]
    k = int(round(share * ordered.size))
    if k == 0:
        cutoff = float("inf")
    elif k >= ordered.size:
        cutoff = float("-inf")
    else:
        cutoff = float(ordered[k - 1])
    return share, float(values[best]), cutoff


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def run_uplift(
    experiment: Experiment,
    *,
    seed: int = 0,
    bootstrap: int = 1000,
    test_size: float = 0.3,
    validation_size: float = 0.3,
    base: str = "lgbm",
    level: float = 0.95,
    economics: Economics = Economics(),
    progress: Callable[[str], None] | None = None,
) -> UpliftResult:
    """Fit every method, choose its targeting share on validation, score it on test. Returns the ``uplift.json``
    structure (`UpliftResult`; ``.write(path)`` writes the file).

    Policy values are net of ``economics``: ``outcome_value`` per unit of outcome, ``treatment_cost`` per treated
    customer (defaults 1 and 0: the outcome itself); the share is chosen on that net value."""
    started = time.perf_counter()
    train_idx, test_idx = split_experiment(experiment, test_size, seed)
    train, test = experiment.subset(train_idx), experiment.subset(test_idx)
    fit_rel, val_rel = split_experiment(train, validation_size, seed + 1)
    fit, val = train.subset(fit_rel), train.subset(val_rel)
    p = experiment.propensity

    boot = bootstrap_indices(len(test.y), bootstrap, seed + 2)
    treat_all_terms = net_contributions(test.y, test.t, np.ones(len(test.y), bool), p, economics)
    treat_none_terms = net_contributions(test.y, test.t, np.zeros(len(test.y), bool), p, economics)
    treat_all = bootstrap_mean(treat_all_terms, boot, level)
    treat_none = bootstrap_mean(treat_none_terms, boot, level)
    shares = [float(share) for share in SHARES]

    methods: dict[str, MethodResult] = {}
    learners = make_learners(p, experiment.binary_outcome, base, seed)
    for name, learner in learners.items():
        tick = time.perf_counter()
        learner.fit(fit.X, fit.y, fit.t)
        val_scores = learner.predict_uplift(val.X)
        test_scores = learner.predict_uplift(test.X)
        share, val_value, cutoff = choose_share(val.y, val.t, val_scores, p, economics=economics)
        treat = UpliftPolicy(learner, cutoff, name)(test.X) == 1
        terms = net_contributions(test.y, test.t, treat, p, economics)
        value = bootstrap_mean(terms, boot, level)
        qx, qy = qini_curve(test.y, test_scores, test.t)
        q_share, q_value = curve_on_grid(qx, qy)
        methods[name] = MethodResult(
            qini_coefficient=qini_auc_score(test.y, test_scores, test.t),
            auuc=uplift_auc_score(test.y, test_scores, test.t),
            policy_value=PolicyValue(estimate=value.estimate, ci=value.ci, treated_share=float(treat.mean()),
                                     validation_share=share, validation_value=val_value,
                                     score_cutoff=_finite(cutoff)),
            treat_all=treat_all,
            treat_none=treat_none,
            vs_treat_none=bootstrap_mean(terms - treat_none_terms, boot, level),
            vs_treat_all=bootstrap_mean(terms - treat_all_terms, boot, level),
            is_uplift_method=name != "response_model",
            curves=MethodCurves(
                qini=Curve(share=q_share, value=q_value),
                policy_value=Curve(share=shares,
                                   value=policy_value_curve(test.y, test.t, test_scores, p, SHARES, economics)),
            ),
            fit_seconds=time.perf_counter() - tick,
        )  # fmt: skip
        if progress is not None:
            progress(name)

    uplift_names = [n for n, m in methods.items() if m.is_uplift_method]
    best_name = max(uplift_names, key=lambda n: methods[n].policy_value.validation_value)
    best = methods[best_name]
    best_low = best.policy_value.ci[0]
    return UpliftResult(
        dataset=dataset_summary(experiment, level),
        split=SplitSummary(
            test_size=test_size,
            validation_size_of_train=validation_size,
            fit_rows=int(len(fit.y)),
            validation_rows=int(len(val.y)),
            test_rows=int(len(test.y)),
            stratified_by="arm x (outcome > 0)",
        ),
        settings=UpliftSettings(seed=seed, bootstrap=bootstrap, base_learner=base, level=level, shares_grid=shares,
                                propensity=p, outcome_value=economics.outcome_value,
                                treatment_cost=economics.treatment_cost, policy_value=POLICY_VALUE_RULE,
                                threshold=THRESHOLD_RULE),  # fmt: skip
        treat_all=treat_all,
        treat_none=treat_none,
        methods=methods,
        best_uplift_method=BestUpliftMethod(
            name=best_name,
            chosen_by="validation IPW value (train only)",
            policy_value=best.policy_value,
            ci_low_above_treat_none=bool(best_low > treat_none.estimate),
            ci_low_above_treat_none_ci_high=bool(best_low > treat_none.ci[1]),
            vs_treat_none=best.vs_treat_none,
            vs_treat_all=best.vs_treat_all,
        ),
        wall_seconds=time.perf_counter() - started,
    )


__all__ = [
    "BestUpliftMethod",
    "DatasetSummary",
    "MethodResult",
    "PolicyValue",
    "UpliftResult",
    "UpliftSettings",
    "choose_share",
    "dataset_summary",
    "policy_value",
    "run_uplift",
    "top_share_policy",
]
