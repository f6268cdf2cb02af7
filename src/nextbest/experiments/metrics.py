"""An experiment with several metrics: one primary, secondary metrics corrected for multiplicity, guardrails.

* The **primary** metric decides: it is tested at ``alpha`` with the design's alternative and target, alone (no
  correction: it was chosen before the data).
* **Secondary** metrics are tested two-sided; their p-values are adjusted across the secondary family by Holm
  (default) or Benjamini–Hochberg (:mod:`~nextbest.experiments.multiplicity`) and a secondary metric is
  ``significant`` when its adjusted p-value is at most alpha.
* A **guardrail** names the direction of harm (``increase``: e.g. bounce rate, latency; ``decrease``: e.g. revenue)
  and the largest harm allowed, ``max_harm`` >= 0 in metric units. With the two-sided (1 − alpha) interval
  ``[low, high]`` of treatment − control, a guardrail **fails** when the interval excludes the allowed harm: the
  whole interval lies beyond it (``high < −max_harm`` for a decrease, ``low > max_harm`` for an increase); it
  **passes** when the interval lies wholly on the allowed side (the harm is shown smaller than allowed: ``low >
  −max_harm`` / ``high < max_harm``) and is **inconclusive** otherwise. Guardrails are not corrected (each one
  is a veto: correcting would make vetoes rarer).

Each metric is continuous (Welch; CUPED when a pre-period covariate is given), binary (0/1 values: the
two-proportion z-test and a beta-binomial posterior) or a ratio (per-unit numerator and denominator: the delta
method). The recommendation: ship when the primary improves and no guardrail fails.

A secondary metric or guardrail that cannot be analyzed (no variation in either arm, a zero mean denominator) does
not sink the others: its result carries ``analysis`` None and the reason in ``error``; it is left out of the
correction, and a guardrail that cannot be checked withholds "ship" ("no decision"). The primary metric must be
analyzable (InvalidParameter otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from nextbest.experiments.analysis import AnalysisResult, _plain, analyze, analyze_proportions
from nextbest.experiments.bayes import BayesResult, bayes_normal, bayes_proportions
from nextbest.experiments.design import InvalidParameter, check_alpha
from nextbest.experiments.multiplicity import adjust_p_values, check_correction
from nextbest.experiments.ratio import analyze_ratio

Kind = Literal["continuous", "binary", "ratio"]
HARMS = ("increase", "decrease")


@dataclass(frozen=True)
class MetricSamples:
    """One metric's per-unit values in each arm (control, treatment). A ratio metric also has per-unit
    denominators; a continuous one may have a pre-period covariate per unit (CUPED). ``kind`` None: "ratio" with
    denominators, "binary" when every value is 0 or 1 (and no covariate), else "continuous"."""

    name: str
    control: Any
    treatment: Any
    denominator_control: Any = None
    denominator_treatment: Any = None
    covariate_control: Any = None
    covariate_treatment: Any = None
    kind: Kind | None = None

    def resolved_kind(self) -> str:
        """The kind this metric is analyzed as (see the class docstring)."""
        if self.kind is not None:
            return self.kind
        if self.denominator_control is not None or self.denominator_treatment is not None:
            return "ratio"
        if self.covariate_control is None and all(_zero_one(v) for v in (self.control, self.treatment)):
            return "binary"
        return "continuous"


def _zero_one(values: Any) -> bool:
    array = np.asarray(values, dtype=np.float64)
    return array.size > 0 and bool(np.all((array == 0) | (array == 1)))


@dataclass(frozen=True)
class Guardrail:
    """The harm a guardrail metric may show: its direction and the largest size allowed (metric units)."""

    harm: Literal["increase", "decrease"]
    max_harm: float = 0.0

    def __post_init__(self) -> None:
        if self.harm not in HARMS:
            raise InvalidParameter(f"a guardrail's harm is 'increase' or 'decrease', got {self.harm!r}")
        if not (np.isfinite(self.max_harm) and self.max_harm >= 0):
            raise InvalidParameter(f"a guardrail's max_harm is a finite number >= 0, got {self.max_harm!r}")

    def status(self, interval: tuple[float, float]) -> str:
        """"fails", "passes" or "inconclusive" for the two-sided interval of treatment − control (module doc)."""
        low, high = interval
        if self.harm == "decrease":
            return "fails" if high < -self.max_harm else "passes" if low > -self.max_harm else "inconclusive"
        return "fails" if low > self.max_harm else "passes" if high < self.max_harm else "inconclusive"


@dataclass(frozen=True)
class MetricResult:
    """One metric's analysis in its role; ``p_value_adjusted`` and ``significant`` carry the correction
    (secondary metrics; the primary's equal its own test), ``guardrail`` the status of a guardrail. A metric that
    cannot be analyzed has ``analysis`` None, ``p_value_adjusted`` None and the reason in ``error``."""

    name: str
    role: Literal["primary", "secondary", "guardrail"]
    kind: str
    analysis: AnalysisResult | None
    p_value_adjusted: float | None
    significant: bool
    bayesian: BayesResult | None = None
    harm: str | None = None
    max_harm: float | None = None
    guardrail: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _plain({
            "name": self.name, "role": self.role, "kind": self.kind, "p_value_adjusted": self.p_value_adjusted,
            "significant": self.significant, "harm": self.harm, "max_harm": self.max_harm,
            "guardrail": self.guardrail, "error": self.error,
            "analysis": self.analysis.to_dict() if self.analysis is not None else None,
            "bayesian": self.bayesian.to_dict() if self.bayesian is not None else None,
        })  # fmt: skip


@dataclass(frozen=True)
class ExperimentAnalysis:
    """Every metric of one experiment, the correction used and the recommendation."""

    primary: MetricResult
    secondary: list[MetricResult]
    guardrails: list[MetricResult]
    correction: str
    alpha: float
    recommendation: Literal["ship", "do not ship", "no decision"]
    summary: str
    assumptions: list[str] = field(default_factory=list)

    @property
    def metrics(self) -> list[MetricResult]:
        return [self.primary, *self.secondary, *self.guardrails]

    def to_dict(self) -> dict[str, Any]:
        return {
            "recommendation": self.recommendation, "summary": self.summary, "correction": self.correction,
            "alpha": self.alpha, "primary": self.primary.to_dict(),
            "secondary": [m.to_dict() for m in self.secondary], "guardrails": [m.to_dict() for m in self.guardrails],
            "assumptions": list(self.assumptions),
        }  # fmt: skip


def analyze_metric(samples: MetricSamples, alpha: float = 0.05, alternative: str = "two-sided",
                   target_effect: float = 0.0, labels: tuple[str, str] = ("control", "treatment")) -> AnalysisResult:
    """The frequentist analysis of one metric by its kind: Welch (CUPED with a covariate), the two-proportion
    z-test, or the delta method for a ratio."""
    kind = samples.resolved_kind()
    common = {"alpha": alpha, "alternative": alternative, "target_effect": target_effect, "labels": labels}
    if kind == "ratio":
        if samples.denominator_control is None or samples.denominator_treatment is None:
            raise InvalidParameter(f"metric {samples.name!r}: a ratio needs the denominators of both arms")
        return analyze_ratio(samples.control, samples.denominator_control, samples.treatment,
                             samples.denominator_treatment, **common)  # fmt: skip
    if kind == "binary" and samples.covariate_control is None:
        control, treatment = (np.asarray(v, dtype=np.float64) for v in (samples.control, samples.treatment))
        if not (_zero_one(control) and _zero_one(treatment)):
            raise InvalidParameter(f"metric {samples.name!r} is binary: its values must all be 0 or 1")
        return analyze_proportions(int(control.sum()), control.size, int(treatment.sum()), treatment.size, **common)
    return analyze(samples.control, samples.treatment, covariate_control=samples.covariate_control,
                   covariate_treatment=samples.covariate_treatment, **common)  # fmt: skip


def bayes_of(samples: MetricSamples, analysis: AnalysisResult, alpha: float = 0.05, seed: int = 0) -> BayesResult:
    """The Bayesian companion of ``analysis``: beta-binomial on the conversions of a binary metric without
    covariate, else the normal posterior N(effect, se²) of :func:`~nextbest.experiments.bayes.bayes_normal`."""
    if samples.resolved_kind() == "binary" and analysis.method == "two-proportion z-test":
        control, treatment = (np.asarray(v, dtype=np.float64) for v in (samples.control, samples.treatment))
        return bayes_proportions(int(control.sum()), control.size, int(treatment.sum()), treatment.size, alpha,
                                 seed=seed)  # fmt: skip
    return bayes_normal(analysis.effect, analysis.standard_error, alpha)


def analyze_experiment(
    primary: MetricSamples,
    secondary: tuple[MetricSamples, ...] | list[MetricSamples] = (),
    guardrails: tuple[tuple[MetricSamples, Guardrail], ...] | list[tuple[MetricSamples, Guardrail]] = (),
    alpha: float = 0.05,
    alternative: str = "two-sided",
    target_effect: float = 0.0,
    correction: str = "holm",
    labels: tuple[str, str] = ("control", "treatment"),
    bayesian: bool = False,
    seed: int = 0,
) -> ExperimentAnalysis:
    """Analyze every metric of one experiment in its role (module docstring) and recommend.

    ``bayesian`` adds each metric's posterior (chance to beat control, expected loss, credible interval)."""
    alpha = check_alpha(alpha)
    correction = check_correction(correction)
    names = [primary.name, *(m.name for m in secondary), *(m.name for m, _ in guardrails)]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InvalidParameter(f"each metric is named once; repeated: {', '.join(repeated)}")

    def result(samples: MetricSamples, role: str, analysis: AnalysisResult, adjusted: float, significant: bool,
               **extra: Any) -> MetricResult:  # fmt: skip
        posterior = bayes_of(samples, analysis, alpha, seed) if bayesian else None
        return MetricResult(samples.name, role, samples.resolved_kind(), analysis, adjusted, significant,  # type: ignore[arg-type]
                            posterior, **extra)  # fmt: skip

    main = analyze_metric(primary, alpha, alternative, target_effect, labels)
    primary_result = result(primary, "primary", main, main.p_value, main.p_value < alpha)
    side = [_two_sided(m, alpha, labels) for m in secondary]
    analyzable = [a.p_value for a, _ in side if a is not None]
    adjusted = iter(adjust_p_values(analyzable, correction) if analyzable else ())
    secondary_results = []
    for samples, (analysis, error) in zip(secondary, side, strict=True):
        if analysis is None:
            secondary_results.append(_unanalyzable(samples, "secondary", error))
        else:
            q = float(next(adjusted))
            secondary_results.append(result(samples, "secondary", analysis, q, q <= alpha))
    guard_results = []
    for samples, guard in guardrails:
        analysis, error = _two_sided(samples, alpha, labels)
        if analysis is None:
            guard_results.append(_unanalyzable(samples, "guardrail", error, harm=guard.harm, max_harm=guard.max_harm))
            continue
        guard_results.append(result(samples, "guardrail", analysis, analysis.p_value, analysis.p_value < alpha,
                                    harm=guard.harm, max_harm=guard.max_harm,
                                    guardrail=guard.status(analysis.ci_two_sided)))  # fmt: skip
    recommendation, summary = _recommend(primary_result, secondary_results, guard_results, correction, alpha)
    assumptions = [
        f"secondary metrics: two-sided tests, p-values adjusted by {_CORRECTION_NAMES[correction]} across "
        f"{len(secondary_results)} metric(s); the primary metric is tested alone at alpha = {alpha:g}",
        f"guardrails: the two-sided {1 - alpha:.0%} interval against the allowed harm, not corrected",
    ]
    return ExperimentAnalysis(primary_result, secondary_results, guard_results, correction, alpha,
                              recommendation, summary, assumptions)  # fmt: skip


_CORRECTION_NAMES = {"holm": "Holm", "bh": "Benjamini-Hochberg", "none": "no correction"}


def _two_sided(samples: MetricSamples, alpha: float, labels: tuple[str, str]) -> tuple[AnalysisResult | None, str]:
    """The two-sided analysis of a secondary metric or guardrail, or None and why it cannot be analyzed."""
    try:
        return analyze_metric(samples, alpha, "two-sided", 0.0, labels), ""
    except InvalidParameter as error:
        return None, str(error)


def _unanalyzable(samples: MetricSamples, role: str, error: str, **extra: Any) -> MetricResult:
    """The result of a metric that cannot be analyzed: no analysis, no p-value, the reason."""
    return MetricResult(samples.name, role, samples.resolved_kind(), None, None, False, error=error,  # type: ignore[arg-type]
                        **extra)  # fmt: skip


def _recommend(primary: MetricResult, secondary: list[MetricResult], guardrails: list[MetricResult],
               correction: str, alpha: float) -> tuple[str, str]:  # fmt: skip
    """Ship when the primary improves and no guardrail fails; the one-paragraph summary that says why."""
    failed = [g.name for g in guardrails if g.guardrail == "fails"]
    unclear = [g.name for g in guardrails if g.guardrail == "inconclusive"]
    unchecked = [f"{m.name} ({m.error})" for m in (*secondary, *guardrails) if m.analysis is None]
    moved = [f"{m.name} ({'up' if m.analysis.effect > 0 else 'down'})" for m in secondary if m.significant]
    parts = [primary.analysis.verdict]
    if secondary:
        shown = ", ".join(moved) if moved else "none"
        parts.append(f"Secondary metrics significant after {_CORRECTION_NAMES[correction]} at alpha = {alpha:g}: "
                     f"{shown}.")  # fmt: skip
    if failed:
        parts.append(f"Guardrail(s) failed: {', '.join(failed)} (harm beyond the allowed size).")
    if unclear:
        parts.append(f"Guardrail(s) inconclusive: {', '.join(unclear)} (harm up to the allowed size not excluded).")
    if unchecked:
        parts.append(f"Cannot be analyzed, left out: {'; '.join(unchecked)}.")
    if failed:
        recommendation = "do not ship"
    elif primary.analysis.improves:
        recommendation = "ship"
        if any(g.analysis is None for g in guardrails):
            recommendation = "no decision"
            parts.append("No ship recommendation while a guardrail cannot be checked.")
    elif primary.significant:
        recommendation = "do not ship"
    else:
        recommendation = "no decision"
    return recommendation, " ".join(parts)


__all__ = ["ExperimentAnalysis", "Guardrail", "MetricResult", "MetricSamples", "analyze_experiment",
           "analyze_metric", "bayes_of"]
