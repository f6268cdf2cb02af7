"""Temporal train/validation/test split of the CRM leads, and statistics learned on train only.

Any funnel a :class:`~nextbest.data.funnel_spec.FunnelSpec` describes: conversion is its conversion step
reached, the categorical features are its covariates, the contact span its ``[export] contact_span``. The
functions take ``spec=None`` for SalesCRM's shipped spec.

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
from typing import Any

import numpy as np
import pandas as pd

from nextbest.data.funnel_spec import FunnelSpec, _reached
from nextbest.data.paths import resolve_data_file
from nextbest.data.salescrm import DATASET, DEFAULT_FILE, SALESCRM_SPEC, LoadedCRM, load_export, load_salescrm
from nextbest.errors import DataError, NextbestError
from nextbest.results import Result

SPLIT_NAMES: tuple[str, str, str] = ("train", "val", "test")
DEFAULT_FRACTIONS: tuple[float, float, float] = (0.7, 0.15, 0.15)
SMOOTHING_M = 20.0
MIN_CATEGORY_COUNT = 30
OTHER = "Other"
UNKNOWN = "Unknown"
TIME_FEATURES: tuple[str, ...] = ("days_since_first_contact_z", "days_to_reference_z")
SPEC_FILE = "funnel_spec.toml"


def feature_columns(spec: FunnelSpec | None = None) -> tuple[str, ...]:
    """The features :func:`add_features` adds: ``{c}_cat`` and ``{c}_conv_rate`` per covariate, then the times."""
    covariates = (spec or SALESCRM_SPEC).covariates
    return (*(f"{c}_cat" for c in covariates), *(f"{c}_conv_rate" for c in covariates), *TIME_FEATURES)


#: SalesCRM's features.
FEATURE_COLUMNS: tuple[str, ...] = feature_columns(SALESCRM_SPEC)


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

    - conversion = the spec's conversion step reached (SalesCRM: ``subscribed`` is not NaT);
      ``global_rate`` = positives / leads in train;
    - ``category_rates[c]``: per covariate ``c``, the smoothed rate of a category = (positives + m *
      global_rate) / (n + m), with m = ``smoothing_m``; categories unseen in train, and missing values,
      get ``global_rate``;
    - ``vocabularies[c]``: categories with at least ``min_category_count`` train leads; others pool into
      ``"Other"``, missing into ``"Unknown"``;
    - z-scores use the train mean and population std (std 1 when it is 0) of
      ``days_since_first_contact`` = last - first date of the spec's ``contact_span`` in days (0 when either
      is missing, or for every lead when the spec has no span; SalesCRM: last_contact - first_contact) and
      ``days_to_reference`` = ``reference_date`` - lead_date in days, ``reference_date`` being the last
      lead_date in train.
    """

    reference_date: str
    n_train: int
    positives: int
    global_rate: float
    smoothing_m: float = SMOOTHING_M
    min_category_count: int = MIN_CATEGORY_COUNT
    category_rates: dict[str, dict[str, float]] = field(default_factory=dict)
    vocabularies: dict[str, list[str]] = field(default_factory=dict)
    days_since_first_contact_mean: float = 0.0
    days_since_first_contact_std: float = 1.0
    days_to_reference_mean: float = 0.0
    days_to_reference_std: float = 1.0

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> HistoricalStats:
        """Inverse of :meth:`to_dict`; also reads the older layout (``country_rates``, ``country_vocab``, ...)."""
        data = dict(data)
        rates = dict(data.pop("category_rates", None) or {})
        vocabularies = dict(data.pop("vocabularies", None) or {})
        for key in [key for key in data if key.endswith(("_rates", "_vocab"))]:
            covariate, kind = key.rsplit("_", 1)
            (rates if kind == "rates" else vocabularies)[covariate] = data.pop(key)
        return cls(**data, category_rates=rates, vocabularies=vocabularies)


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
    train: pd.DataFrame, spec: FunnelSpec | None = None, m: float = SMOOTHING_M, min_count: int = MIN_CATEGORY_COUNT
) -> HistoricalStats:
    """Fit :class:`HistoricalStats` on the train split only (see its docstring for the formulas)."""
    spec = spec or SALESCRM_SPEC
    converted = pd.Series(converted_leads(train, spec), index=train.index)
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
        category_rates={c: _smoothed_rates(_covariate(train, c), converted, global_rate, m) for c in spec.covariates},
        vocabularies={c: _vocabulary(_covariate(train, c), min_count) for c in spec.covariates},
    )
    mean, std = _moments(_days_since_first_contact(train, spec))
    stats.days_since_first_contact_mean, stats.days_since_first_contact_std = mean, std
    mean, std = _moments(_days_to_reference(train, stats.reference_date))
    stats.days_to_reference_mean, stats.days_to_reference_std = mean, std
    return stats


def converted_leads(frame: pd.DataFrame, spec: FunnelSpec | None = None) -> np.ndarray:
    """Bool [n]: the lead reached the spec's conversion step (its column of ``spec.reached``)."""
    return step_reached(frame, (spec or SALESCRM_SPEC).conversion_step, spec)


def step_reached(frame: pd.DataFrame, step: str, spec: FunnelSpec | None = None) -> np.ndarray:
    """Bool [n]: the lead reached ``step`` by the spec's rule (needs only that step's column)."""
    rule = (spec or SALESCRM_SPEC).step(step)
    missing = [column for column in rule.columns() if column not in frame.columns]
    if missing:
        raise DataError(f"the leads lack the columns {missing} that step {step!r} of the funnel spec reads")
    return _reached(rule, frame)


def _covariate(frame: pd.DataFrame, covariate: str) -> pd.Series:
    """A covariate column (all missing when the frame lacks it)."""
    if covariate in frame.columns:
        return frame[covariate]
    return pd.Series(pd.NA, index=frame.index, dtype="string")


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


def _days_since_first_contact(frame: pd.DataFrame, spec: FunnelSpec) -> pd.Series:
    """Last - first date of the spec's contact span in days, 0 when either date is missing or there is no span."""
    if spec.export.contact_span is None:
        return pd.Series(0.0, index=frame.index)
    first, last = spec.export.contact_span
    days = (frame[last] - frame[first]).dt.days
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


def add_features(frame: pd.DataFrame, stats: HistoricalStats, spec: FunnelSpec | None = None) -> pd.DataFrame:
    """Return a copy of ``frame`` with the :func:`feature_columns` computed from train-only ``stats``.

    {c}_cat per covariate c: the value when in the vocabulary, "Other" when not, "Unknown" when missing;
    {c}_conv_rate: the smoothed train rate of the raw value (global rate when unseen or missing);
    *_z: (x - train mean) / train std, a missing lead_date giving 0.
    """
    spec = spec or SALESCRM_SPEC
    out = frame.copy()
    for c in spec.covariates:
        out[f"{c}_cat"] = _pooled(_covariate(frame, c), stats.vocabularies.get(c, []))
    for c in spec.covariates:
        out[f"{c}_conv_rate"] = _rate(_covariate(frame, c), stats.category_rates.get(c, {}), stats.global_rate)
    since = _days_since_first_contact(frame, spec)
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
    spec: FunnelSpec | None = None,
) -> SplitSummary:
    """Load, split, fit train statistics and write the prepared CRM data set to ``out_dir``.

    ``spec`` describes the export at ``data_path`` (None: SalesCRM's spec; its export defaults to the
    shared SalesCRM file, any other spec needs ``data_path``). Writes train.parquet, val.parquet,
    test.parquet (leads with features), historical_stats.json, split.json (the returned summary),
    defects.csv (cells repaired to missing) and funnel_spec.toml (the spec file, verbatim).
    """
    spec_text = _spec_text(spec or SALESCRM_SPEC)
    out = _output_dir(out_dir)
    loaded = _load(data_path, spec)
    spec = spec or SALESCRM_SPEC
    split = temporal_split(loaded.frame, fractions)
    stats = fit_historical_stats(split.train, spec)
    try:
        for name, part in split.parts().items():
            add_features(part, stats, spec).to_parquet(out / f"{name}.parquet", index=False)
        _write_json(out / "historical_stats.json", stats.to_dict())
        loaded.defects_frame().to_csv(out / "defects.csv", index=False)
        (out / SPEC_FILE).write_bytes(spec_text)
        summary = split_summary(loaded, split, out, spec)
        summary.write(out / "split.json")
    except OSError as error:
        raise NextbestError(f"{out}: cannot write the prepared data ({error})") from None
    return summary


def _load(data_path: str | Path | None, spec: FunnelSpec | None) -> LoadedCRM:
    """The export: SalesCRM's (shared file by default) when ``spec`` is None, else the one ``spec`` describes."""
    if spec is None:
        return load_salescrm(data_path)
    if data_path is None:
        if Path(spec.source).resolve() != Path(SALESCRM_SPEC.source).resolve():
            raise DataError(f"{spec.source}: give the export file that funnel '{spec.name}' describes")
        data_path = resolve_data_file(DATASET, DEFAULT_FILE)
    return load_export(data_path, spec)


def _spec_text(spec: FunnelSpec) -> bytes:
    """The spec file's bytes, copied verbatim into the prepared folder."""
    try:
        return Path(spec.source).read_bytes()
    except OSError as error:
        raise DataError(f"{spec.source}: cannot read the funnel spec file to copy it ({error})") from None


class SplitSummary(Result, kw_only=True):
    """split.json: where the split was cut, counts per split (``subscribed``: leads that reached the conversion
    step, ``first_calls``: the first key step; SalesCRM's names), the source and every repaired defect."""

    source: str
    funnel: str = "salescrm"
    conversion_step: str = "subscribed"
    first_key_step: str | None = "first_call"
    leads_loaded: int
    fractions: list[float]
    boundaries: dict[str, str | None]
    rows: dict[str, int]
    subscribed: dict[str, int]
    first_calls: dict[str, int]
    periods: dict[str, dict[str, str | None]]
    dropped_no_date: int
    dropped_no_date_note: str
    repairs: dict[str, int]
    defect_count: int
    defects: list[dict[str, Any]]
    files: dict[str, str] | None = None


def split_summary(
    loaded: LoadedCRM, split: SplitResult, out: Path | None = None, spec: FunnelSpec | None = None
) -> SplitSummary:
    """The JSON summary of a split: boundaries, per-split counts, dropped leads, source and defects.

    ``subscribed``: leads per split that reached the conversion step; ``first_calls``: that reached the
    spec's first key step (SalesCRM: subscribed and first_call).
    """
    spec = spec or SALESCRM_SPEC
    parts = split.parts()
    first_key = spec.key_steps[0] if spec.key_steps else None
    summary: dict[str, object] = {
        "source": str(loaded.source.resolve()),
        "funnel": spec.name,
        "conversion_step": spec.conversion_step,
        "first_key_step": first_key,
        "leads_loaded": len(loaded.frame),
        "fractions": list(split.fractions),
        "boundaries": split.boundaries,
        "rows": {name: len(part) for name, part in parts.items()},
        "subscribed": {name: int(converted_leads(part, spec).sum()) for name, part in parts.items()},
        "first_calls": {
            name: int(step_reached(part, first_key, spec).sum()) if first_key else 0 for name, part in parts.items()
        },
        "periods": {name: _period(part) for name, part in parts.items()},
        "dropped_no_date": split.dropped_no_date,
        "dropped_no_date_note": "leads with no date at all cannot be placed in time and are in no split",
        "repairs": loaded.counts,
        "defect_count": len(loaded.defects),
        "defects": [defect.to_dict() for defect in loaded.defects],
    }
    if out is not None:
        files = [f"{name}.parquet" for name in SPLIT_NAMES]
        files += ["historical_stats.json", "split.json", "defects.csv", SPEC_FILE]
        summary["files"] = {name: str(out / name) for name in files}
    return SplitSummary.from_dict(summary, "split summary")


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
