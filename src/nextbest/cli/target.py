"""`nextbest target ...`: train a P(buy) model with its show/don't-show threshold; score it in ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from nextbest.cli import options

target_app = typer.Typer(
    help="Targeting of the new category: train a calibrated model, evaluate it against the world's ground truth.",
    no_args_is_help=True,
)


@target_app.command("train")
def train(
    data: Path = typer.Option(..., "--data", help="Folder written by `nextbest shop generate`, or a team's own "
                              "customer table (.csv or .parquet: one row per customer) with --label."),
    model: str = typer.Option(..., "--model", help="scratch-logreg | logreg | gbm | age-sex (shop world only)."),
    out: Path = typer.Option(..., "--out", help="Model file to write (pickle)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the splits and the model."),
    impute: str = typer.Option("zero", "--impute", help="Shop world: what a product flag missing from a message "
                               "becomes: zero (not bought; the default, right for trees) | mean (training mean)."),
    label: str | None = typer.Option(None, "--label", help="Table: the 0/1 column to predict."),
    features: str | None = typer.Option(None, "--features", help="Table: comma-separated feature columns "
                                        "(default: every column but the label). Text columns are refused."),
    test_fraction: float = typer.Option(0.2, "--test-fraction", help="Table: share of rows held out for evaluate."),
    gain: float | None = typer.Option(None, "--gain", help="Table: value of acting on a customer whose label is 1 "
                                      "(with --cost, the threshold maximizes the value; else it is 0.5)."),
    cost: float | None = typer.Option(None, "--cost", help="Table: cost of acting on any customer."),
    mlflow: str | None = options.MLFLOW,
) -> None:
    """Fit the model on the training split; choose the threshold on a validation share of it (never test).

    Shop world: the imputation rule is part of the model and the export sidecar carries it to the stream. A table:
    numeric columns (gaps filled with the training median, plus an indicator), categories one-hot, the label 0/1.

    With --mlflow, the model's ONNX export (logreg, gbm and table models) is registered as nextbest-target-MODEL."""
    from nextbest.errors import NextbestError
    from nextbest.models.targeting import MODELS, train_targeting
    from nextbest.tracking import check_server

    if model not in MODELS:
        raise NextbestError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    check_server(mlflow)
    if data.suffix.lower() in (".csv", ".parquet") or data.is_file():
        trained = _train_table(data, model, label, features, seed, test_fraction, gain, cost)
    else:
        if label is not None or features is not None:
            raise NextbestError(f"--label and --features are for a table file; {data} is a shop-world folder")
        trained = train_targeting(data, model, seed=seed, impute=impute)
    trained.save(out)
    threshold = trained.threshold if trained.threshold != float("inf") else None
    typer.echo(json.dumps({"model": model, "out": str(out), "threshold": threshold, "imputation": impute,
                           "validation": trained.validation}))  # fmt: skip
    if mlflow:
        params = {"data": str(data), "model": model, "seed": seed, "impute": impute, "label": label,
                  "features": features, "test_fraction": test_fraction, "gain": gain, "cost": cost}  # fmt: skip
        _track_trained(mlflow, trained, out, params, {"threshold": threshold, "validation": trained.validation})


def _track_trained(uri: str, trained, out: Path, params: dict, figures: dict) -> None:
    """`target train`'s MLflow run: its settings and figures, the model file, and its ONNX export registered
    (skipped, with a note, for a model ONNX cannot carry)."""
    import tempfile

    from nextbest.errors import NextbestError
    from nextbest.models.export import export_model
    from nextbest.tracking import record_run

    with tempfile.TemporaryDirectory() as tmp:
        onnx_model = None
        try:
            exported = export_model(trained, Path(tmp) / "model.onnx", "onnx")
            onnx_model = (exported.path, f"nextbest-target-{params['model']}")
        except NextbestError as why:
            typer.echo(f"not registered in MLflow: {why}", err=True)
        artifacts = [out, *([exported.sidecar] if onnx_model else [])]
        record_run(uri, "targeting", f"target train {params['model']}", params, {"": figures}, artifacts, onnx_model)


def _train_table(data: Path, model: str, label: str | None, features: str | None, seed: int, test_fraction: float,
                 gain: float | None, cost: float | None):  # noqa: ANN202 - a TargetingModel
    from nextbest.errors import NextbestError
    from nextbest.models.tables import train_on_table

    if not label:
        raise NextbestError(f"--label is required to train on the table {data}")
    if (gain is None) != (cost is None):
        raise NextbestError("give --gain and --cost together (or neither: threshold 0.5)")
    columns = [name.strip() for name in features.split(",") if name.strip()] if features else None
    economics = {"gain_if_buy": gain, "cost_of_slot": cost} if gain is not None else None
    return train_on_table(data, label, model, columns, seed=seed, test_fraction=test_fraction, economics=economics)


@target_app.command("evaluate")
def evaluate(
    model: Path = typer.Option(..., "--model", help="Model file written by `nextbest target train`."),
    out: Path = typer.Option(..., "--out", help="JSON file for the figures."),
    data: Path | None = typer.Option(None, "--data", help="Data folder or table (default: the model's own)."),
    mlflow: str | None = options.MLFLOW,
) -> None:
    """Shop world: value per customer in ground truth vs original, show-none, show-all; AUC and log-loss on test.
    A table model: AUC, log-loss, Brier score and calibration on held-out rows (plus ground truth when the table
    lies in a shop-world folder)."""
    from nextbest.evaluation.targeting import (
        TableEvaluation,
        TargetingEvaluation,
        evaluate_on_table,
        evaluate_targeting,
    )
    from nextbest.models.targeting import TargetingModel
    from nextbest.tracking import check_server, record_run

    check_server(mlflow)
    loaded = TargetingModel.load(model)
    if loaded.encoding is not None:
        figures: TargetingEvaluation | TableEvaluation = evaluate_on_table(loaded, data)
    else:
        figures = evaluate_targeting(loaded, data)
    figures.write(out)
    typer.echo(figures.to_json(), nl=False)
    params = {"model": str(model), "data": str(data) if data else "(the model's own)"}
    record_run(mlflow, "targeting", "target evaluate", params, {"": figures.to_dict()}, [out])


@target_app.command("export")
def export(
    model: Path = typer.Option(..., "--model", help="Model file written by `nextbest target train`."),
    out: Path = typer.Option(..., "--out", help="File to write: model.onnx or model.pmml."),
    fmt: str | None = typer.Option(None, "--format", help="onnx | pmml (default: from the --out suffix)."),
) -> None:
    """Export for serving (logreg, gbm): the model file plus `<out>.json` with the threshold and feature order."""
    from nextbest.errors import NextbestError
    from nextbest.models.export import EXPORTERS, export_model
    from nextbest.models.targeting import TargetingModel

    fmt = (fmt or out.suffix.lstrip(".")).lower()
    if fmt not in EXPORTERS:
        raise NextbestError(f"--format {fmt or '(none)'!r}: choose onnx or pmml, or end --out with .onnx / .pmml")
    result = export_model(TargetingModel.load(model), out, fmt)
    shown = {key: value for key, value in result.as_json().items() if key != "features"}
    shown["features"] = len(result.features)
    typer.echo(json.dumps({"out": str(result.path), "sidecar": str(result.sidecar), **shown}))


@target_app.command("report")
def report(
    evaluations: list[Path] = typer.Option(
        ..., "--evaluation", help="JSON from `nextbest target evaluate` (repeat the option for each model)."
    ),
    out: Path = typer.Option(..., "--out", help="HTML file to write (its JSON summary and figures go next to it)."),
    uplift: Path | None = typer.Option(None, "--uplift", help="Folder written by `nextbest uplift run`."),
) -> None:
    """One self-contained HTML report: models' comparison table, value-per-customer chart, Qini curves."""
    from nextbest.report.targeting import write_targeting_report

    written = write_targeting_report(evaluations, uplift, out)
    typer.echo(f"report written to {written} (summary {written.with_name(written.stem + '.json')})")


@target_app.command("demo")
def demo(
    out: Path = typer.Option(Path("runs/targeting"), "--out", help="Folder for data, models, figures and report."),
    customers: int = typer.Option(500_000, "--customers", help="Store customers in the world's training set."),
    seed: int = typer.Option(0, "--seed", help="Seed of the world, the models and the bootstrap."),
    bootstrap: int = typer.Option(1000, "--bootstrap", min=0, help="Bootstrap replicates of the uplift intervals."),
) -> None:
    """The whole targeting job: shop world, every model trained and scored in ground truth, the best one exported
    to ONNX and PMML, uplift on Hillstrom, and the HTML report."""
    from nextbest.cli.shop import generate
    from nextbest.cli.uplift import run as uplift_run
    from nextbest.evaluation.targeting import TargetingEvaluation

    data = out / "data"
    generate(customers=customers, seed=seed, out=data, test_fraction=0.2)
    figures: dict[str, TargetingEvaluation] = {}
    for kind in ("age-sex", "logreg", "gbm", "scratch-logreg"):
        typer.echo(f"training {kind} ...")
        train(data=data, model=kind, out=out / "models" / f"{kind}.pkl", seed=seed, impute="zero", label=None,
              features=None, test_fraction=0.2, gain=None, cost=None, mlflow=None)  # typer's defaults are objects
        evaluate(model=out / "models" / f"{kind}.pkl", out=out / "eval" / f"{kind}.json", data=None, mlflow=None)
        figures[kind] = TargetingEvaluation.load(out / "eval" / f"{kind}.json")
    best = max(("logreg", "gbm"), key=lambda k: figures[k].value_per_customer)  # the exportable models
    for fmt in ("onnx", "pmml"):
        export(model=out / "models" / f"{best}.pkl", out=out / "export" / f"{best}.{fmt}", fmt=fmt)
    uplift_run(
        data="hillstrom", out=out / "uplift", treatment_col=None, treatment=None, control=None, outcome=None,
        features=None, seed=seed, bootstrap=bootstrap, test_size=0.3, base="lgbm", treatment_cost=0.0,
        outcome_value=1.0,
    )  # fmt: skip
    evaluations = [out / "eval" / f"{kind}.json" for kind in figures]
    report(evaluations=evaluations, out=out / "report.html", uplift=out / "uplift")
