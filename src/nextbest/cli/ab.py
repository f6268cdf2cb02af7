"""`nextbest ab ...`: design an A/B test and analyze its outcomes (JSON out, for people and scripts alike)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import typer

ab_app = typer.Typer(
    help="A/B tests: sample size and coherence of a design; analysis of outcomes (Welch, CUPED, conversions, ratios "
    "by the delta method, secondary metrics with Holm/BH, guardrails, Bayesian, SRM, bootstrap).",
    no_args_is_help=True,
)


def _echo(payload: dict[str, Any]) -> None:
    typer.echo(json.dumps(payload, indent=2, allow_nan=False))


@ab_app.command("design")
def design(
    effect: float | None = typer.Option(
        None, "--effect", help="Difference in means to detect (treatment - control), in metric units, e.g. 0.7."
    ),
    sd: float | None = typer.Option(None, "--sd", help="Standard deviation of the metric, e.g. 15."),
    baseline: float | None = typer.Option(
        None, "--baseline", help="Binary metric instead: control conversion rate in (0, 1), with --lift."
    ),
    lift: float | None = typer.Option(
        None, "--lift", help="Binary metric: relative lift of the rate to detect (0.1 = +10 %)."
    ),
    alpha: float = typer.Option(0.05, "--alpha", help="Significance level, in (0, 0.5]."),
    power: float = typer.Option(0.8, "--power", help="Target power, in (alpha, 1)."),
    alternative: str = typer.Option("two-sided", "--alternative", help="two-sided | larger | smaller."),
    ratio: float = typer.Option(1.0, "--ratio", help="n_treatment / n_control."),
    sample_size: int | None = typer.Option(
        None, "--sample-size", help="Planned units per arm (control arm when --ratio != 1): check the design."
    ),
    method: str = typer.Option("t", "--method", help="t (exact t-test power) | normal (z approximation)."),
) -> None:
    """Required units per arm and the control/treatment split; with --sample-size, check the plan.

    An incoherent plan (sample size below the one that reaches the power) prints the JSON, then exits 2 with
    what to change. Example: --effect 0.7 --sd 15 gives 7,210 per arm (exact t-test power)."""
    from nextbest.errors import NextbestError
    from nextbest.experiments import (
        minimum_detectable_effect,
        sample_size_binary,
        validate_design,
        validate_design_binary,
    )
    from nextbest.experiments import sample_size as required_size

    binary = baseline is not None or lift is not None
    if binary:
        if baseline is None or lift is None or effect is not None or sd is not None:
            raise NextbestError("a binary design needs --baseline and --lift (and neither --effect nor --sd)")
        size = sample_size_binary(baseline, lift, alpha, power, alternative, ratio)
        inputs = {"baseline": baseline, "lift": lift, "treatment_rate": baseline * (1 + lift)}
    else:
        if effect is None or sd is None:
            raise NextbestError("give --effect and --sd (or --baseline and --lift for a conversion rate)")
        size = required_size(effect, sd, alpha, power, alternative, ratio, method)
        inputs = {"effect": effect, "sd": sd}
    inputs.update({"alpha": alpha, "power": power, "alternative": alternative, "ratio": ratio})
    payload: dict[str, Any] = {
        "metric": "binary" if binary else "continuous",
        "inputs": inputs,
        "required_sample_size": int(size),
        **{k: v for k, v in size.to_dict().items() if k != "per_arm"},
    }
    if sample_size is None:
        _echo(payload)
        return
    if binary:
        check = validate_design_binary(alpha, power, baseline, baseline * lift, sample_size, alternative,
                                       ratio).to_dict()  # fmt: skip
    else:
        check = validate_design(alpha, power, effect, sd, sample_size, alternative, ratio, method).to_dict()
        payload["minimum_detectable_effect_at_sample_size"] = minimum_detectable_effect(
            sample_size, sd, alpha, power, alternative, ratio, method
        )
    payload["validation"] = check
    _echo(payload)
    if not check["coherent"]:
        raise NextbestError(check["message"])


# --------------------------------------------------------------------------------------------------
# analyze


def _read_columns(path: Path, columns: dict[str, str]):
    """The requested columns of a CSV or Parquet file as a DataFrame; NextbestError naming file and column."""
    import pandas as pd

    from nextbest.errors import DataError

    if not path.is_file():
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise DataError(f"{path}: unsupported file type {suffix or '(none)'!r}; give a .csv or .parquet file")
    wanted = list(dict.fromkeys(columns.values()))
    try:
        if suffix == ".csv":
            available = list(pd.read_csv(path, nrows=0).columns)
        else:
            import pyarrow.parquet as pq

            available = list(pq.read_schema(path).names)
    except Exception as error:  # any parser failure is the user's file, not our bug
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(f"{path}: cannot be read as {suffix[1:].upper()}: {reason}") from None
    for option, column in columns.items():
        if column not in available:
            shown = ", ".join(map(str, available[:20])) + (" ..." if len(available) > 20 else "")
            raise DataError(f"{path}: no column {column!r} (given by {option}); columns are: {shown}")
    try:
        if suffix == ".csv":
            return pd.read_csv(path, usecols=wanted, dtype={columns["--arm-col"]: str}, keep_default_na=True)
        return pd.read_parquet(path, columns=wanted)
    except Exception as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(f"{path}: cannot be read as {suffix[1:].upper()}: {reason}") from None


def _numeric(frame, column: str, path: Path, option: str):
    import numpy as np
    import pandas as pd

    from nextbest.errors import DataError

    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(values)
    if bad.any():
        first = int(np.argmax(bad))
        raise DataError(
            f"{path}: column {column!r} ({option}) has {int(bad.sum()):,} missing or non-numeric values "
            f"(first at data row {first + 1}: {frame[column].iloc[first]!r})"
        )
    return values


def _split(text: str) -> tuple[float, float]:
    from nextbest.errors import NextbestError

    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 2 or min(parts) <= 0:
        raise NextbestError(f"--split {text!r}: give two positive shares control,treatment, e.g. 0.5,0.5")
    return parts  # type: ignore[return-value]


#: How ``--secondary`` and ``--guardrail`` name a metric: a column, or NUMERATOR/DENOMINATOR for a ratio.
METRIC_HELP = "a column, or NUM/DEN for a ratio metric (e.g. revenue/sessions, delta method)"


def _metric_columns(expression: str, option: str) -> tuple[str, str | None]:
    """(numerator column, denominator column or None) of a metric expression ``COL`` or ``NUM/DEN``."""
    from nextbest.errors import NextbestError

    parts = [part.strip() for part in expression.split("/")]
    if not 1 <= len(parts) <= 2 or not all(parts):
        raise NextbestError(f"{option} {expression!r}: give {METRIC_HELP}")
    return parts[0], parts[1] if len(parts) == 2 else None


def _guardrail(text: str) -> tuple[str, str, float]:
    """``METRIC:+HARM`` (an increase up to HARM is allowed) or ``METRIC:-HARM`` (a decrease up to HARM is allowed)
    as (metric expression, harm direction, max harm)."""
    from nextbest.errors import NextbestError

    expression, _, harm = text.rpartition(":")
    harm = harm.strip()
    try:
        size = float(harm[1:]) if harm[:1] in "+-" and len(harm) > 1 else math.nan
    except ValueError:
        size = math.nan
    if not expression.strip() or not (math.isfinite(size) and size >= 0):
        raise NextbestError(f"--guardrail {text!r}: give METRIC:+HARM (increases up to HARM allowed, e.g. "
                            "bounced:+0.01) or METRIC:-HARM (decreases up to HARM allowed, e.g. revenue:-0.5)")
    return expression.strip(), "increase" if harm[0] == "+" else "decrease", size


class _Outcomes:
    """The rows of one outcomes file split by arm, with every column a metric needs read once and checked."""

    def __init__(self, frame, path: Path, arm_col: str, labels: tuple[str, str]) -> None:
        from nextbest.errors import DataError

        self.frame, self.path, self.labels = frame, path, labels
        if labels[0] == labels[1]:
            raise DataError(f"--control-label and --treatment-label are both {labels[0]!r}")
        arms = frame[arm_col].astype(str).str.strip().to_numpy()
        self.is_c, self.is_t = arms == labels[0], arms == labels[1]
        found = list(dict.fromkeys(arms.tolist()))
        for option, label, mask in (("--control-label", labels[0], self.is_c),
                                    ("--treatment-label", labels[1], self.is_t)):  # fmt: skip
            if not mask.any():
                shown = ", ".join(repr(v) for v in found[:10]) + (" ..." if len(found) > 10 else "")
                raise DataError(f"{path}: column {arm_col!r} has no rows with arm {label!r} ({option}); labels "
                                f"found: {shown}")  # fmt: skip

    def arms(self, column: str, option: str):
        """(control values, treatment values) of a numeric column."""
        values = _numeric(self.frame, column, self.path, option)
        return values[self.is_c], values[self.is_t]

    def samples(self, expression: str, option: str, kind: str = "auto", covariate: str | None = None):
        """The MetricSamples of a metric expression (COL or NUM/DEN), with a CUPED covariate when given."""
        from nextbest.experiments import MetricSamples

        numerator, denominator = _metric_columns(expression, option)
        control, treatment = self.arms(numerator, option)
        extra: dict[str, Any] = {}
        if denominator is not None:
            extra["denominator_control"], extra["denominator_treatment"] = self.arms(denominator, option)
        if covariate is not None:
            extra["covariate_control"], extra["covariate_treatment"] = self.arms(covariate, "--covariate")
        return MetricSamples(expression, control, treatment, kind=None if kind == "auto" else kind, **extra)


def _columns_of(metric: str, denominator: str | None, covariate: str | None, secondary: list[str],
                guardrails: list[tuple[str, str, float]]) -> dict[str, str]:  # fmt: skip
    """Every column the analysis reads, keyed by the option that names it (for the file check)."""
    columns = {"--metric": metric}
    for option, column in (("--denominator", denominator), ("--covariate", covariate)):
        if column is not None:
            columns[option] = column
    for option, expression in [*(("--secondary", e) for e in secondary), *(("--guardrail", g[0]) for g in guardrails)]:
        numerator, under = _metric_columns(expression, option)
        columns.setdefault(f"{option} {expression}", numerator)
        if under is not None:
            columns.setdefault(f"{option} {expression} (denominator)", under)
    return columns


@ab_app.command("analyze")
def analyze(
    data: Path = typer.Option(..., "--data", help="Outcomes file, one row per unit (.csv or .parquet)."),
    metric: str = typer.Option(..., "--metric", help="Column with the primary outcome (e.g. revenue)."),
    arm_col: str = typer.Option(..., "--arm-col", help="Column with the arm of each unit."),
    kind: str = typer.Option(
        "auto", "--kind", help="auto | continuous | binary | ratio. auto: ratio with --denominator, binary when every "
        "value is 0 or 1 (two-proportion z-test, beta-binomial posterior), else continuous (Welch)."
    ),
    denominator: str | None = typer.Option(
        None, "--denominator", help="Ratio metric: per-unit denominator column (e.g. sessions); the primary is "
        "sum(metric) / sum(denominator) per arm, by the delta method."
    ),
    covariate: str | None = typer.Option(
        None, "--covariate", help="Pre-period column for CUPED variance reduction (measured before assignment)."
    ),
    secondary: list[str] = typer.Option(
        [], "--secondary", help=f"Secondary metric, repeatable: {METRIC_HELP}. Corrected by --correction."
    ),
    guardrail: list[str] = typer.Option(
        [], "--guardrail", help="Guardrail, repeatable: METRIC:+HARM (increases up to HARM allowed: bounced:+0.01) or "
        "METRIC:-HARM (decreases up to HARM allowed: revenue/sessions:-0.5). Fails when the interval lies beyond."
    ),
    correction: str = typer.Option(
        "holm", "--correction", help="Multiplicity correction across the secondary metrics: holm | bh | none."
    ),
    bayesian: bool = typer.Option(
        False, "--bayesian", help="Add each metric's posterior: chance to beat control, expected loss, credible CI."
    ),
    control_label: str = typer.Option("original", "--control-label", help="Arm label of the control."),
    treatment_label: str = typer.Option("new", "--treatment-label", help="Arm label of the treatment."),
    alpha: float = typer.Option(0.05, "--alpha", help="Significance level, in (0, 0.5]."),
    alternative: str = typer.Option(
        "two-sided", "--alternative", help="two-sided | larger (H1: treatment higher) | smaller (lower is better)."
    ),
    target_effect: float = typer.Option(
        0.0, "--target-effect", help="Effect the treatment must beat (metric units); tested one-sided."
    ),
    bootstrap: int = typer.Option(0, "--bootstrap", min=0, help="Bootstrap replicates for a percentile CI (0: off)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap and of the beta-binomial posterior draws."),
    split: str = typer.Option("0.5,0.5", "--split", help="Configured shares control,treatment for the SRM check."),
    srm_threshold: float = typer.Option(0.001, "--srm-threshold", help="SRM flagged when p is below this."),
) -> None:
    """Analyze the primary metric (Welch, CUPED, conversion or ratio), secondary metrics and guardrails.

    Prints one JSON document: the primary analysis (effect, ci, p_value, verdict, ...), "kind", "recommendation"
    (ship | do not ship | no decision) with its "summary", "metrics" (secondary and guardrails: adjusted p-values,
    guardrail status), "bayesian" with --bayesian, "srm" (chi-square test of the arm counts against --split),
    "bootstrap" when asked, and "input" (file, rows, ignored rows)."""
    from nextbest.errors import NextbestError
    from nextbest.experiments import Guardrail, analyze_experiment, bootstrap_ci, srm_test

    if kind not in ("auto", "continuous", "binary", "ratio"):
        raise NextbestError(f"--kind {kind!r}: give auto, continuous, binary or ratio")
    if kind == "ratio" and denominator is None:
        raise NextbestError("--kind ratio needs --denominator (the per-unit denominator column, e.g. sessions)")
    if denominator is not None and kind not in ("auto", "ratio"):
        raise NextbestError(f"--denominator makes the metric a ratio; it cannot be --kind {kind}")
    guards = [_guardrail(text) for text in guardrail]
    columns = _columns_of(metric, denominator, covariate, secondary, guards)
    frame = _read_columns(data, {**columns, "--arm-col": arm_col})
    outcomes = _Outcomes(frame, data, arm_col, (control_label, treatment_label))
    primary = outcomes.samples(metric if denominator is None else f"{metric}/{denominator}", "--metric", kind,
                               covariate)  # fmt: skip
    result = analyze_experiment(
        primary, [outcomes.samples(e, "--secondary") for e in secondary],
        [(outcomes.samples(e, "--guardrail"), Guardrail(harm, size)) for e, harm, size in guards],  # type: ignore[arg-type]
        alpha=alpha, alternative=alternative, target_effect=target_effect, correction=correction,
        labels=(control_label, treatment_label), bayesian=bayesian, seed=seed,
    )  # fmt: skip
    shares = _split(split)
    counts = {control_label: int(outcomes.is_c.sum()), treatment_label: int(outcomes.is_t.sum())}
    srm = srm_test(counts, dict(zip(counts, shares, strict=True)), threshold=srm_threshold)
    payload = result.primary.analysis.to_dict()
    payload.update({"kind": result.primary.kind, "recommendation": result.recommendation, "summary": result.summary,
                    "correction": result.correction,
                    "metrics": [m.to_dict() for m in (*result.secondary, *result.guardrails)]})  # fmt: skip
    if bayesian:
        payload["bayesian"] = result.primary.bayesian.to_dict()
    payload["srm"] = srm.to_dict()
    if bootstrap:
        if result.primary.kind == "ratio":
            raise NextbestError("--bootstrap resamples a mean per unit; a ratio metric uses the delta method")
        control, treatment = primary.control, primary.treatment
        payload["bootstrap"] = bootstrap_ci(control, treatment, n_boot=bootstrap, alpha=alpha, seed=seed).to_dict()
    payload["input"] = {
        "file": str(data), "rows": int(len(frame)), "ignored_rows": int((~(outcomes.is_c | outcomes.is_t)).sum()),
        "metric": metric, "denominator": denominator, "arm_col": arm_col, "covariate": covariate,
        "secondary": list(secondary), "guardrails": list(guardrail), "control_label": control_label,
        "treatment_label": treatment_label,
    }  # fmt: skip
    _echo(payload)


def _register_demo() -> None:
    from nextbest.cli.demo import ab_demo

    ab_app.command("demo")(ab_demo)


_register_demo()
