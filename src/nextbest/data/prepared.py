"""Reading a folder written by `prepare_crm` (train/val/test Parquet, statistics and the funnel spec)."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from nextbest.data.funnel_spec import FunnelSpec, default_funnel_spec, load_funnel_spec
from nextbest.data.split import SPEC_FILE, HistoricalStats, SplitSummary, prepare_crm
from nextbest.errors import DataError

SPLITS = ("train", "val", "test")


@dataclass
class PreparedCRM:
    """The three splits with train-only features, the statistics, the split summary and the funnel spec.

    ``spec`` is read from the folder's ``funnel_spec.toml`` (SalesCRM's spec for folders written before it).
    """

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    stats: HistoricalStats
    split: SplitSummary
    directory: Path
    spec: FunnelSpec = field(default_factory=default_funnel_spec)

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
        split = SplitSummary.from_dict(json.loads((root / "split.json").read_text()), str(root / "split.json"))
    except (ValueError, KeyError, TypeError) as error:
        raise DataError(f"{root}: historical_stats.json or split.json is not valid ({error})") from error
    spec_file = root / SPEC_FILE
    spec = load_funnel_spec(spec_file) if spec_file.is_file() else default_funnel_spec()
    return PreparedCRM(frames["train"], frames["val"], frames["test"], stats, split, root, spec)


def load_or_prepare(
    directory: str | Path | None = None, data_path: str | Path | None = None, spec: FunnelSpec | None = None
) -> PreparedCRM:
    """A prepared folder, or the export at ``data_path`` that ``spec`` describes prepared in a temp folder.

    Without a folder and with neither a data path nor a spec, the embedded default: the shared SalesCRM file.
    A folder prepared for another funnel than ``spec`` is a DataError.
    """
    if directory is not None:
        prepared = load_prepared(directory)
        if spec is not None and prepared.spec.name != spec.name:
            raise DataError(
                f"{directory}: prepared for funnel '{prepared.spec.name}', not '{spec.name}' ({spec.source})"
            )
        return prepared
    target = Path(tempfile.mkdtemp(prefix="nextbest-crm-"))
    prepare_crm(target, data_path=data_path, spec=spec)
    return load_prepared(target)
