"""Any funnel's export: the B2B SaaS example is generated, loaded with its spec, prepared; bad exports fail clearly."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest

from nextbest.data import (
    HistoricalStats,
    feature_columns,
    load_export,
    load_salescrm,
    prepare_crm,
    resolve_data_file,
)
from nextbest.data.b2b_saas import COLUMNS, generate_b2b_export, write_b2b_example
from nextbest.data.funnel_spec import SPECS, default_funnel_spec, load_funnel_spec
from nextbest.data.prepared import load_or_prepare, load_prepared
from nextbest.errors import DataError

LEADS = 3000
B2B_SPEC = load_funnel_spec(SPECS / "b2b_saas.toml")


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return write_b2b_example(tmp_path_factory.mktemp("b2b"), n_leads=LEADS, seed=3)


@pytest.fixture(scope="module")
def loaded(example: dict):
    return load_export(example["files"]["export"], B2B_SPEC)


# ------------------------------------------------------------------------------------------ loading


def test_b2b_export_loads_with_its_spec(example: dict, loaded) -> None:
    frame = loaded.frame
    assert len(frame) == LEADS == example["leads"]
    assert example["rows"] == LEADS + example["defects"]["blank rows"]
    assert loaded.counts["empty rows dropped"] == example["defects"]["blank rows"]
    assert list(frame.columns) == ["lead_id", *(B2B_SPEC.export.rename[c] for c in COLUMNS[1:]), "lead_date"]
    assert frame["lead_id"].is_unique and frame["lead_id"].dtype == "int64"
    for column in B2B_SPEC.date_columns():
        assert frame[column].dtype == "datetime64[ns]"
    for column in B2B_SPEC.text_columns():
        assert frame[column].dtype == "string"
    assert not frame["industry"].dropna().str.contains(r"^\s|\s$").any()  # blanks around categories stripped
    assert frame["industry"].isna().sum() == example["defects"]["missing industry"]
    assert set(frame["lifecycle"]) == {"open", "lost", "unsubscribed", "customer"}
    pd.testing.assert_series_equal(
        frame["lead_date"], frame[B2B_SPEC.date_columns()].min(axis=1).astype("datetime64[ns]"), check_names=False
    )


def test_b2b_defects_name_file_row_and_raw_column(example: dict, loaded) -> None:
    injected = example["defects"]
    assert len(loaded.defects) == injected["impossible dates"] + injected["far-future dates"]
    reasons = [d.reason for d in loaded.defects]
    assert sum(r.startswith("day 3") and "out of range for" in r for r in reasons) == injected["impossible dates"]
    assert reasons.count("in the future") == injected["far-future dates"]
    with open(example["files"]["export"], newline="", encoding="utf-8") as handle:
        lines = list(csv.reader(handle))
    header = lines[0]
    for defect in loaded.defects:
        assert defect.file == "b2b_saas.csv"
        assert defect.column in COLUMNS
        assert lines[defect.row - 1][header.index(defect.column)] == defect.value  # the header is row 1
    assert {d.value[:6] for d in loaded.defects if d.reason != "in the future"} <= {"30/02/", "31/02/"}


def test_b2b_status_is_case_normalized(example: dict, loaded) -> None:
    raw = pd.read_csv(example["files"]["export"], dtype=str, keep_default_na=False)
    variants = set(raw["Nurture Stage"]) - {"", "1 email", "2 emails"}
    assert variants and {v.lower() for v in variants} <= {"1 email", "2 emails"}
    assert set(loaded.frame["nurture"].dropna()) == {"1 email", "2 emails"}
    assert (loaded.frame["nurture"] == "2 emails").sum() == (raw["Nurture Stage"].str.lower() == "2 emails").sum()


def test_salescrm_through_load_export_is_load_salescrm() -> None:
    try:
        path = resolve_data_file("salescrm", "SalesCRM - CRM.csv")
    except DataError as error:
        pytest.fail(f"real SalesCRM data missing (expected in ../shared/data or $NEXTBEST_DATA_DIR): {error}")
    general, special = load_export(path, default_funnel_spec()), load_salescrm(path)
    pd.testing.assert_frame_equal(general.frame, special.frame)
    assert general.defects == special.defects and general.counts == special.counts


# ------------------------------------------------------------------------------------------ prepare


def test_prepare_b2b_writes_the_folder_with_its_spec(example: dict, tmp_path: Path) -> None:
    out = tmp_path / "prepared"
    summary = prepare_crm(out, example["files"]["export"], spec=B2B_SPEC)
    assert (out / "funnel_spec.toml").read_bytes() == Path(B2B_SPEC.source).read_bytes()
    assert (summary.funnel, summary.conversion_step, summary.first_key_step) == ("b2b-saas", "paid", "mql")
    assert json.loads((out / "split.json").read_text()) == summary.to_dict()
    prepared = load_prepared(out)
    assert prepared.spec.name == "b2b-saas"
    assert prepared.spec.step_names == B2B_SPEC.step_names
    features = feature_columns(B2B_SPEC)
    for covariate in ("industry", "company_size", "source"):
        assert {f"{covariate}_cat", f"{covariate}_conv_rate"} <= set(features)
    for part in (prepared.train, prepared.val, prepared.test):
        assert set(features) <= set(part.columns)
        assert not part[list(features)].isna().any().any()
    assert set(prepared.train["company_size_cat"]) == {"1-10", "11-50", "51-200", "201-1000", "1000+", "Unknown"}
    assert prepared.train["lead_date"].max() <= prepared.val["lead_date"].min()
    assert prepared.val["lead_date"].max() <= prepared.test["lead_date"].min()
    paid = {name: int(prepared.part(name)["closed_won"].notna().sum()) for name in ("train", "val", "test")}
    assert paid == summary.subscribed
    mql = {name: int(prepared.part(name)["mql_date"].notna().sum()) for name in ("train", "val", "test")}
    assert mql == summary.first_calls
    assert prepared.stats.positives == paid["train"]
    assert set(prepared.stats.vocabularies) == {"industry", "company_size", "source"}
    assert load_or_prepare(out, spec=B2B_SPEC).spec.name == "b2b-saas"
    with pytest.raises(DataError, match="prepared for funnel 'b2b-saas'"):
        load_or_prepare(out, spec=default_funnel_spec())
    (out / "funnel_spec.toml").unlink()  # a folder written before the spec was copied: SalesCRM's
    assert load_prepared(out).spec.name == "salescrm"


def test_prepare_with_another_spec_needs_its_export(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="give the export file"):
        prepare_crm(tmp_path / "out", spec=B2B_SPEC)


def test_old_historical_stats_layout_is_read() -> None:
    old = {"reference_date": "2021-07-07", "n_train": 10, "positives": 1, "global_rate": 0.1,
           "country_rates": {"A": 0.2}, "education_rates": {"B1": 0.1}, "country_vocab": ["A"],
           "education_vocab": []}  # fmt: skip
    stats = HistoricalStats.from_dict(old)
    assert stats.category_rates == {"country": {"A": 0.2}, "education": {"B1": 0.1}}
    assert stats.vocabularies == {"country": ["A"], "education": []}
    assert HistoricalStats.from_dict(stats.to_dict()) == stats


# ---------------------------------------------------------------------------------------- bad exports

GOOD = {"Lead ID": "1", "Industry": "Retail", "Company Size": "1-10", "Lead Source": "organic",
        "Created": "02/01/2024", "Last Activity": "09/01/2024", "Nurture Stage": "1 email", "MQL Date": "",
        "SQL Date": "", "Demo Status": "", "Trial Start": "", "Trial Extended": "", "Discount Offered": "",
        "Closed Won": "", "Lifecycle": "open"}  # fmt: skip


def write_export(path: Path, changes: dict[int, dict[str, str]] | None = None, drop: str | None = None) -> Path:
    """Three good leads (rows 2..4 of the file), with ``changes`` by lead index, without column ``drop``."""
    rows = [{**GOOD, "Lead ID": str(i + 1), **(changes or {}).get(i, {})} for i in range(3)]
    header = [column for column in COLUMNS if column != drop]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def load_error(path: Path, *fragments: str) -> str:
    with pytest.raises(DataError) as caught:
        load_export(path, B2B_SPEC)
    message = str(caught.value)
    for fragment in (path.name, *fragments):
        assert fragment in message, message
    return message


def test_good_small_export(tmp_path: Path) -> None:
    loaded = load_export(write_export(tmp_path / "ok.csv", {2: {"Created": "31/02/2024"}}), B2B_SPEC)
    assert len(loaded.frame) == 3
    assert loaded.frame.loc[0, "created"] == pd.Timestamp("2024-01-02")  # day first, as the spec's format says
    assert [(d.row, d.column, d.reason) for d in loaded.defects] == [(4, "Created", "day 31 out of range for 2024-02")]


def test_missing_column_names_the_raw_column(tmp_path: Path) -> None:
    load_error(write_export(tmp_path / "cols.csv", drop="Nurture Stage"), "missing required column", "'Nurture Stage'")


def test_unknown_status_names_row_column_value_and_allowed(tmp_path: Path) -> None:
    path = write_export(tmp_path / "status.csv", {1: {"Nurture Stage": "3 emails"}})
    load_error(path, "row 3", "'Nurture Stage'", "'3 emails'", "1 email, 2 emails")


def test_text_in_a_date_column_names_row_and_column(tmp_path: Path) -> None:
    load_error(write_export(tmp_path / "date.csv", {2: {"MQL Date": "soon"}}), "row 4", "'MQL Date'", "'soon'")
    message = load_error(write_export(tmp_path / "iso.csv", {0: {"Trial Start": "2024-01-05"}}), "row 2")
    assert "'Trial Start'" in message and "%d/%m/%Y" in message


def test_duplicated_id(tmp_path: Path) -> None:
    message = load_error(write_export(tmp_path / "dup.csv", {2: {"Lead ID": "1"}}), "row 4", "'Lead ID'")
    assert "duplicated ID 1" in message and "row 2" in message


# ------------------------------------------------------------------------------------------ generator


def test_generator_is_deterministic(tmp_path: Path) -> None:
    first = write_b2b_example(tmp_path / "a", n_leads=500, seed=11)
    second = write_b2b_example(tmp_path / "b", n_leads=500, seed=11)
    other = write_b2b_example(tmp_path / "c", n_leads=500, seed=12)
    text = Path(first["files"]["export"]).read_bytes()
    assert text == Path(second["files"]["export"]).read_bytes()
    assert text != Path(other["files"]["export"]).read_bytes()
    assert Path(first["files"]["spec"]).read_bytes() == (SPECS / "b2b_saas.toml").read_bytes()
    pd.testing.assert_frame_equal(generate_b2b_export(500, seed=11), generate_b2b_export(500, seed=11))


def test_rates_leave_every_step_to_learn(loaded) -> None:
    reached, dropped = B2B_SPEC.reached(loaded.frame)
    rates = dict(zip(B2B_SPEC.step_names, reached.mean(axis=0), strict=True))
    assert 0.02 <= rates["paid"] <= 0.12
    assert all(rate >= 0.01 for rate in rates.values()), rates
    assert 0.01 <= dropped.mean() <= 0.3
    created = loaded.frame["created"].dropna().astype("int64")  # grows with the lead id, up to a few days
    assert created.corr(loaded.frame["lead_id"].astype(float)) > 0.99
