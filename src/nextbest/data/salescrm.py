"""Loader of the SalesCRM funnel data (one row per lead), from its CSV or its XLSX form.

Both files hold the same 11,032 leads and give the same frame (:func:`load_salescrm`). Columns of the
frame (canonical snake_case names, see :data:`RAW_COLUMNS`):

- ``lead_id`` (int64), ``country``, ``education``, ``status``, ``stage`` (pandas ``string``, ``<NA>`` when
  empty; surrounding blanks stripped; ``status`` is one of :data:`STATUS_VALUES`);
- the funnel event dates :data:`DATE_COLUMNS` (``datetime64[ns]``, ``NaT`` when the event did not happen
  or its date is unusable);
- ``lead_date``: the earliest of the date columns of the row (``NaT`` when the row has no date at all).

Dates are read as ISO ``YYYY-MM-DD`` (CSV), datetime cells (XLSX), ``DD.MM.YYYY`` day-first, and
``MM-DD-YYYY`` month-first (day-first when the first part is above 12). Cells whose date is invalid or
implausible are set to missing and reported as a :class:`Defect`, never an error: out-of-range parts
(``2021-13-12``, ``20221-08-24``), the placeholder ``0000-00-00``, Excel serials outside Excel's range,
Excel error values (``#VALUE!``), dates before :data:`EARLIEST_VALID_DATE`, and dates after the latest
date seen in the event columns other than ``Last Contact`` (the autofill runs of ``Last Contact`` into
2023..2042). ``No`` in a date column means the event did not happen: missing, counted, not a defect.
Everything else that cannot be read raises :class:`DataError` naming the file, the row and the column.
"""

from __future__ import annotations

import csv
import io
import re
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path

import pandas as pd

from nextbest.data.paths import resolve_data_file
from nextbest.errors import DataError

DATASET = "salescrm"
DEFAULT_FILE = "SalesCRM - CRM.csv"
XLSX_SHEET = "CRM"

RAW_COLUMNS: dict[str, str] = {
    "ID": "lead_id",
    "Country": "country",
    "Education": "education",
    "First Contact": "first_contact",
    "Last Contact": "last_contact",
    "Status": "status",
    "Stage": "stage",
    "First Call": "first_call",
    "Signed up for a demo": "demo",
    "Filled in customer survey": "survey",
    "Did sign up to the platform": "signup",
    "Account Manager assigned": "manager",
    "Subscribed": "subscribed",
}
CANONICAL_TO_RAW: dict[str, str] = {canonical: raw for raw, canonical in RAW_COLUMNS.items()}
DATE_COLUMNS: tuple[str, ...] = (
    "first_contact",
    "last_contact",
    "first_call",
    "demo",
    "survey",
    "signup",
    "manager",
    "subscribed",
)
TEXT_COLUMNS: tuple[str, ...] = ("country", "education", "status", "stage")
STATUS_VALUES: tuple[str, ...] = ("1st message", "2nd message", "3rd message")
EARLIEST_VALID_DATE = pd.Timestamp("2015-01-01")
#: Date columns whose latest date bounds the plausible dates of ``last_contact``.
BOUNDING_DATE_COLUMNS: tuple[str, ...] = tuple(c for c in DATE_COLUMNS if c != "last_contact")
FRAME_COLUMNS: tuple[str, ...] = (*RAW_COLUMNS.values(), "lead_date")

_ISO = re.compile(r"^(\d{1,6})-(\d{1,2})-(\d{1,2})(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$")
_DOTTED = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4,6})$")
_SLASHED = re.compile(r"^(\d{1,2})[-/](\d{1,2})[-/](\d{4,6})$")
_EXCEL_ERROR = re.compile(r"^#(?:VALUE!|REF!|DIV/0!|NUM!|NAME\?|NULL!|N/A|SPILL!|CALC!)$")
_INTEGER = re.compile(r"^[+-]?\d+(?:\.0*)?$")
_SERIAL_WARNING = re.compile(
    r"Cell ([A-Z]+)(\d+) is marked as a date but the serial value (\S+?)\.? is outside the limits"
)
_NO_EVENT_WORDS = frozenset({"no"})


@dataclass
class Defect:
    """One cell repaired to missing: where it is (as a person sees the file), what it held, and why.

    ``row`` is 1-based in the file (CSV: the header is line 1; XLSX: the spreadsheet row number);
    ``column`` is the raw column name, followed for XLSX by the cell reference, e.g.
    ``"Did sign up to the platform (K355)"``.
    """

    file: str
    row: int
    column: str
    value: str
    reason: str

    def to_dict(self) -> dict[str, object]:
        """The defect as a plain dict (for JSON and CSV)."""
        return asdict(self)


@dataclass
class LoadedCRM:
    """The loaded leads, the cells repaired to missing, the file read, and counts of benign repairs."""

    frame: pd.DataFrame
    defects: list[Defect]
    source: Path
    counts: dict[str, int] = field(default_factory=dict)

    def defects_frame(self) -> pd.DataFrame:
        """The defects as a frame with columns file, row, column, value, reason (empty when none)."""
        columns = ["file", "row", "column", "value", "reason"]
        return pd.DataFrame([d.to_dict() for d in self.defects], columns=columns)


@dataclass
class _RawTable:
    """Cells as read from a file: header names, data rows, and their row numbers in the file."""

    path: Path
    header: list[str]
    rows: list[list[object]]
    row_numbers: list[int]
    cell_label: Callable[[str, int], str]
    serial_defects: dict[tuple[int, str], str] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)


class _Unreadable(Exception):
    """A cell that cannot be read as a date at all."""


# --------------------------------------------------------------------------------------------- public


def load_salescrm(path: str | Path | None = None) -> LoadedCRM:
    """Load the SalesCRM leads from a ``.csv`` or ``.xlsx`` file (default: the resolved shared CSV).

    Returns the validated frame (columns :data:`FRAME_COLUMNS`, one row per lead, file order) with the
    list of repaired cells. Raises DataError for an unusable file: empty, no rows, missing columns,
    bad or duplicated IDs, unreadable dates, unknown Status values, unsupported file type.
    """
    source = resolve_data_file(DATASET, DEFAULT_FILE, path)
    suffix = source.suffix.lower()
    if suffix == ".csv":
        table = _read_csv(source)
    elif suffix == ".xlsx":
        table = _read_xlsx(source)
    else:
        raise DataError(f"{source}: unsupported file type '{source.suffix}' (expected .csv or .xlsx)")
    return _build(table)


def lead_dates(frame: pd.DataFrame) -> pd.Series:
    """The earliest of the :data:`DATE_COLUMNS` of each row (NaT when the row has no date)."""
    return frame[list(DATE_COLUMNS)].min(axis=1, skipna=True).astype("datetime64[ns]")


# ------------------------------------------------------------------------------------------ readers


def _read_csv(path: Path) -> _RawTable:
    """Read a CSV file into a raw table; non-text files raise DataError.

    A record's row number is the file line where it ends (the header is line 1), which is the line a
    person sees unless a quoted field spans several lines.
    """
    text = _decode_text(path)
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        records = [(reader.line_num, record) for record in reader]
    except csv.Error as error:
        raise DataError(f"{path}: not a readable CSV file (line {reader.line_num}: {error})") from None
    if not records:
        raise DataError(f"{path}: empty file (no header, no rows)")
    header = [name.strip() for name in records[0][1]]
    table = _RawTable(path, header, [], [], lambda column, row: column)
    for line, record in records[1:]:
        table.rows.append(_fit_record(path, line, record, len(header)))
        table.row_numbers.append(line)
    return table


def _decode_text(path: Path) -> str:
    """The file's text (UTF-8, else cp1252); binary files and workbooks raise DataError."""
    data = path.read_bytes()
    if not data:
        raise DataError(f"{path}: empty file (0 bytes)")
    if data.startswith(b"PK\x03\x04"):
        raise DataError(f"{path}: this is a zip/Excel workbook, not a CSV text file (name it .xlsx)")
    if b"\x00" in data[:65536]:
        raise DataError(f"{path}: binary file, not a CSV text file")
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise DataError(f"{path}: not a text file (neither UTF-8 nor cp1252)")


def _fit_record(path: Path, line: int, record: list[str], width: int) -> list[object]:
    """Pad a short CSV record with empty cells; a record with extra non-empty cells raises DataError."""
    if len(record) > width and any(cell.strip() for cell in record[width:]):
        raise DataError(f"{path}: row {line} has {len(record)} fields but the header has {width}")
    return list(record[:width]) + [""] * (width - len(record))


def _read_xlsx(path: Path) -> _RawTable:
    """Read sheet ``CRM`` (else the first sheet) of a workbook; out-of-range date serials are recorded."""
    import openpyxl
    from openpyxl.utils import get_column_letter

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
            try:
                name = XLSX_SHEET if XLSX_SHEET in workbook.sheetnames else workbook.sheetnames[0]
                numbered = list(enumerate(workbook[name].iter_rows(values_only=True), start=1))
            finally:
                workbook.close()
    except Exception as error:  # zipfile, XML and openpyxl errors all mean "not a workbook we can read"
        raise DataError(f"{path}: not a readable Excel workbook ({type(error).__name__}: {error})") from None
    serials = _serial_warnings(caught)
    start = next((i for i, (_, row) in enumerate(numbered) if not _is_empty_row(row)), None)
    if start is None:
        raise DataError(f"{path}: empty workbook (sheet has no header, no rows)")
    header = ["" if cell is None else str(cell).strip() for cell in numbered[start][1]]
    letters = {name: get_column_letter(i + 1) for i, name in enumerate(header)}
    table = _RawTable(path, header, [], [], lambda column, row: f"{column} ({letters[column]}{row})")
    for number, row in numbered[start + 1 :]:
        table.rows.append(list(row[: len(header)]) + [None] * (len(header) - len(row)))
        table.row_numbers.append(number)
    table.serial_defects = {(row, _column_of(letters, letter)): value for (letter, row), value in serials.items()}
    return table


def _serial_warnings(caught: list[warnings.WarningMessage]) -> dict[tuple[str, int], str]:
    """Out-of-range date serials reported by openpyxl, by (column letter, row); other warnings re-issued."""
    serials: dict[tuple[str, int], str] = {}
    for message in caught:
        match = _SERIAL_WARNING.search(str(message.message))
        if match:
            serials[(match.group(1), int(match.group(2)))] = _clean_number(match.group(3))
        else:
            warnings.warn_explicit(message.message, message.category, message.filename, message.lineno)
    return serials


def _column_of(letters: dict[str, str], letter: str) -> str:
    """The header name of a column letter ('' when the letter lies outside the header)."""
    return next((name for name, known in letters.items() if known == letter), "")


def _clean_number(text: str) -> str:
    """'6691845.0' -> '6691845'."""
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else text


def _is_empty_row(row: tuple[object, ...]) -> bool:
    return all(cell is None or (isinstance(cell, str) and not cell.strip()) for cell in row)


# -------------------------------------------------------------------------------------- validation


def _build(table: _RawTable) -> LoadedCRM:
    """Validate a raw table and turn it into the canonical frame with its defects."""
    _drop_empty_rows(table)
    _check_header(table)
    if not table.rows:
        raise DataError(f"{table.path}: no rows (only a header)")
    position = {name: table.header.index(name) for name in RAW_COLUMNS}
    columns: dict[str, object] = {"lead_id": _read_ids(table, position["ID"])}
    for canonical in TEXT_COLUMNS:
        columns[canonical] = _read_text(table, position[CANONICAL_TO_RAW[canonical]])
    _check_status(table, columns["status"])
    defects: list[Defect] = []
    for canonical in DATE_COLUMNS:
        columns[canonical] = _read_dates(table, CANONICAL_TO_RAW[canonical], position, defects)
    frame = _assemble(columns)
    defects += _range_defects(frame, table)
    defects.sort(key=lambda d: (d.row, list(RAW_COLUMNS).index(d.column.split(" (")[0])))
    frame["lead_date"] = lead_dates(frame)
    return LoadedCRM(frame=frame, defects=defects, source=table.path, counts=dict(table.counts))


def _drop_empty_rows(table: _RawTable) -> None:
    kept = [(n, r) for n, r in zip(table.row_numbers, table.rows, strict=True) if not _is_empty_row(tuple(r))]
    dropped = len(table.rows) - len(kept)
    if dropped:
        table.counts["empty rows dropped"] += dropped
    table.row_numbers = [n for n, _ in kept]
    table.rows = [r for _, r in kept]


def _check_header(table: _RawTable) -> None:
    """All of :data:`RAW_COLUMNS` must be present, each once."""
    missing = [name for name in RAW_COLUMNS if name not in table.header]
    if missing:
        found = ", ".join(repr(n) for n in table.header[:15]) or "none"
        hint = " (is the separator a comma?)" if len(table.header) == 1 and re.search("[;\t|]", table.header[0]) else ""
        raise DataError(
            f"{table.path}: missing required column(s) {', '.join(repr(n) for n in missing)}; found: {found}{hint}"
        )
    doubled = [name for name in RAW_COLUMNS if table.header.count(name) > 1]
    if doubled:
        raise DataError(f"{table.path}: column(s) {', '.join(repr(n) for n in doubled)} appear more than once")


def _where(table: _RawTable, index: int, raw_column: str) -> str:
    """'<file>: row N, column C' for error messages."""
    row = table.row_numbers[index]
    return f"{table.path}: row {row}, column '{table.cell_label(raw_column, row)}'"


def _read_ids(table: _RawTable, position: int) -> list[int]:
    """Integer lead IDs; missing, non-integer or duplicated IDs raise DataError."""
    ids: list[int] = []
    first_row: dict[int, int] = {}
    for index, row in enumerate(table.rows):
        value = row[position]
        lead_id = _as_int(value)
        if lead_id is None:
            shown = "an empty ID" if value is None or str(value).strip() == "" else f"non-integer ID {value!r}"
            raise DataError(f"{_where(table, index, 'ID')}: {shown}")
        if lead_id in first_row:
            raise DataError(
                f"{_where(table, index, 'ID')}: duplicated ID {lead_id} (first seen on row {first_row[lead_id]})"
            )
        first_row[lead_id] = table.row_numbers[index]
        ids.append(lead_id)
    return ids


def _as_int(value: object) -> int | None:
    """An integer read from an int, an integral float or a string like '12' / '12.0', else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str) and _INTEGER.match(value.strip()):
        return int(float(value.strip())) if "." in value else int(value.strip())
    return None


def _read_text(table: _RawTable, position: int) -> list[str | None]:
    """Stripped text cells; empty cells become None."""
    values: list[str | None] = []
    for row in table.rows:
        value = row[position]
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        text = "" if value is None else str(value).strip()
        values.append(text or None)
    return values


def _check_status(table: _RawTable, statuses: list[str | None]) -> None:
    """Status must be empty or one of :data:`STATUS_VALUES` (case-insensitive; normalized in place)."""
    canonical = {value.lower(): value for value in STATUS_VALUES}
    for index, status in enumerate(statuses):
        if status is None:
            continue
        if status.lower() not in canonical:
            raise DataError(
                f"{_where(table, index, 'Status')}: unknown status {status!r} "
                f"(expected one of {', '.join(STATUS_VALUES)})"
            )
        statuses[index] = canonical[status.lower()]


# ------------------------------------------------------------------------------------------- dates


def _read_dates(
    table: _RawTable, raw_column: str, position: dict[str, int], defects: list[Defect]
) -> list[pd.Timestamp | None]:
    """Parse one date column; repairable cells become None plus a Defect, unreadable ones raise."""
    values: list[pd.Timestamp | None] = []
    for index, row in enumerate(table.rows):
        number = table.row_numbers[index]
        value = row[position[raw_column]]
        serial = table.serial_defects.get((number, raw_column))
        if serial is not None:
            defects.append(_defect(table, number, raw_column, serial, "date serial out of range"))
            values.append(None)
            continue
        try:
            parsed, reason, note = _parse_date(value)
        except _Unreadable:
            raise DataError(f"{_where(table, index, raw_column)}: cannot read {value!r} as a date") from None
        if reason is not None:
            defects.append(_defect(table, number, raw_column, _shown(value), reason))
        if note is not None:
            table.counts[f"{note} ({raw_column})"] += 1
        values.append(parsed)
    return values


def _defect(table: _RawTable, row: int, raw_column: str, value: str, reason: str) -> Defect:
    return Defect(table.path.name, row, table.cell_label(raw_column, row), value, reason)


def _shown(value: object) -> str:
    """A cell value as text for a defect report (dates as YYYY-MM-DD)."""
    if isinstance(value, datetime | date):
        return value.strftime("%Y-%m-%d")
    return str(value).strip()


def _parse_date(value: object) -> tuple[pd.Timestamp | None, str | None, str | None]:
    """Read one date cell: (date or None, defect reason or None, benign-repair note or None).

    Raises _Unreadable when the cell is not a date in any accepted shape.
    """
    if value is None:
        return None, None, None
    if isinstance(value, datetime | date):
        return pd.Timestamp(value).normalize(), None, None
    if isinstance(value, bool):
        raise _Unreadable
    if isinstance(value, int | float):
        return _from_serial(float(value))
    if not isinstance(value, str):
        raise _Unreadable
    return _parse_date_text(value.strip())


def _from_serial(serial: float) -> tuple[pd.Timestamp | None, str | None, str | None]:
    """An Excel day serial (1900 system) as a date; outside Excel's range it is a defect."""
    if not 1 <= serial < 2958466:  # 2958465 is 9999-12-31
        return None, "date serial out of range", None
    return (pd.Timestamp("1899-12-30") + pd.Timedelta(days=int(serial))), None, "Excel serial number read"


def _parse_date_text(text: str) -> tuple[pd.Timestamp | None, str | None, str | None]:
    if not text:
        return None, None, None
    if text.lower() in _NO_EVENT_WORDS:
        return None, None, f"'{text}' read as missing"
    if _EXCEL_ERROR.match(text.upper()):
        return None, "Excel error value", None
    if match := _ISO.match(text):
        year, month, day = (int(part) for part in match.groups())
        return (*_calendar_date(year, month, day), None)
    if match := _DOTTED.match(text):
        day, month, year = (int(part) for part in match.groups())
        return (*_calendar_date(year, month, day), "DD.MM.YYYY read day-first")
    if match := _SLASHED.match(text):
        first, second, year = (int(part) for part in match.groups())
        if first > 12:
            return (*_calendar_date(year, second, first), "DD-MM-YYYY read day-first")
        return (*_calendar_date(year, first, second), "MM-DD-YYYY read month-first")
    raise _Unreadable


def _calendar_date(year: int, month: int, day: int) -> tuple[pd.Timestamp | None, str | None]:
    """(date, None) for a real calendar date, else (None, reason)."""
    if year == month == day == 0:
        return None, "placeholder date (all zeros)"
    if not 1 <= year <= 9999:
        return None, f"year {year} out of range"
    if not 1 <= month <= 12:
        return None, f"month {month} out of range"
    try:
        return pd.Timestamp(datetime(year, month, day)), None
    except (ValueError, OverflowError):
        return None, f"day {day} out of range for {year}-{month:02d}"


def _assemble(columns: dict[str, object]) -> pd.DataFrame:
    """The canonical frame with its dtypes (int64, string, datetime64[ns])."""
    data: dict[str, object] = {"lead_id": pd.array(columns["lead_id"], dtype="int64")}
    for name in RAW_COLUMNS.values():
        if name in TEXT_COLUMNS:
            data[name] = pd.array(columns[name], dtype="string")
        elif name in DATE_COLUMNS:
            data[name] = pd.Series(columns[name], dtype="object").astype("datetime64[ns]")
    frame = pd.DataFrame(data)
    return frame[list(RAW_COLUMNS.values())]


def _range_defects(frame: pd.DataFrame, table: _RawTable) -> list[Defect]:
    """Set implausible dates to NaT in place and report them.

    Implausible: before :data:`EARLIEST_VALID_DATE`; in the :data:`BOUNDING_DATE_COLUMNS`, after today;
    in ``last_contact``, after the latest date of the bounding columns once those have been cleaned.
    """
    defects: list[Defect] = []
    earliest = f"before {EARLIEST_VALID_DATE.date()}"
    for column in BOUNDING_DATE_COLUMNS:
        defects += _flag(frame, table, column, frame[column] < EARLIEST_VALID_DATE, earliest)
        defects += _flag(frame, table, column, frame[column] > pd.Timestamp(date.today()), "in the future")
    latest = frame[list(BOUNDING_DATE_COLUMNS)].max().max()
    if pd.isna(latest):
        latest, reason = pd.Timestamp(date.today()), "in the future"
    else:
        reason = f"after the latest event date {latest.date()} of the other date columns"
    defects += _flag(frame, table, "last_contact", frame["last_contact"] < EARLIEST_VALID_DATE, earliest)
    defects += _flag(frame, table, "last_contact", frame["last_contact"] > latest, reason)
    return defects


def _flag(frame: pd.DataFrame, table: _RawTable, column: str, mask: pd.Series, reason: str) -> list[Defect]:
    """Report the cells of ``column`` selected by ``mask`` as defects and set them to NaT."""
    raw_column = CANONICAL_TO_RAW[column]
    position = table.header.index(raw_column)
    defects = [
        _defect(table, table.row_numbers[i], raw_column, _shown(table.rows[i][position]), reason)
        for i in mask[mask].index
    ]
    frame.loc[mask, column] = pd.NaT
    return defects
