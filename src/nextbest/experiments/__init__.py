"""A/B-test statistics: design, assignment, analysis, sequential testing, simulation (numpy/scipy only, no I/O).

* :mod:`~nextbest.experiments.design` — ``sample_size``, ``power``, ``minimum_detectable_effect``, binary
  variants, ``validate_design`` (``validate_design_binary`` for a conversion rate). Example: sd 15, effect 0.7,
  alpha 0.05, power 0.8 -> 7,210 per arm two-sided, 5,679 one-sided (exact t-test; the normal approximation
  gives 7,209 / 5,678).
* :mod:`~nextbest.experiments.assignment` — ``assign``, ``assign_many``: SHA-256 of (salt, unit id).
* :mod:`~nextbest.experiments.analysis` — ``analyze`` (Welch, CUPED), ``analyze_proportions`` (two conversion
  rates), ``bootstrap_ci``, ``srm_test``.
* :mod:`~nextbest.experiments.ratio` — ``analyze_ratio``: a ratio of means (revenue per session) by the delta method.
* :mod:`~nextbest.experiments.bayes` — ``bayes_proportions`` (beta-binomial), ``bayes_means`` / ``bayes_normal``
  (normal model): chance to beat control, expected loss, credible intervals.
* :mod:`~nextbest.experiments.multiplicity` — ``adjust_p_values``: Holm and Benjamini–Hochberg, vectorized.
* :mod:`~nextbest.experiments.metrics` — ``analyze_experiment``: one primary metric, secondary metrics corrected for
  multiplicity, guardrails with an allowed harm, the recommendation; ``analyze_metric`` picks the test by kind.
* :mod:`~nextbest.experiments.sequential` — ``MixtureSPRT``, the always-valid mSPRT.
* :mod:`~nextbest.experiments.simulation` — vectorized error-rate checks.

Parameter mistakes raise :class:`~nextbest.experiments.design.InvalidParameter`, both a
``nextbest.errors.NextbestError`` and a ``ValueError``.
"""

from nextbest.experiments.analysis import (
    AnalysisResult,
    BootstrapResult,
    SRMResult,
    analyze,
    analyze_proportions,
    bootstrap_ci,
    srm_test,
)
from nextbest.experiments.assignment import assign, assign_many
from nextbest.experiments.bayes import BayesResult, bayes_means, bayes_normal, bayes_proportions
from nextbest.experiments.design import (
    BinaryDesignCheck,
    DesignCheck,
    InvalidParameter,
    SampleSize,
    detectable_lift_binary,
    minimum_detectable_effect,
    power,
    power_binary,
    sample_size,
    sample_size_binary,
    validate_design,
    validate_design_binary,
)
from nextbest.experiments.metrics import (
    ExperimentAnalysis,
    Guardrail,
    MetricResult,
    MetricSamples,
    analyze_experiment,
    analyze_metric,
    bayes_of,
)
from nextbest.experiments.multiplicity import CORRECTIONS, adjust_p_values
from nextbest.experiments.ratio import analyze_ratio
from nextbest.experiments.sequential import MixtureSPRT, SequentialResult

__all__ = [
    "CORRECTIONS",
    "AnalysisResult",
    "BayesResult",
    "BinaryDesignCheck",
    "BootstrapResult",
    "DesignCheck",
    "ExperimentAnalysis",
    "Guardrail",
    "InvalidParameter",
    "MetricResult",
    "MetricSamples",
    "MixtureSPRT",
    "SRMResult",
    "SampleSize",
    "SequentialResult",
    "adjust_p_values",
    "analyze",
    "analyze_experiment",
    "analyze_metric",
    "analyze_proportions",
    "analyze_ratio",
    "assign",
    "assign_many",
    "bayes_means",
    "bayes_normal",
    "bayes_of",
    "bayes_proportions",
    "bootstrap_ci",
    "detectable_lift_binary",
    "minimum_detectable_effect",
    "power",
    "power_binary",
    "sample_size",
    "sample_size_binary",
    "srm_test",
    "validate_design",
    "validate_design_binary",
]
