"""Load a randomized experiment (CSV or Parquet) into features X, treatment flag t and outcome y.

Any table works given its treatment column, the treatment and control values (compared as text, so
``1``/``"1"`` and ``"Mens E-Mail"`` all work) and the outcome column. Rows whose treatment value is neither
are dropped and counted. Features default to every other column; text features are one-hot encoded,
numeric ones kept. Mistakes raise :class:`DataError` naming the file and the column.

Hillstrom (MineThatData e-mail experiment, public at
https://blog.minethatdata.com/2008/03/minethatdata-e-mail-analytics-and-data.html) has documented defaults:
treatment column ``segment``, treatment ``Mens E-Mail``, control ``No E-Mail``, outcome ``spend``, and the
eight pre-treatment features (the other outcomes ``visit`` and ``conversion`` are never features).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from nextbest.data.paths import resolve_data_file
from nextbest.errors import DataError

HILLSTROM_DEFAULTS: dict[str, object] = {
    "treatment_col": "segment",
    "treatment": "Mens E-Mail",
    "control": "No E-Mail",
    "outcome": "spend",
    "features": ["recency", "history_segment", "history", "mens", "womens", "zip_code", "newbie", "channel"],
}


@dataclass
class Experiment:
    """A randomized experiment ready for uplift models: X (numeric), t in {0, 1}, y (float)."""

    X: pd.DataFrame
    t: np.ndarray
    y: np.ndarray
    source: str
    treatment_col: str
    treatment: str
    control: str
    outcome: str
    features: list[str]
    dropped_other_treatments: int = 0
    dropped_missing_outcome: int = 0
    binary_outcome: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def propensity(self) -> float:
        """Share of treated rows: the known randomization probability P(T=1)."""
        return float(self.t.mean())

    def subset(self, index: np.ndarray) -> Experiment:
        return Experiment(
            X=self.X.iloc[index].reset_index(drop=True),
            t=self.t[index],
            y=self.y[index],
            source=self.source,
            treatment_col=self.treatment_col,
            treatment=self.treatment,
            control=self.control,
            outcome=self.outcome,
            features=self.features,
            binary_outcome=self.binary_outcome,
        )


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet file; a file that cannot be read raises DataError naming it."""
    parquet = path.suffix.lower() in (".parquet", ".pq")
    try:
        return pd.read_parquet(path) if parquet else pd.read_csv(path)
    except (OSError, ValueError, ImportError) as error:
        raise DataError(f"{path}: cannot be read as {'Parquet' if parquet else 'CSV'} ({error})") from error


def resolve_experiment_path(data: str | Path) -> tuple[Path, bool]:
    """``hillstrom`` → the shared Hillstrom file (found via the usual search order); anything else is a path."""
    if str(data).lower() == "hillstrom":
        return resolve_data_file("hillstrom", "hillstrom.csv"), True
    return resolve_data_file("experiment", Path(data).name, explicit=data), False


def load_experiment(
    path: str | Path,
    treatment_col: str,
    treatment: str,
    control: str,
    outcome: str,
    features: list[str] | None = None,
) -> Experiment:
    """Load an experiment table. ``features=None`` means every column but treatment and outcome."""
    path = Path(path)
    frame = read_table(path)
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    for role, column in (("treatment", treatment_col), ("outcome", outcome)):
        if column not in columns:
            raise DataError(f"{path}: no {role} column {column!r} (columns: {', '.join(columns)})")
    if treatment_col == outcome:
        raise DataError(f"{path}: treatment and outcome column are both {outcome!r}")
    if features is None:
        features = [c for c in columns if c not in (treatment_col, outcome)]
    else:
        missing = [c for c in features if c not in columns]
        if missing:
            raise DataError(f"{path}: no feature column {missing[0]!r} (columns: {', '.join(columns)})")
        clash = [c for c in features if c in (treatment_col, outcome)]
        if clash:
            raise DataError(f"{path}: column {clash[0]!r} cannot be a feature (it is the treatment or the outcome)")
    if not features:
        raise DataError(f"{path}: no feature columns left besides {treatment_col!r} and {outcome!r}")

    arm = frame[treatment_col].astype(str).str.strip()
    seen = sorted(arm.unique().tolist())
    for role, value in (("treatment", treatment), ("control", control)):
        if str(value).strip() not in seen:
            shown = ", ".join(repr(v) for v in seen[:20])
            raise DataError(f"{path}: {role} value {value!r} not found in column {treatment_col!r} (values: {shown})")
    if str(treatment).strip() == str(control).strip():
        raise DataError(f"{path}: treatment and control value are both {treatment!r}")
    keep = arm.isin([str(treatment).strip(), str(control).strip()]).to_numpy()
    dropped = int((~keep).sum())
    frame = frame.loc[keep].reset_index(drop=True)
    t = (arm[keep].to_numpy() == str(treatment).strip()).astype(np.int8)

    raw_y = frame[outcome]
    if raw_y.dtype == bool:
        raw_y = raw_y.astype(float)
    y_numeric = pd.to_numeric(raw_y, errors="coerce")
    bad = y_numeric.isna() & raw_y.notna()
    if bad.any():
        example = raw_y[bad].iloc[0]
        raise DataError(f"{path}: outcome column {outcome!r} is not numeric (e.g. {example!r})")
    missing_y = y_numeric.isna().to_numpy()
    if missing_y.any():
        frame, t, y_numeric = frame.loc[~missing_y].reset_index(drop=True), t[~missing_y], y_numeric[~missing_y]
    y = y_numeric.to_numpy(dtype=float)
    if t.sum() == 0 or t.sum() == len(t):
        raise DataError(f"{path}: column {treatment_col!r} needs both treated and control rows")

    X = encode_features(frame[features])
    return Experiment(
        X=X,
        t=t,
        y=y,
        source=str(path),
        treatment_col=treatment_col,
        treatment=str(treatment),
        control=str(control),
        outcome=outcome,
        features=list(features),
        dropped_other_treatments=dropped,
        dropped_missing_outcome=int(missing_y.sum()),
        binary_outcome=bool(np.isin(y, (0.0, 1.0)).all()),
    )


def encode_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Numeric columns kept (missing → column median), text/categorical columns one-hot encoded."""
    parts = []
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_bool_dtype(values):
            values = values.astype(float)
        if pd.api.types.is_numeric_dtype(values):
            filled = values.astype(float)
            parts.append(filled.fillna(filled.median() if filled.notna().any() else 0.0).rename(column))
        else:
            dummies = pd.get_dummies(values.astype(str).fillna("missing"), prefix=column, prefix_sep="=", dtype=float)
            parts.append(dummies)
    X = pd.concat(parts, axis=1)
    X.columns = [str(c) for c in X.columns]
    return X


def split_experiment(
    experiment: Experiment, test_size: float = 0.3, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified random split (strata: arm × outcome positive) → (train indices, test indices), sorted."""
    rng = np.random.default_rng(seed)
    strata = experiment.t.astype(int) * 2 + (experiment.y > 0).astype(int)
    train, test = [], []
    for value in np.unique(strata):
        members = np.flatnonzero(strata == value)
        rng.shuffle(members)
        n_test = int(round(test_size * len(members)))
        test.append(members[:n_test])
        train.append(members[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))
