"""Temporal split, train-only statistics, features, and the guard against outcome leakage."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from nextbest.data import (
    FEATURE_COLUMNS,
    HistoricalStats,
    add_features,
    fit_historical_stats,
    lead_dates,
    load_salescrm,
    prepare_crm,
    resolve_data_file,
    temporal_split,
)
from nextbest.errors import DataError, NextbestError


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    try:
        path = resolve_data_file("salescrm", "SalesCRM - CRM.csv")
    except DataError as error:
        pytest.fail(f"real SalesCRM data missing (expected in ../shared/data or $NEXTBEST_DATA_DIR): {error}")
    return load_salescrm(path).frame


def stats_bytes(stats: HistoricalStats) -> bytes:
    return json.dumps(stats.to_dict(), sort_keys=True).encode()


def frame_bytes(data: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    data.to_parquet(buffer, index=False)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------ split


def test_split_counts_70_15_15(frame):
    split = temporal_split(frame)
    dated = int(frame["lead_date"].notna().sum())
    assert split.dropped_no_date == 53 == len(frame) - dated
    sizes = [len(split.train), len(split.val), len(split.test)]
    assert sum(sizes) == dated
    for size, fraction in zip(sizes, (0.7, 0.15, 0.15), strict=True):
        assert abs(size - fraction * dated) <= 1
    ids = pd.concat([split.train["lead_id"], split.val["lead_id"], split.test["lead_id"]])
    assert ids.is_unique
    assert not split.train["lead_date"].isna().any()


def test_split_is_ordered_in_time(frame):
    split = temporal_split(frame)
    assert split.train["lead_date"].max() <= split.val["lead_date"].min()
    assert split.val["lead_date"].max() <= split.test["lead_date"].min()
    assert split.boundaries["train_end"] == split.train["lead_date"].max().date().isoformat()
    assert split.boundaries["val_end"] == split.val["lead_date"].max().date().isoformat()
    for part in split.parts().values():
        ordered = part.sort_values(["lead_date", "lead_id"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(part, ordered)


def test_split_ties_broken_by_lead_id():
    dates = pd.to_datetime(["2021-01-02", "2021-01-01", "2021-01-01", None, "2021-01-03"])
    toy = pd.DataFrame({"lead_id": [5, 9, 3, 7, 1], "lead_date": dates})
    split = temporal_split(toy, (0.5, 0.25, 0.25))
    assert split.train["lead_id"].tolist() == [3, 9]
    assert split.val["lead_id"].tolist() == [5]
    assert split.test["lead_id"].tolist() == [1]
    assert split.dropped_no_date == 1


@pytest.mark.parametrize("fractions", [(0.7, 0.2, 0.2), (0.5, 0.5), (-0.1, 0.6, 0.5)])
def test_bad_fractions(frame, fractions):
    with pytest.raises(NextbestError, match="fractions"):
        temporal_split(frame, fractions)


# ---------------------------------------------------------------------------------------- stats


def toy_train() -> pd.DataFrame:
    countries = ["A"] * 40 + ["B"] * 10 + [None] * 10
    subscribed = [pd.Timestamp("2021-02-01")] * 4 + [pd.NaT] * 46 + [pd.Timestamp("2021-02-01")] + [pd.NaT] * 9
    return pd.DataFrame(
        {
            "lead_id": range(60),
            "country": pd.array(countries, dtype="string"),
            "education": pd.array(["B1"] * 60, dtype="string"),
            "first_contact": pd.to_datetime(["2021-01-01"] * 60),
            "last_contact": pd.to_datetime(["2021-01-11"] * 30 + [None] * 30),
            "subscribed": pd.Series(subscribed, dtype="datetime64[ns]"),
            "lead_date": pd.to_datetime(["2021-01-01"] * 30 + ["2021-01-21"] * 30),
        }
    )


def test_smoothed_rates_formula_and_vocabulary():
    train = toy_train()
    stats = fit_historical_stats(train, m=20, min_count=30)
    global_rate = 5 / 60
    assert stats.global_rate == pytest.approx(global_rate)
    assert stats.category_rates["country"]["A"] == pytest.approx((4 + 20 * global_rate) / (40 + 20))
    assert stats.category_rates["country"]["B"] == pytest.approx((0 + 20 * global_rate) / (10 + 20))
    assert stats.vocabularies["country"] == ["A"]
    assert stats.reference_date == "2021-01-21"
    assert stats.days_since_first_contact_mean == pytest.approx(5.0)  # 30 x 10 days, 30 x 0 (filled)
    assert stats.days_since_first_contact_std == pytest.approx(5.0)


def test_features_map_unseen_and_missing():
    stats = fit_historical_stats(toy_train())
    other = pd.DataFrame(
        {
            "lead_id": [100, 101, 102],
            "country": pd.array(["B", "Z", None], dtype="string"),
            "education": pd.array(["B1", "B9", None], dtype="string"),
            "first_contact": pd.to_datetime(["2021-03-01", None, None]),
            "last_contact": pd.to_datetime(["2021-03-11", None, None]),
            "subscribed": pd.Series([pd.NaT] * 3, dtype="datetime64[ns]"),
            "lead_date": pd.to_datetime(["2021-03-01", "2021-03-02", None]),
        }
    )
    featured = add_features(other, stats)
    assert featured["country_cat"].tolist() == ["Other", "Other", "Unknown"]
    assert featured["education_cat"].tolist() == ["B1", "Other", "Unknown"]
    assert featured.loc[0, "country_conv_rate"] == pytest.approx(stats.category_rates["country"]["B"])
    assert featured.loc[1, "country_conv_rate"] == pytest.approx(stats.global_rate)
    assert featured.loc[2, "country_conv_rate"] == pytest.approx(stats.global_rate)
    assert featured.loc[2, "days_to_reference_z"] == 0.0
    assert set(FEATURE_COLUMNS) <= set(featured.columns)
    assert "country_cat" not in other.columns  # input left untouched


def test_train_features_are_standardized(frame):
    split = temporal_split(frame)
    stats = fit_historical_stats(split.train)
    featured = add_features(split.train, stats)
    for column in ("days_since_first_contact_z", "days_to_reference_z"):
        assert featured[column].mean() == pytest.approx(0.0, abs=1e-9)
        assert featured[column].std(ddof=0) == pytest.approx(1.0)
    assert not featured[list(FEATURE_COLUMNS)].isna().any().any()
    assert stats.positives == int(split.train["subscribed"].notna().sum())


def test_stats_round_trip(frame):
    stats = fit_historical_stats(temporal_split(frame).train)
    again = HistoricalStats.from_dict(json.loads(json.dumps(stats.to_dict())))
    assert again == stats


# -------------------------------------------------------------------------------------- leakage


def with_test_outcomes(frame: pd.DataFrame, test_ids: pd.Series, subscribed: bool) -> pd.DataFrame:
    """A copy where every test-period lead subscribed (on its lead date) or none did."""
    changed = frame.copy()
    mask = changed["lead_id"].isin(test_ids)
    changed.loc[mask, "subscribed"] = changed.loc[mask, "lead_date"] if subscribed else pd.NaT
    changed["lead_date"] = lead_dates(changed)
    return changed


@pytest.mark.parametrize("subscribed", [True, False])
def test_test_outcomes_do_not_leak_into_train(frame, subscribed):
    split = temporal_split(frame)
    stats = fit_historical_stats(split.train)
    changed = with_test_outcomes(frame, split.test["lead_id"], subscribed)
    split_changed = temporal_split(changed)
    assert split_changed.test["subscribed"].notna().sum() != split.test["subscribed"].notna().sum()
    stats_changed = fit_historical_stats(split_changed.train)
    assert stats_bytes(stats_changed) == stats_bytes(stats)
    assert frame_bytes(add_features(split_changed.train, stats_changed)) == frame_bytes(
        add_features(split.train, stats)
    )
    assert frame_bytes(add_features(split_changed.val, stats_changed)) == frame_bytes(add_features(split.val, stats))
    assert split_changed.boundaries == split.boundaries


def test_leakage_guard_can_fail(frame):
    """Stats fitted on all dated leads differ from train-only stats, so the guard above has teeth."""
    split = temporal_split(frame)
    train_stats = fit_historical_stats(split.train)
    full_stats = fit_historical_stats(frame[frame["lead_date"].notna()])
    assert stats_bytes(full_stats) != stats_bytes(train_stats)
    assert full_stats.global_rate != train_stats.global_rate
    changed = with_test_outcomes(frame, split.test["lead_id"], subscribed=True)
    leaky = fit_historical_stats(changed[changed["lead_date"].notna()])
    assert stats_bytes(leaky) != stats_bytes(full_stats)


# -------------------------------------------------------------------------------------- prepare


def test_prepare_crm_writes_consistent_files(frame, tmp_path):
    summary = prepare_crm(tmp_path / "prep")
    out = tmp_path / "prep"
    on_disk = json.loads((out / "split.json").read_text())
    assert on_disk == summary.to_dict()
    parts = {name: pd.read_parquet(out / f"{name}.parquet") for name in ("train", "val", "test")}
    assert {name: len(part) for name, part in parts.items()} == summary.rows
    positives = {name: int(part["subscribed"].notna().sum()) for name, part in parts.items()}
    assert positives == summary.subscribed
    assert sum(positives.values()) == 47
    calls = {name: int(part["first_call"].notna().sum()) for name, part in parts.items()}
    assert calls == summary.first_calls
    assert summary.dropped_no_date == 53
    assert parts["train"]["lead_date"].max() <= parts["val"]["lead_date"].min()
    assert parts["train"]["lead_date"].dtype == "datetime64[ns]"
    stats = HistoricalStats.from_dict(json.loads((out / "historical_stats.json").read_text()))
    assert stats.reference_date == summary.boundaries["train_end"]
    defects = pd.read_csv(out / "defects.csv")
    assert len(defects) == len(summary.defects) == summary.defect_count
    assert "Did sign up to the platform" in set(defects["column"])


def test_prepare_crm_bad_out_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(NextbestError, match="not a folder"):
        prepare_crm(blocker)
