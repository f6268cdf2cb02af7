"""`nextbest ab ...`: design an A/B test and analyze its outcomes (JSON out, for people and scripts alike)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

ab_app = typer.Typer(
    help="A/B tests: sample size and coherence of a design; analysis of outcomes (Welch, CUPED, SRM, bootstrap).",
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
        power_binary,
        sample_size_binary,
        validate_design,
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
        achieved = power_binary(sample_size, baseline, lift, alpha, alternative, ratio)
        shown = int(achieved * 100) / 100
        coherent = sample_size >= int(size)
        if coherent:
            message = f"coherent: sample_size {sample_size:,} per arm gives power {shown:.2f} >= {power:g}"
        else:
            message = (
                f"sample_size {sample_size:,} per arm gives power {shown:.2f}, below the stated power {power:g}; "
                f"raise it to {int(size):,} per arm, or accept a power of {shown:.2f}"
            )
        check = {
            "coherent": coherent,
            "required_sample_size": int(size),
            "achieved_power": achieved,
            "sample_size": sample_size,
            "message": message,
        }
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


@ab_app.command("analyze")
def analyze(
    data: Path = typer.Option(..., "--data", help="Outcomes file, one row per unit (.csv or .parquet)."),
    metric: str = typer.Option(..., "--metric", help="Column with the outcome (e.g. revenue)."),
    arm_col: str = typer.Option(..., "--arm-col", help="Column with the arm of each unit."),
    covariate: str | None = typer.Option(
        None, "--covariate", help="Pre-period column for CUPED variance reduction (measured before assignment)."
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
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
    split: str = typer.Option("0.5,0.5", "--split", help="Configured shares control,treatment for the SRM check."),
    srm_threshold: float = typer.Option(0.001, "--srm-threshold", help="SRM flagged when p is below this."),
) -> None:
    """Welch's t-test of treatment minus control, with target test, SRM check and optional CUPED / bootstrap.

    Prints one JSON document: the analysis (effect, ci, p_value, verdict, ...), "srm" (chi-square test of the
    arm counts against --split), "bootstrap" when asked, and "input" (file, rows, ignored rows)."""
    from nextbest.errors import DataError
    from nextbest.experiments import analyze as run_analysis
    from nextbest.experiments import bootstrap_ci, srm_test

    columns = {"--metric": metric, "--arm-col": arm_col}
    if covariate is not None:
        columns["--covariate"] = covariate
    frame = _read_columns(data, columns)
    if control_label == treatment_label:
        raise DataError(f"--control-label and --treatment-label are both {control_label!r}")
    arms = frame[arm_col].astype(str).str.strip().to_numpy()
    is_c = arms == control_label
    is_t = arms == treatment_label
    found = list(dict.fromkeys(arms.tolist()))
    for option, label, mask in (("--control-label", control_label, is_c), ("--treatment-label", treatment_label, is_t)):
        if not mask.any():
            shown = ", ".join(repr(v) for v in found[:10]) + (" ..." if len(found) > 10 else "")
            raise DataError(
                f"{data}: column {arm_col!r} has no rows with arm {label!r} ({option}); labels found: {shown}"
            )
    values = _numeric(frame, metric, data, "--metric")
    kwargs = {}
    if covariate is not None:
        pre = _numeric(frame, covariate, data, "--covariate")
        kwargs = {"covariate_control": pre[is_c], "covariate_treatment": pre[is_t]}
    result = run_analysis(
        values[is_c], values[is_t], alpha=alpha, alternative=alternative, target_effect=target_effect,
        labels=(control_label, treatment_label), **kwargs,
    )  # fmt: skip
    shares = _split(split)
    srm = srm_test({control_label: int(is_c.sum()), treatment_label: int(is_t.sum())},
                   {control_label: shares[0], treatment_label: shares[1]}, threshold=srm_threshold)  # fmt: skip
    payload = result.to_dict()
    payload["srm"] = srm.to_dict()
    if bootstrap:
        payload["bootstrap"] = bootstrap_ci(
            values[is_c], values[is_t], n_boot=bootstrap, alpha=alpha, seed=seed
        ).to_dict()
    payload["input"] = {
        "file": str(data),
        "rows": int(len(frame)),
        "ignored_rows": int((~(is_c | is_t)).sum()),
        "metric": metric,
        "arm_col": arm_col,
        "covariate": covariate,
        "control_label": control_label,
        "treatment_label": treatment_label,
    }
    _echo(payload)


def _register_demo() -> None:
    from nextbest.cli.demo import ab_demo

    ab_app.command("demo")(ab_demo)


_register_demo()
