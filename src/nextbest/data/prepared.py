"""Reading a folder written by `prepare_crm` (train/val/test Parquet + statistics)."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from nextbest.data.split import HistoricalStats, prepare_crm
from nextbest.errors import DataError

SPLITS = ("train", "val", "test")


@dataclass
class PreparedCRM:
    """The three splits with train-only features, the statistics and the split summary."""

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    stats: HistoricalStats
    split: dict
    directory: Path

    def part(self, name: str) -> pd.DataFrame:
        """One split by name (train, val or test)."""
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}")
        return getattr(self, name)


def load_prepared(directory: str | Path) -> PreparedCRM:
    """Read a prepared folder; a missing or incomplete folder is a DataError naming what is missing."""
    root = Path(directory)
    needed = [f"{name}.parquet" for name in SPLITS] + ["historical_stats.json", "split.json"]
    missing = [name for name in needed if not (root / name).is_file()]
    if missing:
        raise DataError(
            f"{root}: not a prepared CRM folder (missing {', '.join(missing)}); run `nextbest crm prepare --out {root}`"
        )
    frames = {}
    for name in SPLITS:
        try:
            frames[name] = pd.read_parquet(root / f"{name}.parquet")
        except Exception as error:  # pyarrow raises several types for a damaged file
            raise DataError(f"{root / (name + '.parquet')}: cannot be read as Parquet ({error})") from error
    try:
        stats = HistoricalStats.from_dict(json.loads((root / "historical_stats.json").read_text()))
        split = json.loads((root / "split.json").read_text())
    except (ValueError, KeyError, TypeError) as error:
        raise DataError(f"{root}: historical_stats.json or split.json is not valid ({error})") from error
    return PreparedCRM(frames["train"], frames["val"], frames["test"], stats, split, root)


def load_or_prepare(directory: str | Path | None = None, data_path: str | Path | None = None) -> PreparedCRM:
    """A prepared folder, or the embedded default (the shared SalesCRM file) prepared in a temp folder."""
    if directory is not None:
        return load_prepared(directory)
    target = Path(tempfile.mkdtemp(prefix="nextbest-crm-"))
    prepare_crm(target, data_path=data_path)
    return load_prepared(target)

