"""`nextbest uplift ...`: uplift modelling on a randomized experiment (Hillstrom or any table)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from nextbest.uplift.metrics import BootstrapMean
    from nextbest.uplift.run import UpliftResult

uplift_app = typer.Typer(help="Uplift: who to treat, learned from a randomized experiment.", no_args_is_help=True)


@uplift_app.command("run")
def run(
    data: str = typer.Option(..., "--data", help="'hillstrom' (the shared data set) or a CSV/Parquet file."),
    out: Path = typer.Option(..., "--out", help="Run folder for uplift.json and the figures (created if missing)."),
    treatment_col: str | None = typer.Option(
        None, "--treatment-col", help="Column holding the arm (default for hillstrom: segment)."
    ),
    treatment: str | None = typer.Option(
        None, "--treatment", help="Value of the treated arm (hillstrom: Mens E-Mail)."
    ),
    control: str | None = typer.Option(None, "--control", help="Value of the control arm (hillstrom: No E-Mail)."),
    outcome: str | None = typer.Option(None, "--outcome", help="Outcome column (hillstrom: spend)."),
    features: str | None = typer.Option(
        None, "--features", help="Comma-separated feature columns; default: every other column."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the split, the models and the bootstrap."),
    bootstrap: int = typer.Option(1000, "--bootstrap", min=0, help="Bootstrap replicates of the intervals."),
    test_size: float = typer.Option(0.3, "--test-size", min=0.05, max=0.9, help="Share of rows held out for test."),
    base: str = typer.Option("lgbm", "--base", help="Base learner: lgbm | linear."),
    treatment_cost: float = typer.Option(0.0, "--treatment-cost", help="Cost of treating one customer (e.g. 0.10 $ "
                                         "per e-mail); policy values are net of it."),
    outcome_value: float = typer.Option(1.0, "--outcome-value", help="Value of one unit of the outcome (e.g. the "
                                        "margin on 1 $ of spend, or the value of one conversion)."),
) -> None:
    """Fit T-/X-learner, a transformation method and a response model; write DIR/uplift.json and figures."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from nextbest.errors import NextbestError
    from nextbest.uplift.data import HILLSTROM_DEFAULTS, load_experiment, resolve_experiment_path
    from nextbest.uplift.figures import policy_values, qini_curves
    from nextbest.uplift.learners import make_learners
    from nextbest.uplift.metrics import Economics
    from nextbest.uplift.run import run_uplift

    if base not in ("lgbm", "linear"):
        raise NextbestError(f"--base {base!r}: choose lgbm or linear")
    if not (math.isfinite(treatment_cost) and treatment_cost >= 0):
        raise NextbestError(f"--treatment-cost must be a finite number >= 0, got {treatment_cost}")
    if not (math.isfinite(outcome_value) and outcome_value > 0):
        raise NextbestError(f"--outcome-value must be a finite number > 0, got {outcome_value}")
    path, is_hillstrom = resolve_experiment_path(data)
    defaults = HILLSTROM_DEFAULTS if is_hillstrom else {}
    treatment_col = treatment_col or defaults.get("treatment_col")
    treatment = treatment if treatment is not None else defaults.get("treatment")
    control = control if control is not None else defaults.get("control")
    outcome = outcome or defaults.get("outcome")
    for flag, value in (("--treatment-col", treatment_col), ("--treatment", treatment), ("--control", control),
                        ("--outcome", outcome)):  # fmt: skip
        if value is None:
            raise NextbestError(f"{flag} is required for {path}")
    if features is not None:
        feature_list = [f.strip() for f in features.split(",") if f.strip()]
        if not feature_list:
            raise NextbestError("--features: give at least one column name")
    else:
        feature_list = list(defaults["features"]) if is_hillstrom else None

    console = Console()
    with console.status(f"loading {path}..."):
        experiment = load_experiment(path, treatment_col, treatment, control, outcome, feature_list)
    names = list(make_learners(experiment.propensity, experiment.binary_outcome, base, seed))
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    task = bar.add_task("fitting and scoring uplift methods", total=len(names))
    with bar:
        result = run_uplift(
            experiment, seed=seed, bootstrap=bootstrap, test_size=test_size, base=base,
            economics=Economics(outcome_value=outcome_value, treatment_cost=treatment_cost),
            progress=lambda name: bar.advance(task, 1),
        )  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    result.write(out / "uplift.json")
    qini_curves(result, out / "qini_curves.png")
    policy_values(result, out / "policy_value.png")
    _print(console, result)
    console.print(f"written to {out} (uplift.json, qini_curves.png, policy_value.png)")


def _ci(value: BootstrapMean) -> str:
    low, high = value.ci
    return f"{value.estimate:.3f} [{low:.3f}, {high:.3f}]"


def _print(console: Console, result: UpliftResult) -> None:
    from rich.table import Table

    d = result.dataset
    console.print(
        f"{d.source}: {d.rows} rows ({d.treated} {d.treatment!r}, {d.control_rows} {d.control!r}, "
        f"{d.dropped_other_treatments} other rows dropped); mean {d.outcome} treated "
        f"{d.mean_outcome.treated:.3f}, control {d.mean_outcome.control:.3f}; ATE {_ci(d.ate)}"
    )
    settings = result.settings
    net = settings.treatment_cost or settings.outcome_value != 1
    unit = (f"net value per customer ({settings.outcome_value:g} per unit of {d.outcome}, "
            f"{settings.treatment_cost:g} per treated customer)") if net else f"{d.outcome} per customer"
    table = Table(title=f"test split ({result.split.test_rows} rows), {unit}, 95% CI")
    for column in ("method", "Qini coef.", "AUUC", "policy value (IPW)", "treated", "vs treat-none", "vs treat-all"):
        table.add_column(column, justify="left" if column == "method" else "right")
    for name, m in result.methods.items():
        table.add_row(
            name,
            f"{m.qini_coefficient:.4f}",
            f"{m.auuc:.4f}",
            _ci(m.policy_value),
            f"{m.policy_value.treated_share:.0%}",
            _ci(m.vs_treat_none),
            _ci(m.vs_treat_all),
        )
    table.add_row("treat all", "", "", _ci(result.treat_all), "100%", "", "")
    table.add_row("treat none", "", "", _ci(result.treat_none), "0%", "", "")
    console.print(table)
    best = result.best_uplift_method
    mark = "[green]yes[/green]" if best.ci_low_above_treat_none else "[red]no[/red]"
    console.print(
        f"best uplift method (chosen on validation): {best.name}; interval lower bound above treat-none: {mark}"
    )
