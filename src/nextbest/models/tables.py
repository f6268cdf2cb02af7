"""Targeting on a team's own customer table: one row per customer, a 0/1 label column, any feature columns.

    encoding = TableEncoding.fit(train_frame, label, features)   # learned on the training rows only
    X = encoding.transform(frame)                                # numeric float64 columns, in a fixed order

Columns are read by their content:

* **numeric** (ints, floats, booleans): kept; a missing value becomes the training median and, when the training
  rows had gaps in that column, an indicator column ``<name>__missing`` says so;
* **categorical** (text with at most ``MAX_LEVELS`` distinct values): one 0/1 column per training level, a missing
  value counts as the level ``__missing``, a level unseen in training sets no column (all zeros);
* **free text** (more distinct values than ``MAX_LEVELS``): refused with a message naming the column, because one
  column per value would learn the rows by heart.

The label must be 0/1 (or true/false) in every row; a missing or other value is an error naming the row (1-based
data row, as a spreadsheet shows it after the header). ``split_table`` holds out a seeded random share of rows
for evaluation; training never sees them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nextbest.errors import DataError, NextbestError
from nextbest.results import Result

MAX_LEVELS = 50
#: What a label cell may hold (booleans hash as 0 and 1).
LABEL_VALUES: dict[Any, int] = {0: 0, 1: 1, "0": 0, "1": 1, "true": 1, "false": 0}
TABLE_SUFFIXES = (".csv", ".parquet")


def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV or Parquet table; DataError naming the file when it cannot be read or is empty."""
    path = Path(path)
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise DataError(f"{path}: a table must be .csv or .parquet")
    if not path.is_file():
        raise DataError(f"{path} not found")
    try:
        frame = pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path)
    except Exception as error:  # noqa: BLE001 - pandas and pyarrow raise many kinds
        raise DataError(f"{path}: cannot be read as a table ({error})") from error
    if frame.empty:
        raise DataError(f"{path}: the table has no rows")
    return frame


def binary_label(frame: pd.DataFrame, label: str, source: str) -> np.ndarray:
    """The label column as 0/1 int8; DataError naming the first bad row."""
    if label not in frame.columns:
        raise DataError(f"{source}: no label column {label!r} (columns: {', '.join(map(str, frame.columns[:10]))})")
    values = frame[label]
    mapped = values.map(lambda v: LABEL_VALUES.get(v.strip().lower() if isinstance(v, str) else v))
    bad = mapped.isna().to_numpy().nonzero()[0]
    if bad.size:
        row, value = int(bad[0]), values.iloc[int(bad[0])]
        raise DataError(f"{source}, row {row + 1}, column {label!r}: the label must be 0 or 1, got {value!r}")
    y = mapped.to_numpy(dtype=np.int8)
    if len(np.unique(y)) < 2:
        raise DataError(f"{source}, column {label!r}: the label needs both 0s and 1s")
    return y


@dataclass
class TableEncoding:
    """How a table's columns become the model's numeric features (learned on training rows; see the module doc)."""

    label: str
    numeric: dict[str, float] = field(default_factory=dict)  # column -> training median
    flagged: list[str] = field(default_factory=list)  # numeric columns with a missing-value indicator
    levels: dict[str, list[str]] = field(default_factory=dict)  # categorical column -> training levels

    @classmethod
    def fit(cls, frame: pd.DataFrame, label: str, features: Sequence[str] | None, source: str) -> TableEncoding:
        columns = list(features) if features else [c for c in frame.columns if c != label]
        absent = [c for c in columns if c not in frame.columns]
        if absent or not columns:
            known = ", ".join(map(str, frame.columns))
            raise DataError(f"{source}: no feature columns {absent or ''} (columns: {known})")
        if label in columns:
            raise NextbestError(f"--features must not contain the label column {label!r}")
        encoding = cls(label)
        for column in columns:
            values = frame[column]
            if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
                numbers = values.astype(np.float64)
                encoding.numeric[column] = float(numbers.median()) if numbers.notna().any() else 0.0
                if numbers.isna().any():
                    encoding.flagged.append(column)
                continue
            levels = values.dropna().astype(str).unique()
            if len(levels) > MAX_LEVELS:
                raise DataError(f"{source}, column {column!r}: looks like free text ({len(levels)} distinct values, "
                                f"at most {MAX_LEVELS} for a category); leave it out with --features")  # fmt: skip
            encoding.levels[column] = sorted(levels) + (["__missing"] if values.isna().any() else [])
        return encoding

    @property
    def features(self) -> list[str]:
        """The model's input columns, in order."""
        names = list(self.numeric) + [f"{column}__missing" for column in self.flagged]
        return names + [f"{column}={level}" for column, levels in self.levels.items() for level in levels]

    def transform(self, frame: pd.DataFrame, source: str = "the table") -> pd.DataFrame:
        """The encoded float64 features of ``frame`` (columns of ``features``)."""
        absent = [c for c in (*self.numeric, *self.levels) if c not in frame.columns]
        if absent:
            raise DataError(f"{source}: lacks the feature columns {absent}")
        parts: dict[str, np.ndarray] = {}
        for column, median in self.numeric.items():
            try:
                numbers = pd.to_numeric(frame[column], errors="raise").astype(np.float64)
            except (ValueError, TypeError) as error:
                raise DataError(f"{source}, column {column!r}: not numeric ({error})") from error
            parts[column] = numbers.fillna(median).to_numpy()
        for column in self.flagged:
            parts[f"{column}__missing"] = frame[column].isna().to_numpy(dtype=np.float64)
        for column, levels in self.levels.items():
            text = frame[column].astype(object).where(frame[column].notna(), "__missing").astype(str)
            for level in levels:
                parts[f"{column}={level}"] = (text == level).to_numpy(dtype=np.float64)
        return pd.DataFrame(parts, columns=self.features)


def split_table(n: int, test_fraction: float, seed: int) -> np.ndarray:
    """A seeded boolean mask of the held-out (test) rows."""
    if not 0 < test_fraction < 1:
        raise NextbestError(f"--test-fraction must be in (0, 1), got {test_fraction}")
    return np.random.default_rng([seed, 11]).random(n) < test_fraction


class CalibrationBin(Result):
    """One equal-count bin of predicted probability: its rows, mean predicted probability and observed rate."""

    rows: int
    mean_predicted: float
    observed_rate: float


class ClassificationScores(Result):
    """AUC, log-loss and Brier score of predicted probabilities against 0/1 labels."""

    auc: float
    log_loss: float
    brier: float


def calibration_table(p: np.ndarray, y: np.ndarray, bins: int = 10) -> list[CalibrationBin]:
    """Reliability by equal-count bins of predicted probability: rows, mean predicted, observed rate."""
    order = np.argsort(p, kind="stable")
    table = []
    for chunk in np.array_split(order, min(bins, len(p))):
        if chunk.size:
            table.append(CalibrationBin(rows=int(chunk.size), mean_predicted=float(p[chunk].mean()),
                                        observed_rate=float(y[chunk].mean())))  # fmt: skip
    return table


def train_on_table(
    path: str | Path,
    label: str,
    kind: str = "logreg",
    features: Sequence[str] | None = None,
    seed: int = 0,
    test_fraction: float = 0.2,
    validation_fraction: float = 0.2,
    economics: dict[str, float] | None = None,
) -> Any:
    """A calibrated P(label = 1) model of ``kind`` on a table's training rows (the held-out share never seen).

    The threshold maximizes the realized value ``sum 1[p >= t] (y * gain_if_buy - cost_of_slot)`` on a validation
    share of the training rows when ``economics`` are given; otherwise it is 0.5 (act when more likely than not).
    """
    from nextbest.models.targeting import MODELS, TargetingModel, choose_threshold, fit_model

    if kind not in MODELS or kind == "age-sex":
        raise NextbestError(f"model {kind!r} cannot learn a table: choose scratch-logreg, logreg or gbm")
    path = Path(path)
    frame = read_table(path)
    y = binary_label(frame, label, str(path))
    held_out = split_table(len(frame), test_fraction, seed)
    train, y_train = frame[~held_out].reset_index(drop=True), y[~held_out]
    encoding = TableEncoding.fit(train, label, features, str(path))
    X = encoding.transform(train, str(path))
    is_val = np.random.default_rng([seed, 7]).random(len(X)) < validation_fraction
    if len(np.unique(y_train[~is_val])) < 2 or len(np.unique(y_train[is_val])) < 2:
        raise DataError(f"{path}: too few rows of one label value to train and validate (column {label!r})")
    estimator = fit_model(kind, seed, X[~is_val].reset_index(drop=True), y_train[~is_val])
    model = TargetingModel(kind, estimator, 0.5, encoding.features, dict(economics or {}), {}, str(path.resolve()),
                           encoding=encoding, table_split={"test_fraction": test_fraction, "seed": seed})  # fmt: skip
    p_val = model.predict_proba(X[is_val].reset_index(drop=True))
    if economics:
        model.threshold, _ = choose_threshold(p_val, y_train[is_val], economics["gain_if_buy"],
                                              economics["cost_of_slot"])  # fmt: skip
    model.validation = {"rows": int(is_val.sum()), **classification_scores(p_val, y_train[is_val]).to_dict()}
    return model


def classification_scores(p: np.ndarray, y: np.ndarray) -> ClassificationScores:
    """AUC, log-loss (probabilities clipped to [1e-12, 1 - 1e-12]) and Brier score of `p` against `y`."""
    from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

    return ClassificationScores(auc=float(roc_auc_score(y, p)), brier=float(brier_score_loss(y, p)),
                                log_loss=float(log_loss(y, np.clip(p, 1e-12, 1 - 1e-12))))  # fmt: skip
