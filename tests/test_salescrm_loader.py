"""SalesCRM loader: CSV and XLSX agree, real defects are repaired and reported, bad files fail clearly."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from typer.testing import CliRunner

from nextbest.data import DATE_COLUMNS, RAW_COLUMNS, load_salescrm, resolve_data_file
from nextbest.data import paths as paths_module
from nextbest.errors import DataError

HEADER = list(RAW_COLUMNS)
GOOD_ROWS = [
    ["1", "USA", "B1", "2021-05-01", "2021-05-03", "1st message", "", "2021-09-04", "", "", "", "", ""],
    ["2", "France", "B2", "2021-06-01", "", "2nd message", "interested", "", "", "", "No", "", "2021-07-01"],
    ["3", "", "", "2021-07-01", "03.08.2021", "3rd message", "", "", "", "", "", "", ""],
]


def _real(filename: str) -> Path:
    try:
        return resolve_data_file("salescrm", filename)
    except DataError as error:
        pytest.fail(f"real SalesCRM data missing (expected in ../shared/data or $NEXTBEST_DATA_DIR): {error}")


@pytest.fixture(scope="module")
def csv_crm():
    return load_salescrm(_real("SalesCRM - CRM.csv"))


@pytest.fixture(scope="module")
def xlsx_crm():
    return load_salescrm(_real("SalesCRM.xlsx"))


def write_csv(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_xlsx(path: Path, rows: list[list[object]], header: list[str] = HEADER) -> Path:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "CRM"
    sheet.append(header)
    for row in rows:
        sheet.append([None if cell == "" else cell for cell in row])
    workbook.save(path)
    return path


def with_cell(row_index: int, column: str, value: str) -> list[list[str]]:
    rows = [list(row) for row in GOOD_ROWS]
    rows[row_index][HEADER.index(column)] = value
    return rows


# ------------------------------------------------------------------------------------- real files


def test_csv_and_xlsx_give_identical_frames(csv_crm, xlsx_crm):
    pd.testing.assert_frame_equal(csv_crm.frame, xlsx_crm.frame)


def test_real_file_counts(csv_crm):
    frame = csv_crm.frame
    assert len(frame) == 11_032
    assert frame["lead_id"].is_unique
    # 48 leads have something in 'Subscribed': 47 real dates + the '0000-00-00' placeholder (lead 7889).
    placeholder = [d for d in csv_crm.defects if d.column == "Subscribed"]
    assert [d.value for d in placeholder] == ["0000-00-00"]
    assert frame["subscribed"].notna().sum() == 47
    assert frame["subscribed"].notna().sum() + len(placeholder) == 48


def test_real_file_dtypes(csv_crm):
    frame = csv_crm.frame
    assert frame["lead_id"].dtype == "int64"
    for column in ("country", "education", "status", "stage"):
        assert frame[column].dtype == "string"
    for column in (*DATE_COLUMNS, "lead_date"):
        assert frame[column].dtype == "datetime64[ns]"
    assert set(frame["status"].dropna()) == {"1st message", "2nd message", "3rd message"}


def test_lead_356_signup_cell_reported_in_both_files(csv_crm, xlsx_crm):
    xlsx_defect = [d for d in xlsx_crm.defects if d.column.startswith("Did sign up to the platform")]
    csv_defect = [d for d in csv_crm.defects if d.column.startswith("Did sign up to the platform")]
    assert len(xlsx_defect) == 1 and len(csv_defect) == 1
    assert xlsx_defect[0].row == 355
    assert xlsx_defect[0].column == "Did sign up to the platform (K355)"
    assert xlsx_defect[0].value == "6691845"
    assert xlsx_defect[0].reason == "date serial out of range"
    assert (csv_defect[0].row, csv_defect[0].value) == (355, "20221-08-24")  # header = line 1
    lead = csv_crm.frame.set_index("lead_id").loc[356]
    assert pd.isna(lead["signup"])


def test_real_defects_match_between_files(csv_crm, xlsx_crm):
    def key(crm):
        return [(d.row, d.column.split(" (")[0]) for d in crm.defects]

    assert key(csv_crm) == key(xlsx_crm)
    reasons = {d.reason for d in csv_crm.defects}
    assert "placeholder date (all zeros)" in reasons
    assert "month 13 out of range" in reasons
    late = [d for d in csv_crm.defects if d.reason.startswith("after the latest event date 2022-04-28")]
    assert late and all(d.column == "Last Contact" for d in late)
    assert csv_crm.counts["'No' read as missing (Did sign up to the platform)"] == 127
    assert xlsx_crm.counts["empty rows dropped"] == 778


def test_real_dates_are_plausible(csv_crm):
    frame = csv_crm.frame
    assert frame[list(DATE_COLUMNS)].max().max() == pd.Timestamp("2022-04-28")
    assert frame[list(DATE_COLUMNS)].min().min() >= pd.Timestamp("2015-01-01")
    # '27.12.2021' is read day-first; '02-27-2022' (lead 10425) month-first, as the XLSX holds it.
    by_id = frame.set_index("lead_id")
    assert by_id.loc[10425, "last_contact"] == pd.Timestamp("2022-02-27")


def test_defects_frame(csv_crm):
    table = csv_crm.defects_frame()
    assert list(table.columns) == ["file", "row", "column", "value", "reason"]
    assert len(table) == len(csv_crm.defects)
    assert set(table["file"]) == {"SalesCRM - CRM.csv"}


def test_lead_date_is_earliest_date(csv_crm):
    frame = csv_crm.frame
    expected = frame[list(DATE_COLUMNS)].min(axis=1)
    pd.testing.assert_series_equal(frame["lead_date"], expected, check_names=False)
    assert frame["lead_date"].isna().sum() == 53


# ----------------------------------------------------------------------------------- repairs


def test_repairable_shapes_become_missing_and_reported(tmp_path):
    rows = [list(row) for row in GOOD_ROWS]
    rows[0][HEADER.index("Subscribed")] = "0000-00-00"
    rows[1][HEADER.index("First Contact")] = "2021-13-12"
    rows[2][HEADER.index("Did sign up to the platform")] = "20221-08-24"
    rows[2][HEADER.index("Last Contact")] = "27.12.2031"
    path = write_csv(tmp_path / "repairs.csv", rows)
    loaded = load_salescrm(path)
    found = {(d.row, d.column): d.value for d in loaded.defects}
    assert found == {
        (2, "Subscribed"): "0000-00-00",
        (3, "First Contact"): "2021-13-12",
        (4, "Did sign up to the platform"): "20221-08-24",
        (4, "Last Contact"): "27.12.2031",
    }
    assert loaded.counts["'No' read as missing (Did sign up to the platform)"] == 1
    assert loaded.frame["subscribed"].isna().sum() == 2
    assert loaded.frame.loc[2, "lead_date"] == pd.Timestamp("2021-07-01")


def test_day_first_dotted_dates(tmp_path):
    loaded = load_salescrm(write_csv(tmp_path / "dotted.csv", GOOD_ROWS))
    assert loaded.frame.loc[2, "last_contact"] == pd.Timestamp("2021-08-03")
    assert loaded.defects == []


def test_xlsx_error_cell_and_row_numbers(tmp_path):
    rows: list[list[object]] = [list(row) for row in GOOD_ROWS]
    rows[1][HEADER.index("Subscribed")] = "#VALUE!"
    loaded = load_salescrm(write_xlsx(tmp_path / "errors.xlsx", rows))
    assert [(d.row, d.column, d.reason) for d in loaded.defects] == [(3, "Subscribed (M3)", "Excel error value")]


# -------------------------------------------------------------------------------- bad files


def assert_data_error(path: Path, *fragments: str) -> str:
    with pytest.raises(DataError) as caught:
        load_salescrm(path)
    message = str(caught.value)
    assert path.name in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    assert_data_error(path, "empty file")


def test_header_only_csv(tmp_path):
    assert_data_error(write_csv(tmp_path / "header.csv", []), "no rows")


def test_header_only_xlsx(tmp_path):
    assert_data_error(write_xlsx(tmp_path / "header.xlsx", []), "no rows")


def test_missing_columns_are_all_named(tmp_path):
    header = [name for name in HEADER if name not in ("Status", "Subscribed")]
    rows = [[cell for name, cell in zip(HEADER, row, strict=True) if name in header] for row in GOOD_ROWS]
    assert_data_error(write_csv(tmp_path / "columns.csv", rows, header), "'Status'", "'Subscribed'")


def test_non_integer_id(tmp_path):
    assert_data_error(write_csv(tmp_path / "id.csv", with_cell(1, "ID", "abc")), "row 3", "'ID'", "'abc'")


def test_missing_id(tmp_path):
    assert_data_error(write_csv(tmp_path / "noid.csv", with_cell(2, "ID", "")), "row 4", "'ID'")


def test_duplicated_id(tmp_path):
    message = assert_data_error(write_csv(tmp_path / "dup.csv", with_cell(2, "ID", "1")), "row 4", "'ID'")
    assert "duplicated ID 1" in message and "row 2" in message


def test_unreadable_date(tmp_path):
    path = write_csv(tmp_path / "date.csv", with_cell(1, "First Call", "hello"))
    assert_data_error(path, "row 3", "'First Call'", "'hello'")


def test_unreadable_date_xlsx_names_cell(tmp_path):
    path = write_xlsx(tmp_path / "date.xlsx", with_cell(1, "First Call", "hello"))
    assert_data_error(path, "row 3", "First Call (H3)", "'hello'")


def test_unknown_status(tmp_path):
    path = write_csv(tmp_path / "status.csv", with_cell(0, "Status", "4th message"))
    assert_data_error(path, "row 2", "'Status'", "'4th message'")


def test_binary_garbage_csv(tmp_path):
    path = tmp_path / "garbage.csv"
    path.write_bytes(bytes(range(256)) * 8)
    assert_data_error(path, "binary")


def test_xlsx_named_csv(tmp_path):
    workbook = write_xlsx(tmp_path / "book.xlsx", GOOD_ROWS)
    path = tmp_path / "book.csv"
    path.write_bytes(workbook.read_bytes())
    assert_data_error(path, "Excel workbook")


def test_garbage_xlsx(tmp_path):
    path = tmp_path / "broken.xlsx"
    path.write_bytes(b"not a zip at all")
    assert_data_error(path, "not a readable Excel workbook")


def test_unsupported_suffix(tmp_path):
    path = tmp_path / "leads.json"
    path.write_text("{}")
    assert_data_error(path, "unsupported file type")


def test_explicit_path_missing(tmp_path):
    assert_data_error(tmp_path / "nowhere.csv", "does not exist")


# --------------------------------------------------------------------------------- resolver


def test_resolver_uses_env_dir(tmp_path, monkeypatch):
    target = tmp_path / "salescrm" / "x.csv"
    target.parent.mkdir()
    target.write_text("ID\n")
    monkeypatch.setenv("NEXTBEST_DATA_DIR", str(tmp_path))
    assert resolve_data_file("salescrm", "x.csv") == target


def test_resolver_not_found_explains(tmp_path, monkeypatch):
    monkeypatch.delenv("NEXTBEST_DATA_DIR", raising=False)
    monkeypatch.setattr(paths_module, "repo_root", lambda: None)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as caught:
        resolve_data_file("salescrm", "SalesCRM - CRM.csv")
    message = str(caught.value)
    assert "rubchume/ReinforcementLearningUsers" in message and "offline" in message
    assert str(tmp_path / ".cache" / "nextbest" / "salescrm") in message


# -------------------------------------------------------------------------------------- CLI


def test_cli_prepare_writes_everything(tmp_path):
    _real("SalesCRM - CRM.csv")
    from nextbest.cli.main import app

    out = tmp_path / "prep"
    result = CliRunner().invoke(app, ["crm", "prepare", "--out", str(out)])
    assert result.exit_code == 0, result.output
    for name in ("train.parquet", "val.parquet", "test.parquet", "historical_stats.json", "split.json"):
        assert (out / name).is_file()
    assert (out / "defects.csv").is_file()
    summary = json.loads((out / "split.json").read_text())
    assert summary["rows"]["train"] + summary["rows"]["val"] + summary["rows"]["test"] == 11_032 - 53
    assert "train" in result.output and "defects.csv" in result.output


def _nextbest_executable() -> Path:
    executable = Path(sys.executable).parent / "nextbest"
    if not executable.exists():
        pytest.fail(f"no nextbest console script next to {sys.executable}: run `make install` (pip install -e .)")
    return executable


@pytest.mark.parametrize("content", [b"", b"ID,Country\n1,USA\n", b"\x00\x01garbage"])
def test_cli_bad_file_one_line_no_traceback(tmp_path, content):
    data = tmp_path / "bad.csv"
    data.write_bytes(content)
    result = subprocess.run(
        [str(_nextbest_executable()), "crm", "prepare", "--out", str(tmp_path / "out"), "--data", str(data)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert lines[0].startswith("error:") and "bad.csv" in lines[0]
