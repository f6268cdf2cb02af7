"""Datasets, their validation, temporal splits and train-only statistics."""

from nextbest.data.paths import resolve_data_file
from nextbest.data.salescrm import (
    DATE_COLUMNS,
    RAW_COLUMNS,
    STATUS_VALUES,
    Defect,
    LoadedCRM,
    lead_dates,
    load_export,
    load_salescrm,
)
from nextbest.data.split import (
    FEATURE_COLUMNS,
    HistoricalStats,
    SplitResult,
    add_features,
    feature_columns,
    fit_historical_stats,
    prepare_crm,
    split_summary,
    temporal_split,
)

__all__ = [
    "DATE_COLUMNS",
    "FEATURE_COLUMNS",
    "HistoricalStats",
    "RAW_COLUMNS",
    "STATUS_VALUES",
    "Defect",
    "LoadedCRM",
    "SplitResult",
    "add_features",
    "feature_columns",
    "fit_historical_stats",
    "lead_dates",
    "load_export",
    "load_salescrm",
    "prepare_crm",
    "resolve_data_file",
    "split_summary",
    "temporal_split",
]
