"""Targeting models against the truth: the shop world's exact value per customer, and held-out rows of a table.

    evaluate_targeting(model)        a model trained on a shop-world folder: ground-truth value per customer vs the
                                     original, show-none and show-all; AUC and log-loss on the test split
    evaluate_on_table(model, table)  a model trained on a team's table: AUC, log-loss, Brier score and calibration on
                                     held-out rows (plus the ground truth when the table lies in a shop-world folder)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from nextbest.data.worlds import load_world_meta
from nextbest.errors import DataError
from nextbest.models.tables import binary_label, calibration_table, classification_scores, read_table, split_table
from nextbest.models.targeting import TargetingModel, features_from_frame, read_split
from nextbest.sim.shop import world_from_config


def evaluate_targeting(model: TargetingModel, data_dir: Path | None = None) -> dict[str, Any]:
    """Ground-truth value per customer in the model's world, plus AUC and log-loss on the test split."""
    from sklearn.metrics import log_loss, roc_auc_score

    world = world_from_config(model.world)
    population = world.frame(world.evaluation_customers)
    decisions = model.decide(features_from_frame(population, model.features, model.missing_flags))
    value = world.expected_revenue(decisions)
    none, everyone = world.expected_revenue("none"), world.expected_revenue("all")
    original, oracle = world.expected_revenue("original"), world.expected_revenue("oracle")
    test = read_split(Path(data_dir or model.data_dir), "test")
    p_test = model.predict_proba(features_from_frame(test, model.features, model.missing_flags))
    y_test = test["bought"].to_numpy()
    return {
        "model": model.kind,
        "threshold": model.threshold if np.isfinite(model.threshold) else None,
        "value_per_customer": value,
        "vs_original": value - original,
        "vs_show_none": value - none,
        "vs_show_all": value - everyone,
        "oracle_vs_original": oracle - original,
        "original_vs_show_none": original - none,
        "share_shown": float(np.mean(decisions)),
        "auc": float(roc_auc_score(y_test, p_test)),
        "log_loss": float(log_loss(y_test, np.clip(p_test, 1e-12, 1 - 1e-12))),
        "test_rows": len(test),
        "evaluation_customers": len(population),
        "validation": model.validation,
    }


def evaluate_on_table(model: Any, path: str | Path | None = None) -> dict[str, Any]:
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
    figures: dict[str, Any] = {
        "model": model.kind, "data": str(path), "label": model.encoding.label, "held_out_rows": int(held_out.sum()),
        "held_out": "the model's held-out share" if same else "every row (a table the model did not learn from)",
        "threshold": model.threshold if np.isfinite(model.threshold) else None, "share_acted": float(decisions.mean()),
        **classification_scores(p, y), "base_rate": float(y.mean()), "calibration": calibration_table(p, y),
        "features": len(model.features), "validation": model.validation,
    }  # fmt: skip
    if model.economics:
        gains = y * model.economics["gain_if_buy"] - model.economics["cost_of_slot"]
        figures["value_per_row_realized"] = float(np.mean(decisions * gains))
    figures.update(_world_value(model, path.parent))
    return figures


def _world_value(model: Any, folder: Path) -> dict[str, float]:
    """The ground truth of the shop world whose data folder holds the table, when it is one."""
    if not (folder / "world.json").is_file():
        return {}
    world = world_from_config(load_world_meta(folder)["world"])
    population = world.frame(world.evaluation_customers)
    try:
        decisions = model.decide(model.encoding.transform(population, "the world's population"))
    except DataError:
        return {}
    value = world.expected_revenue(decisions)
    return {"value_per_customer": value, "vs_original": value - world.expected_revenue("original"),
            "vs_show_none": value - world.expected_revenue("none")}  # fmt: skip
