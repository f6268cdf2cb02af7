"""Loader of a CRM export (one row per lead) that a funnel spec describes, from its CSV or its XLSX form.

:func:`load_export` reads any export a :class:`~nextbest.data.funnel_spec.FunnelSpec` describes;
:func:`load_salescrm` is the SalesCRM export (the shared file by default) read with SalesCRM's shipped spec.
Both SalesCRM files hold the same 11,032 leads and give the same frame. The export's raw column names are
renamed with the spec's ``[export.rename]`` (a column not named there keeps its name); every column the spec
reads must be present. Columns of the frame:

- the id column (int64, unique; SalesCRM: ``lead_id``);
- the text columns (``spec.text_columns()``: covariates, status and value columns, the drop-out column;
  pandas ``string``, ``<NA>`` when empty, surrounding blanks stripped). A status column (a step reached by
  ``{status = COLUMN, levels = ...}``) holds one of its levels' values, matched case-insensitively and
  spelled as the spec spells it (SalesCRM: ``status`` is one of :data:`STATUS_VALUES`); a value column's
  values are spelled as the spec spells them when they match case-insensitively;
- the date columns ``spec.date_columns()`` (``datetime64[ns]``, ``NaT`` when the event did not happen or its
  date is unusable; SalesCRM: :data:`DATE_COLUMNS`);
- ``lead_date``: the earliest of the date columns of the row (``NaT`` when the row has no date at all).

The id column comes first, then the columns the spec reads in the order of the export's header (SalesCRM:
:data:`FRAME_COLUMNS`). Other columns of the export are ignored.

Dates are read with the spec's ``date_format`` (a strftime format) when it has one, else as ISO
``YYYY-MM-DD`` (CSV), ``DD.MM.YYYY`` day-first, and ``MM-DD-YYYY`` month-first (day-first when the first part
is above 12); datetime cells and Excel serials (XLSX) either way. Cells whose date is invalid or implausible
are set to missing and reported as a :class:`Defect`, never an error: out-of-range parts (``2021-13-12``,
``31/02/2024``, ``20221-08-24``), the placeholder ``0000-00-00``, Excel serials outside Excel's range, Excel
error values (``#VALUE!``), dates before :data:`EARLIEST_VALID_DATE`, dates in the future, and in the spec's
``autofilled_dates`` (SalesCRM: ``Last Contact``, autofilled into 2023..2042) dates after the latest date of
the other date columns. ``No`` in a date column means the event did not happen: missing, counted, not a
defect. Everything else that cannot be read raises :class:`DataError` naming the file, the row and the raw
column as the file shows it.
"""

from __future__ import annotations

import csv
import functools
import io
import re
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import openpyxl
import pandas as pd
from openpyxl.utils import get_column_letter

from nextbest.data.funnel_spec import FunnelSpec, default_funnel_spec
from nextbest.data.paths import resolve_data_file
from nextbest.errors import DataError

DATASET = "salescrm"
DEFAULT_FILE = "SalesCRM - CRM.csv"
XLSX_SHEET = "CRM"


def _status_levels(spec: FunnelSpec) -> dict[str, dict[str, int]]:
    """The status columns of a spec and the values of each, ordered by level (the steps' ``levels``)."""
    levels: dict[str, dict[str, int]] = {}
    for step in spec.steps:
        if "status" in step.reached:
            levels.setdefault(step.reached["status"], {}).update(step.reached["levels"])
    return {column: dict(sorted(values.items(), key=lambda item: item[1])) for column, values in levels.items()}


def _value_spellings(spec: FunnelSpec) -> dict[str, list[str]]:
    """The value columns of a spec (steps reached by ``{column = COLUMN, values}``) and the values named."""
    values: dict[str, list[str]] = {}
    for step in spec.steps:
        if "column" in step.reached:
            values.setdefault(step.reached["column"], []).extend(str(v) for v in step.reached["values"])
    return values


SALESCRM_SPEC: FunnelSpec = default_funnel_spec()
#: SalesCRM's raw column names (as the file shows them) and their canonical names, in the file's order.
RAW_COLUMNS: dict[str, str] = dict(SALESCRM_SPEC.export.rename)
CANONICAL_TO_RAW: dict[str, str] = {canonical: raw for raw, canonical in RAW_COLUMNS.items()}
DATE_COLUMNS: tuple[str, ...] = tuple(SALESCRM_SPEC.date_columns())
TEXT_COLUMNS: tuple[str, ...] = tuple(SALESCRM_SPEC.text_columns())
STATUS_VALUES: tuple[str, ...] = tuple(_status_levels(SALESCRM_SPEC)["status"])
EARLIEST_VALID_DATE = pd.Timestamp("2015-01-01")
#: Date columns whose latest date bounds the plausible dates of ``last_contact``.
BOUNDING_DATE_COLUMNS: tuple[str, ...] = tuple(
    c for c in DATE_COLUMNS if c not in SALESCRM_SPEC.export.autofilled_dates
)
FRAME_COLUMNS: tuple[str, ...] = (*RAW_COLUMNS.values(), "lead_date")
#: Years a datetime64[ns] column can hold (pandas' range, 1677-09-21 .. 2262-04-11, in whole years).
_REPRESENTABLE_YEARS = range(pd.Timestamp.min.year + 1, pd.Timestamp.max.year)

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


def load_export(path: str | Path, spec: FunnelSpec) -> LoadedCRM:
    """Load the leads of a ``.csv`` or ``.xlsx`` export that ``spec`` describes (see the module doc).

    Returns the validated frame (one row per lead, file order) with the list of repaired cells. Raises
    DataError for an unusable file: not found, empty, no rows, missing columns, bad or duplicated IDs,
    unreadable dates, unknown status values, unsupported file type.
    """
    source = Path(path).expanduser()
    if not source.is_file():
        raise DataError(f"{source}: {'is a folder, not a file' if source.is_dir() else 'does not exist'}")
    suffix = source.suffix.lower()
    if suffix == ".csv":
        table = _read_csv(source)
    elif suffix == ".xlsx":
        table = _read_xlsx(source)
    else:
        raise DataError(f"{source}: unsupported file type '{source.suffix}' (expected .csv or .xlsx)")
    return _build(table, spec)


def load_salescrm(path: str | Path | None = None) -> LoadedCRM:
    """Load the SalesCRM leads from a ``.csv`` or ``.xlsx`` file (default: the resolved shared CSV).

    :func:`load_export` with SalesCRM's shipped spec; the frame's columns are :data:`FRAME_COLUMNS`.
    """
    loaded = load_export(resolve_data_file(DATASET, DEFAULT_FILE, path), SALESCRM_SPEC)
    if list(loaded.frame.columns) != list(FRAME_COLUMNS):
        loaded.frame = loaded.frame[list(FRAME_COLUMNS)]
    return loaded


def lead_dates(frame: pd.DataFrame, spec: FunnelSpec | None = None) -> pd.Series:
    """The earliest of the date columns (default: SalesCRM's :data:`DATE_COLUMNS`) of each row (NaT when none)."""
    columns = list(DATE_COLUMNS) if spec is None else spec.date_columns()
    return frame[columns].min(axis=1, skipna=True).astype("datetime64[ns]")


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


@dataclass
class _Layout:
    """Where the spec's columns are in the export: canonical name -> raw header name, and the frame's order."""

    raw: dict[str, str]
    position: dict[str, int]
    order: list[str]
    rank: dict[str, int]


def _build(table: _RawTable, spec: FunnelSpec) -> LoadedCRM:
    """Validate a raw table and turn it into the canonical frame with its defects."""
    _drop_empty_rows(table)
    layout = _layout(table, spec)
    if not table.rows:
        raise DataError(f"{table.path}: no rows (only a header)")
    id_column = spec.export.id
    columns: dict[str, list[object]] = {id_column: _read_ids(table, layout.position[id_column], layout.raw[id_column])}
    for canonical in spec.text_columns():
        columns[canonical] = _read_text(table, layout.position[canonical])
    for canonical, levels in _status_levels(spec).items():
        _check_status(table, layout.raw[canonical], columns[canonical], list(levels))
    for canonical, values in _value_spellings(spec).items():
        _respell(columns[canonical], values)
    defects: list[tuple[str, Defect]] = []
    for canonical in spec.date_columns():
        raw_column, position = layout.raw[canonical], layout.position[canonical]
        columns[canonical] = _read_dates(table, raw_column, position, defects, spec.export.date_format)
    frame = _assemble(columns, layout.order, id_column, set(spec.date_columns()))
    defects += _range_defects(frame, table, layout, spec)
    defects.sort(key=lambda item: (item[1].row, layout.rank[item[0]]))
    frame["lead_date"] = lead_dates(frame, spec)
    return LoadedCRM(frame=frame, defects=[d for _, d in defects], source=table.path, counts=dict(table.counts))


def _drop_empty_rows(table: _RawTable) -> None:
    kept = [(n, r) for n, r in zip(table.row_numbers, table.rows, strict=True) if not _is_empty_row(tuple(r))]
    dropped = len(table.rows) - len(kept)
    if dropped:
        table.counts["empty rows dropped"] += dropped
    table.row_numbers = [n for n, _ in kept]
    table.rows = [r for _, r in kept]


def _layout(table: _RawTable, spec: FunnelSpec) -> _Layout:
    """Find every column the spec reads (the id, its columns, its dates), each once; DataError naming the missing.

    A canonical column is found under a raw name that ``[export.rename]`` maps to it, or under its own name
    when the rename does not use that name for another column.
    """
    rename = spec.export.rename
    order_of_rename = {name: i for i, name in enumerate(rename)}
    required = list(dict.fromkeys([spec.export.id, *spec.columns(), *spec.date_columns()]))
    raw: dict[str, str] = {}
    missing: list[str] = []
    for canonical in required:
        candidates = [name for name, target in rename.items() if target == canonical]
        if canonical not in rename and canonical not in candidates:
            candidates.append(canonical)
        present = [name for name in candidates if name in table.header]
        if len(present) > 1:
            shown = " and ".join(repr(n) for n in present)
            raise DataError(f"{table.path}: columns {shown} both hold '{canonical}'; keep one")
        if present:
            raw[canonical] = present[0]
        else:
            missing.append(candidates[0] if candidates else canonical)
    if missing:
        missing.sort(key=lambda name: order_of_rename.get(name, len(rename)))
        found = ", ".join(repr(n) for n in table.header[:15]) or "none"
        hint = " (is the separator a comma?)" if len(table.header) == 1 and re.search("[;\t|]", table.header[0]) else ""
        raise DataError(
            f"{table.path}: missing required column(s) {', '.join(repr(n) for n in missing)}; found: {found}{hint}"
        )
    rank = {name: order_of_rename.get(name, len(rename) + table.header.index(name)) for name in raw.values()}
    doubled = sorted((name for name in raw.values() if table.header.count(name) > 1), key=rank.__getitem__)
    if doubled:
        raise DataError(f"{table.path}: column(s) {', '.join(repr(n) for n in doubled)} appear more than once")
    canonical_of = {name: canonical for canonical, name in raw.items()}
    read = [canonical_of[name] for name in table.header if name in canonical_of]
    order = [spec.export.id, *(c for c in read if c != spec.export.id)]
    position = {canonical: table.header.index(name) for canonical, name in raw.items()}
    return _Layout(raw, position, order, rank)


def _where(table: _RawTable, index: int, raw_column: str) -> str:
    """'<file>: row N, column C' for error messages."""
    row = table.row_numbers[index]
    return f"{table.path}: row {row}, column '{table.cell_label(raw_column, row)}'"


def _read_ids(table: _RawTable, position: int, raw_column: str) -> list[int]:
    """Integer lead IDs; missing, non-integer or duplicated IDs raise DataError."""
    ids: list[int] = []
    first_row: dict[int, int] = {}
    for index, row in enumerate(table.rows):
        value = row[position]
        lead_id = _as_int(value)
        if lead_id is None:
            shown = "an empty ID" if value is None or str(value).strip() == "" else f"non-integer ID {value!r}"
            raise DataError(f"{_where(table, index, raw_column)}: {shown}")
        if lead_id in first_row:
            raise DataError(
                f"{_where(table, index, raw_column)}: duplicated ID {lead_id} (first seen on row {first_row[lead_id]})"
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


def _check_status(table: _RawTable, raw_column: str, statuses: list[str | None], allowed: list[str]) -> None:
    """A status must be empty or one of ``allowed`` (case-insensitive; normalized in place to its spelling)."""
    canonical = {value.lower(): value for value in allowed}
    for index, status in enumerate(statuses):
        if status is None:
            continue
        if status.lower() not in canonical:
            raise DataError(
                f"{_where(table, index, raw_column)}: unknown status {status!r} (expected one of {', '.join(allowed)})"
            )
        statuses[index] = canonical[status.lower()]


def _respell(cells: list[str | None], values: list[str]) -> None:
    """Values matching one of ``values`` case-insensitively take its spelling (in place); others are kept."""
    spelling = {value.lower(): value for value in values}
    for index, cell in enumerate(cells):
        if cell is not None:
            cells[index] = spelling.get(cell.lower(), cell)


# ------------------------------------------------------------------------------------------- dates


def _read_dates(
    table: _RawTable,
    raw_column: str,
    position: int,
    defects: list[tuple[str, Defect]],
    date_format: str | None = None,
) -> list[pd.Timestamp | None]:
    """Parse one date column; repairable cells become None plus a Defect, unreadable ones raise."""
    values: list[pd.Timestamp | None] = []
    for index, row in enumerate(table.rows):
        number = table.row_numbers[index]
        value = row[position]
        serial = table.serial_defects.get((number, raw_column))
        if serial is not None:
            defects.append((raw_column, _defect(table, number, raw_column, serial, "date serial out of range")))
            values.append(None)
            continue
        try:
            parsed, reason, note = _parse_date(value, date_format)
        except _Unreadable:
            expected = f" (expected the format {date_format})" if date_format else ""
            raise DataError(f"{_where(table, index, raw_column)}: cannot read {value!r} as a date{expected}") from None
        if reason is not None:
            defects.append((raw_column, _defect(table, number, raw_column, _shown(value), reason)))
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


def _parse_date(value: object, date_format: str | None = None) -> tuple[pd.Timestamp | None, str | None, str | None]:
    """Read one date cell: (date or None, defect reason or None, benign-repair note or None).

    Text is read with ``date_format`` when given, else in the shapes the module doc lists. Raises
    _Unreadable when the cell is not a date in any accepted shape.
    """
    parsed, reason, note = _parse_any_date(value, date_format)
    if parsed is not None and parsed.year not in _REPRESENTABLE_YEARS:
        return None, f"year {parsed.year} out of range", None
    return parsed, reason, note


def _parse_any_date(value: object, date_format: str | None) -> tuple[pd.Timestamp | None, str | None, str | None]:
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
    return _parse_date_text(value.strip(), date_format)


def _from_serial(serial: float) -> tuple[pd.Timestamp | None, str | None, str | None]:
    """An Excel day serial (1900 system) as a date; outside Excel's range it is a defect."""
    if not 1 <= serial < 2958466:  # 2958465 is 9999-12-31
        return None, "date serial out of range", None
    day = datetime(1899, 12, 30) + timedelta(days=int(serial))
    return pd.Timestamp(day), None, "Excel serial number read"


def _parse_date_text(text: str, date_format: str | None = None) -> tuple[pd.Timestamp | None, str | None, str | None]:
    if not text:
        return None, None, None
    if text.lower() in _NO_EVENT_WORDS:
        return None, None, f"'{text}' read as missing"
    if _EXCEL_ERROR.match(text.upper()):
        return None, "Excel error value", None
    if date_format is not None:
        return (*_parse_formatted(text, date_format), None)
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


def _parse_formatted(text: str, date_format: str) -> tuple[pd.Timestamp | None, str | None]:
    """A date in the strftime ``date_format``; text of the format's shape that is no real date is a defect."""
    try:
        return pd.Timestamp(datetime.strptime(text, date_format)).normalize(), None
    except ValueError:
        pass
    match = _format_shape(date_format).match(text)
    if match is None:
        raise _Unreadable
    parts = match.groupdict()
    year = int(parts["Y"]) if parts.get("Y") else None
    if parts.get("y"):
        short = int(parts["y"])
        year = short + (2000 if short < 69 else 1900)  # strptime's pivot
    if year is not None and parts.get("m") and parts.get("d"):
        parsed, reason = _calendar_date(year, int(parts["m"]), int(parts["d"]))
        if reason is not None:
            return parsed, reason
    return None, f"not a date in the format {date_format}"


_FORMAT_FIELDS = {"d": r"(?P<d>\d{1,2})", "m": r"(?P<m>\d{1,2})", "Y": r"(?P<Y>\d{1,6})", "y": r"(?P<y>\d{2})"}
_FORMAT_OTHERS = {"H": r"\d{1,2}", "I": r"\d{1,2}", "M": r"\d{1,2}", "S": r"\d{1,2}", "f": r"\d{1,6}",
                  "j": r"\d{1,3}", "p": "[AaPp][Mm]", "z": r"(?:Z|[+-]\d{2}:?\d{2})", "%": "%"}  # fmt: skip


@functools.lru_cache(maxsize=16)
def _format_shape(date_format: str) -> re.Pattern[str]:
    """A regex of the text a strftime format writes, any numbers in its fields (day, month, year captured)."""
    pattern: list[str] = []
    seen: set[str] = set()
    i = 0
    while i < len(date_format):
        char = date_format[i]
        if char == "%" and i + 1 < len(date_format):
            directive = date_format[i + 1]
            if directive in _FORMAT_FIELDS:
                pattern.append(_FORMAT_FIELDS[directive] if directive not in seen else r"\d{1,6}")
                seen.add(directive)
            else:
                pattern.append(_FORMAT_OTHERS.get(directive, r"[^\W\d_]+" if directive in "aAbB" else ".+?"))
            i += 2
        else:
            pattern.append(r"\s+" if char.isspace() else re.escape(char))
            i += 1
    return re.compile("^" + "".join(pattern) + "$")


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


def _assemble(columns: dict[str, list[object]], order: list[str], id_column: str, dates: set[str]) -> pd.DataFrame:
    """The canonical frame in ``order`` with its dtypes (int64 id, datetime64[ns] dates, string text)."""
    data: dict[str, object] = {}
    for name in order:
        if name == id_column:
            data[name] = pd.array(columns[name], dtype="int64")
        elif name in dates:
            data[name] = pd.Series(columns[name], dtype="object").astype("datetime64[ns]")
        else:
            data[name] = pd.array(columns[name], dtype="string")
    return pd.DataFrame(data)[order]


def _range_defects(
    frame: pd.DataFrame, table: _RawTable, layout: _Layout, spec: FunnelSpec
) -> list[tuple[str, Defect]]:
    """Set implausible dates to NaT in place and report them.

    Implausible: before :data:`EARLIEST_VALID_DATE`; in the bounding date columns (all but the spec's
    ``autofilled_dates``), after today; in an autofilled column, after the latest date of the bounding
    columns once those have been cleaned (SalesCRM: ``last_contact``).
    """
    dates = spec.date_columns()
    autofilled = [column for column in spec.export.autofilled_dates if column in dates]
    bounding = [column for column in dates if column not in autofilled]
    defects: list[tuple[str, Defect]] = []
    earliest = f"before {EARLIEST_VALID_DATE.date()}"
    for column in bounding:
        defects += _flag(frame, table, layout, column, frame[column] < EARLIEST_VALID_DATE, earliest)
        defects += _flag(frame, table, layout, column, frame[column] > pd.Timestamp(date.today()), "in the future")
    latest = frame[bounding].max().max() if bounding else pd.NaT
    if pd.isna(latest):
        latest, reason = pd.Timestamp(date.today()), "in the future"
    else:
        reason = f"after the latest event date {latest.date()} of the other date columns"
    for column in autofilled:
        defects += _flag(frame, table, layout, column, frame[column] < EARLIEST_VALID_DATE, earliest)
        defects += _flag(frame, table, layout, column, frame[column] > latest, reason)
    return defects


def _flag(
    frame: pd.DataFrame, table: _RawTable, layout: _Layout, column: str, mask: pd.Series, reason: str
) -> list[tuple[str, Defect]]:
    """Report the cells of ``column`` selected by ``mask`` as defects and set them to NaT."""
    raw_column = layout.raw[column]
    position = layout.position[column]
    defects = [
        (raw_column, _defect(table, table.row_numbers[i], raw_column, _shown(table.rows[i][position]), reason))
        for i in mask[mask].index
    ]
    frame.loc[mask, column] = pd.NaT
    return defects
