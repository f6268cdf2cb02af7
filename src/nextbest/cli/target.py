"""`nextbest target ...`: train a P(buy) model with its show/don't-show threshold; score it in ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import typer

target_app = typer.Typer(
    help="Targeting of the new category: train a calibrated model, evaluate it against the world's ground truth.",
    no_args_is_help=True,
)


@target_app.command("train")
def train(
    data: Path = typer.Option(..., "--data", help="Folder written by `nextbest shop generate`."),
    model: str = typer.Option(..., "--model", help="scratch-logreg | logreg | gbm | age-sex."),
    out: Path = typer.Option(..., "--out", help="Model file to write (pickle)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the validation split and the model."),
) -> None:
    """Fit the model on the training split; choose the threshold on a validation share of it (never test)."""
    from nextbest.models.targeting import MODELS, train_targeting

    if model not in MODELS:
        from nextbest.errors import NextbestError

        raise NextbestError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    trained = train_targeting(data, model, seed=seed)
    trained.save(out)
    threshold = trained.threshold if trained.threshold != float("inf") else None
    typer.echo(json.dumps({"model": model, "out": str(out), "threshold": threshold, "validation": trained.validation}))


@target_app.command("evaluate")
def evaluate(
    model: Path = typer.Option(..., "--model", help="Model file written by `nextbest target train`."),
    out: Path = typer.Option(..., "--out", help="JSON file for the figures."),
    data: Path | None = typer.Option(None, "--data", help="Data folder (default: the one the model was trained on)."),
) -> None:
    """Value per customer in ground truth vs original, show-none, show-all; AUC and log-loss on test."""
    from nextbest.models.targeting import TargetingModel, evaluate_targeting

    figures = evaluate_targeting(TargetingModel.load(model), data)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2))
    typer.echo(json.dumps(figures, indent=2))
