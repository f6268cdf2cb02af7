"""Targeting models against the truth: the shop world's exact value per customer, and held-out rows of a table.

    evaluate_targeting(model)        a model trained on a shop-world folder: ground-truth value per customer vs the
                                     original, show-none and show-all; AUC and log-loss on the test split
    evaluate_on_table(model, table)  a model trained on a team's table: AUC, log-loss, Brier score and calibration on
                                     held-out rows (plus the ground truth when the table lies in a shop-world folder)

Both return typed results (`TargetingEvaluation`, `TableEvaluation`): `.write(path)` is the JSON of
`nextbest target evaluate`, `TargetingEvaluation.load(path)` reads it back (the targeting report does).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from nextbest.data.worlds import load_world_meta
from nextbest.errors import DataError
from nextbest.models.tables import (
    CalibrationBin,
    binary_label,
    calibration_table,
    classification_scores,
    read_table,
    split_table,
)
from nextbest.models.targeting import TargetingModel, features_from_frame, read_split
from nextbest.results import Result
from nextbest.sim.shop import world_from_config


class ModelValidation(Result, omit_defaults=True):
    """The figures the model recorded on its validation share while training (`TargetingModel.validation`): a
    shop-world model has rows, value_vs_show_none_realized, auc and log_loss; a table model rows, auc, log_loss and
    brier. Absent figures are left out of the JSON."""

    rows: int | None = None
    value_vs_show_none_realized: float | None = None
    auc: float | None = None
    log_loss: float | None = None
    brier: float | None = None


class TargetingEvaluation(Result, kw_only=True):
    """`nextbest target evaluate` of a shop-world model (its JSON file, read by the targeting report): ground-truth
    value per customer and its differences to the reference policies, AUC and log-loss on the test split.

    The report needs the model name and the five ground-truth figures; the rest may be absent in a file."""

    model: str
    threshold: float | None = None
    value_per_customer: float
    vs_original: float
    vs_show_none: float
    vs_show_all: float
    oracle_vs_original: float
    original_vs_show_none: float | None = None
    share_shown: float | None = None
    auc: float | None = None
    log_loss: float | None = None
    test_rows: int | None = None
    evaluation_customers: int | None = None
    validation: ModelValidation = msgspec.field(default_factory=ModelValidation)


class TableEvaluation(Result, kw_only=True, omit_defaults=True):
    """`nextbest target evaluate` of a model trained on a table: scores on held-out rows; the realized value per row
    when the model has economics, the ground truth when the table lies in a shop-world folder (else left out)."""

    model: str
    data: str
    label: str
    held_out_rows: int
    held_out: str
    threshold: float | None
    share_acted: float
    auc: float
    log_loss: float
    brier: float
    base_rate: float
    calibration: list[CalibrationBin]
    features: int
    validation: ModelValidation
    value_per_row_realized: float | None = None
    value_per_customer: float | None = None
    vs_original: float | None = None
    vs_show_none: float | None = None


def _threshold(model: Any) -> float | None:
    return float(model.threshold) if np.isfinite(model.threshold) else None


def _validation(model: Any) -> ModelValidation:
    """The model's recorded validation figures (a plain dict in the model file) as their type."""
    figures = {key: value.item() if isinstance(value, np.generic) else value for key, value in model.validation.items()}
    return ModelValidation.from_dict(figures, f"{model.kind} model: validation figures")


def evaluate_targeting(model: TargetingModel, data_dir: Path | None = None) -> TargetingEvaluation:
    """Ground-truth value per customer in the model's world, plus AUC and log-loss on the test split."""
    from sklearn.metrics import log_loss, roc_auc_score

    world = world_from_config(model.world)
    population = world.frame(world.evaluation_customers)
    decisions = model.decide(features_from_frame(population, model.features, model.missing_flags))
    value = float(world.expected_revenue(decisions))
    none, everyone = float(world.expected_revenue("none")), float(world.expected_revenue("all"))
    original, oracle = float(world.expected_revenue("original")), float(world.expected_revenue("oracle"))
    test = read_split(Path(data_dir or model.data_dir), "test")
    p_test = model.predict_proba(features_from_frame(test, model.features, model.missing_flags))
    y_test = test["bought"].to_numpy()
    return TargetingEvaluation(
        model=model.kind,
        threshold=_threshold(model),
        value_per_customer=value,
        vs_original=value - original,
        vs_show_none=value - none,
        vs_show_all=value - everyone,
        oracle_vs_original=oracle - original,
        original_vs_show_none=original - none,
        share_shown=float(np.mean(decisions)),
        auc=float(roc_auc_score(y_test, p_test)),
        log_loss=float(log_loss(y_test, np.clip(p_test, 1e-12, 1 - 1e-12))),
        test_rows=len(test),
        evaluation_customers=len(population),
        validation=_validation(model),
    )


def evaluate_on_table(model: Any, path: str | Path | None = None) -> TableEvaluation:
    """AUC, log-loss, Brier score and calibration on held-out rows: the model's own held-out share of the table it
    learned from, or every row of another table. With the shop world's ``world.json`` beside the table, also the
    ground-truth value per customer of the decisions on the world's evaluation population."""
    path = Path(path or model.data_dir)
    frame = read_table(path)
    y = binary_label(frame, model.encoding.label, str(path))
    same = path.resolve() == Path(model.data_dir).resolve()
    held_out = split_table(len(frame), **model.table_split) if same else np.ones(len(frame), bool)
    X = model.encoding.transform(frame[held_out].reset_index(drop=True), str(path))
    p, y = model.predict_proba(X), y[held_out]
    decisions = (p >= model.threshold).astype(np.int8)
    scores = classification_scores(p, y)
    realized = None
    if model.economics:
        gains = y * model.economics["gain_if_buy"] - model.economics["cost_of_slot"]
        realized = float(np.mean(decisions * gains))
    truth = _world_value(model, path.parent)
    return TableEvaluation(
        model=model.kind, data=str(path), label=model.encoding.label, held_out_rows=int(held_out.sum()),
        held_out="the model's held-out share" if same else "every row (a table the model did not learn from)",
        threshold=_threshold(model), share_acted=float(decisions.mean()), auc=scores.auc, log_loss=scores.log_loss,
        brier=scores.brier, base_rate=float(y.mean()), calibration=calibration_table(p, y),
        features=len(model.features),
        validation=_validation(model),
        value_per_row_realized=realized, **truth,
    )  # fmt: skip


def _world_value(model: Any, folder: Path) -> dict[str, float]:
    """The ground truth of the shop world whose data folder holds the table, when it is one (keyword arguments of
    `TableEvaluation`)."""
    if not (folder / "world.json").is_file():
        return {}
    world = world_from_config(load_world_meta(folder)["world"])
    population = world.frame(world.evaluation_customers)
    try:
        decisions = model.decide(model.encoding.transform(population, "the world's population"))
    except DataError:
        return {}
    value = float(world.expected_revenue(decisions))
    return {"value_per_customer": value, "vs_original": value - float(world.expected_revenue("original")),
            "vs_show_none": value - float(world.expected_revenue("none"))}  # fmt: skip
