"""Temporal train/validation/test split of the CRM leads, and statistics learned on train only.

The split orders leads by ``lead_date`` (ties by ``lead_id``) and cuts at the cumulative fractions, so
every train lead is no later than every validation lead, which is no later than every test lead. Leads
without any date cannot be placed in time: they are left out of all three splits and counted.

:class:`HistoricalStats` holds everything a feature may know about the past; it is fitted on the train
split alone and mapped identically onto every split by :func:`add_features`, so outcomes of later leads
can never leak into earlier features.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from nextbest.data.salescrm import LoadedCRM, load_salescrm
from nextbest.errors import NextbestError

SPLIT_NAMES: tuple[str, str, str] = ("train", "val", "test")
DEFAULT_FRACTIONS: tuple[float, float, float] = (0.7, 0.15, 0.15)
SMOOTHING_M = 20.0
MIN_CATEGORY_COUNT = 30
OTHER = "Other"
UNKNOWN = "Unknown"
FEATURE_COLUMNS: tuple[str, ...] = (
    "country_cat",
    "education_cat",
    "country_conv_rate",
    "education_conv_rate",
    "days_since_first_contact_z",
    "days_to_reference_z",
)


@dataclass
class SplitResult:
    """The three splits (each ordered by lead_date, lead_id) and where they were cut.

    ``boundaries`` holds ``train_end`` and ``val_end``: the last lead_date (ISO) in train and in val
    (None when that split is empty). ``dropped_no_date`` counts leads with no date, which are in no split.
    """

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    boundaries: dict[str, str | None]
    dropped_no_date: int
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS

    def parts(self) -> dict[str, pd.DataFrame]:
        """The splits by name: train, val, test."""
        return {"train": self.train, "val": self.val, "test": self.test}


@dataclass
class HistoricalStats:
    """Train-only statistics behind the features.

    - conversion = ``subscribed`` is not NaT; ``global_rate`` = positives / leads in train;
    - smoothed rate of a category = (positives + m * global_rate) / (n + m), with m = ``smoothing_m``;
      categories unseen in train, and missing values, get ``global_rate``;
    - vocabularies: categories with at least ``min_category_count`` train leads; others pool into
      ``"Other"``, missing into ``"Unknown"``;
    - z-scores use the train mean and population std (std 1 when it is 0) of
      ``days_since_first_contact`` = last_contact - first_contact in days (0 when either is missing)
      and ``days_to_reference`` = ``reference_date`` - lead_date in days, ``reference_date`` being the
      last lead_date in train.
    """

    reference_date: str
    n_train: int
    positives: int
    global_rate: float
    smoothing_m: float = SMOOTHING_M
    min_category_count: int = MIN_CATEGORY_COUNT
    country_rates: dict[str, float] = field(default_factory=dict)
    education_rates: dict[str, float] = field(default_factory=dict)
    country_vocab: list[str] = field(default_factory=list)
    education_vocab: list[str] = field(default_factory=list)
    days_since_first_contact_mean: float = 0.0
    days_since_first_contact_std: float = 1.0
    days_to_reference_mean: float = 0.0
    days_to_reference_std: float = 1.0

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> HistoricalStats:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


# ------------------------------------------------------------------------------------------- split


def temporal_split(frame: pd.DataFrame, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS) -> SplitResult:
    """Order dated leads by (lead_date, lead_id) and cut at the cumulative fractions.

    With n dated leads, train is rows [0, round(n*f0)), val [round(n*f0), round(n*(f0+f1))), test the
    rest. Leads whose lead_date is NaT are dropped from all splits and counted in ``dropped_no_date``.
    """
    fractions = _check_fractions(fractions)
    dated = frame[frame["lead_date"].notna()]
    ordered = dated.sort_values(["lead_date", "lead_id"], kind="mergesort").reset_index(drop=True)
    n = len(ordered)
    cut_train = round(n * fractions[0])
    cut_val = round(n * (fractions[0] + fractions[1]))
    train = ordered.iloc[:cut_train].reset_index(drop=True)
    val = ordered.iloc[cut_train:cut_val].reset_index(drop=True)
    test = ordered.iloc[cut_val:].reset_index(drop=True)
    boundaries = {"train_end": _last_date(train), "val_end": _last_date(val)}
    return SplitResult(train, val, test, boundaries, len(frame) - n, fractions)


def _check_fractions(fractions: tuple[float, ...]) -> tuple[float, float, float]:
    values = tuple(float(f) for f in fractions)
    if len(values) != 3 or any(f < 0 for f in values) or not math.isclose(sum(values), 1.0, abs_tol=1e-9):
        raise NextbestError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")
    return values[0], values[1], values[2]


def _last_date(part: pd.DataFrame) -> str | None:
    return None if part.empty else part["lead_date"].max().date().isoformat()


# ---------------------------------------------------------------------------------------- features


def fit_historical_stats(
    train: pd.DataFrame, m: float = SMOOTHING_M, min_count: int = MIN_CATEGORY_COUNT
) -> HistoricalStats:
    """Fit :class:`HistoricalStats` on the train split only (see its docstring for the formulas)."""
    converted = train["subscribed"].notna()
    n_train = len(train)
    positives = int(converted.sum())
    global_rate = positives / n_train if n_train else 0.0
    reference = train["lead_date"].max()
    reference_date = reference.date().isoformat() if pd.notna(reference) else "1970-01-01"
    stats = HistoricalStats(
        reference_date=reference_date,
        n_train=n_train,
        positives=positives,
        global_rate=global_rate,
        smoothing_m=float(m),
        min_category_count=int(min_count),
        country_rates=_smoothed_rates(train["country"], converted, global_rate, m),
        education_rates=_smoothed_rates(train["education"], converted, global_rate, m),
        country_vocab=_vocabulary(train["country"], min_count),
        education_vocab=_vocabulary(train["education"], min_count),
    )
    mean, std = _moments(_days_since_first_contact(train))
    stats.days_since_first_contact_mean, stats.days_since_first_contact_std = mean, std
    mean, std = _moments(_days_to_reference(train, stats.reference_date))
    stats.days_to_reference_mean, stats.days_to_reference_std = mean, std
    return stats


def _smoothed_rates(category: pd.Series, converted: pd.Series, global_rate: float, m: float) -> dict[str, float]:
    """(positives + m * global_rate) / (n + m) per non-missing category, sorted by name."""
    known = category.notna()
    grouped = converted[known].astype(int).groupby(category[known].astype(str)).agg(["sum", "count"])
    return {
        str(name): float((row["sum"] + m * global_rate) / (row["count"] + m))
        for name, row in grouped.sort_index().iterrows()
    }


def _vocabulary(category: pd.Series, min_count: int) -> list[str]:
    """Sorted categories with at least ``min_count`` rows."""
    counts = category.dropna().astype(str).value_counts()
    return sorted(str(name) for name in counts[counts >= min_count].index)


def _days_since_first_contact(frame: pd.DataFrame) -> pd.Series:
    """last_contact - first_contact in days, 0 when either date is missing."""
    days = (frame["last_contact"] - frame["first_contact"]).dt.days
    return days.fillna(0).astype(float)


def _days_to_reference(frame: pd.DataFrame, reference_date: str) -> pd.Series:
    """reference_date - lead_date in days (NaN when lead_date is missing)."""
    return (pd.Timestamp(reference_date) - frame["lead_date"]).dt.days.astype(float)


def _moments(values: pd.Series) -> tuple[float, float]:
    """Mean and population std of the non-missing values (0 and 1 when empty; std 1 when 0)."""
    clean = values.dropna()
    if clean.empty:
        return 0.0, 1.0
    std = float(clean.std(ddof=0))
    return float(clean.mean()), std if std > 0 else 1.0


def add_features(frame: pd.DataFrame, stats: HistoricalStats) -> pd.DataFrame:
    """Return a copy of ``frame`` with the :data:`FEATURE_COLUMNS` computed from train-only ``stats``.

    country_cat / education_cat: the value when in the vocabulary, "Other" when not, "Unknown" when
    missing; *_conv_rate: the smoothed train rate of the raw value (global rate when unseen or missing);
    *_z: (x - train mean) / train std, a missing lead_date giving 0.
    """
    out = frame.copy()
    out["country_cat"] = _pooled(frame["country"], stats.country_vocab)
    out["education_cat"] = _pooled(frame["education"], stats.education_vocab)
    out["country_conv_rate"] = _rate(frame["country"], stats.country_rates, stats.global_rate)
    out["education_conv_rate"] = _rate(frame["education"], stats.education_rates, stats.global_rate)
    since = _days_since_first_contact(frame)
    out["days_since_first_contact_z"] = (
        since - stats.days_since_first_contact_mean
    ) / stats.days_since_first_contact_std
    to_reference = _days_to_reference(frame, stats.reference_date)
    z = (to_reference - stats.days_to_reference_mean) / stats.days_to_reference_std
    out["days_to_reference_z"] = z.fillna(0.0)
    return out


def _pooled(category: pd.Series, vocabulary: list[str]) -> pd.Series:
    known = set(vocabulary)
    values = [UNKNOWN if pd.isna(v) else (str(v) if str(v) in known else OTHER) for v in category]
    return pd.Series(values, index=category.index, dtype="string")


def _rate(category: pd.Series, rates: dict[str, float], default: float) -> pd.Series:
    values = [default if pd.isna(v) else rates.get(str(v), default) for v in category]
    return pd.Series(values, index=category.index, dtype="float64")


# ------------------------------------------------------------------------------------------ prepare


def prepare_crm(
    out_dir: str | Path,
    data_path: str | Path | None = None,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
) -> dict[str, object]:
    """Load, split, fit train statistics and write the prepared CRM data set to ``out_dir``.

    Writes train.parquet, val.parquet, test.parquet (leads with features), historical_stats.json,
    split.json (the returned summary) and defects.csv (cells repaired to missing).
    """
    out = _output_dir(out_dir)
    loaded = load_salescrm(data_path)
    split = temporal_split(loaded.frame, fractions)
    stats = fit_historical_stats(split.train)
    try:
        for name, part in split.parts().items():
            add_features(part, stats).to_parquet(out / f"{name}.parquet", index=False)
        _write_json(out / "historical_stats.json", stats.to_dict())
        loaded.defects_frame().to_csv(out / "defects.csv", index=False)
        summary = split_summary(loaded, split, out)
        _write_json(out / "split.json", summary)
    except OSError as error:
        raise NextbestError(f"{out}: cannot write the prepared data ({error})") from None
    return summary


def split_summary(loaded: LoadedCRM, split: SplitResult, out: Path | None = None) -> dict[str, object]:
    """The JSON summary of a split: boundaries, per-split counts, dropped leads, source and defects."""
    parts = split.parts()
    summary: dict[str, object] = {
        "source": str(loaded.source.resolve()),
        "leads_loaded": len(loaded.frame),
        "fractions": list(split.fractions),
        "boundaries": split.boundaries,
        "rows": {name: len(part) for name, part in parts.items()},
        "subscribed": {name: int(part["subscribed"].notna().sum()) for name, part in parts.items()},
        "first_calls": {name: int(part["first_call"].notna().sum()) for name, part in parts.items()},
        "periods": {name: _period(part) for name, part in parts.items()},
        "dropped_no_date": split.dropped_no_date,
        "dropped_no_date_note": "leads with no date at all cannot be placed in time and are in no split",
        "repairs": loaded.counts,
        "defect_count": len(loaded.defects),
        "defects": [defect.to_dict() for defect in loaded.defects],
    }
    if out is not None:
        files = [f"{name}.parquet" for name in SPLIT_NAMES]
        files += ["historical_stats.json", "split.json", "defects.csv"]
        summary["files"] = {name: str(out / name) for name in files}
    return summary


def _period(part: pd.DataFrame) -> dict[str, str | None]:
    if part.empty:
        return {"first": None, "last": None}
    return {"first": part["lead_date"].min().date().isoformat(), "last": _last_date(part)}


def _output_dir(out_dir: str | Path) -> Path:
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise NextbestError(f"{out}: exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise NextbestError(f"{out}: cannot create the output folder ({error})") from None
    return out


def _write_json(path: Path, data: dict[str, object]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
