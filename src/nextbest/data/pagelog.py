"""Page-level session logs -> the page table (one row per page), with every malformed row reported.

A log is delimited text, one line per page shown in a session. Teams keep such logs in their own layout, so the
reader takes a ``PageLogLayout``: the separator, whether a header line is checked, how many rows to skip first,
the column (position, or name when there is a header) of each field, and the separator inside per-item lists.
Two layouts are named (``LAYOUTS``); a JSON file with the same keys describes any other.

``nextbest`` (our own format, the default)::

    session_id;page_id;hour;purchase_power;clicks;carts;favs;prices;purchases;done
    1042;1;21;6;[0,1,0,0];[0,0,0,0];[0,0,1,0];[12.5,3.0,8.99,40.0];[0,0,0,0];0

``session-retention`` (the layout of the session-retention project this use case comes from): ``;``-separated,
no header, the first row skipped; page id in column 0, hour 1, purchase power 4, per-item click / cart /
favourite flags in 9 / 10 / 11 and per-item page values in 12 as comma-separated lists, churn flag in 14. It has
no session column: a session is the run of pages up to and including one whose churn flag is 1.

Per-item lists may carry brackets or not. ``clicks``, ``carts``, ``favs`` (and ``purchases``) are 0/1 flags per
item; the page's value is the sum of ``values`` when the layout has them, else of price × purchase. Output columns
(``PAGE_COLUMNS``, shared with the Taobao sessionizer): ``session_id, page_id, hour, purchase_power, engagement``
(clicks + add-to-carts), ``page_value``, ``reward`` (= page_value) and ``done`` (session ended after this page).

A line with too few fields, a value that does not parse, lists of different lengths or a value out of range
(hour 0-23, purchase power 0-10, flags 0/1, prices and values >= 0, page_id >= 1 in our format, >= 0 otherwise)
is not used; it is counted and reported with its line number and reason (``PageLogResult.malformed``), never
silently skipped.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from nextbest.data.taobao import PAGE_COLUMNS
from nextbest.errors import DataError

HEADER = ["session_id", "page_id", "hour", "purchase_power", "clicks", "carts", "favs", "prices", "purchases", "done"]
FLAG_LISTS = ("clicks", "carts", "favs", "purchases")
MAX_REPORTED = 50
REQUIRED = ("page_id", "hour", "purchase_power", "clicks", "carts", "favs", "done")


@dataclass(frozen=True)
class PageLogLayout:
    """Where each field of a page is in a delimited log line (see the module docstring).

    ``columns`` maps a field (``session_id``, ``page_id``, ``hour``, ``purchase_power``, ``clicks``, ``carts``,
    ``favs``, ``prices``, ``purchases``, ``values``, ``done``) to a 0-based column position, or to a header name when
    ``header`` is true. Without ``session_id``, sessions are runs of pages ending with ``done`` = 1. The page value is
    the sum of ``values`` when given, else of ``prices`` × ``purchases``.
    """

    name: str
    columns: dict[str, int | str]
    separator: str = ";"
    header: bool = False
    skip_rows: int = 0
    list_separator: str = ","
    min_page_id: int = 0

    FIELDS = (*HEADER, "values")

    def __post_init__(self) -> None:
        unknown = sorted(set(self.columns) - set(self.FIELDS))
        missing = [name for name in REQUIRED if name not in self.columns]
        if unknown or missing:
            raise DataError(f"page-log layout {self.name!r}: unknown fields {unknown}, missing fields {missing}")
        if "values" not in self.columns and not {"prices", "purchases"} <= set(self.columns):
            raise DataError(f"page-log layout {self.name!r}: give 'values', or 'prices' and 'purchases'")
        if not self.header and not all(isinstance(c, int) and c >= 0 for c in self.columns.values()):
            raise DataError(f"page-log layout {self.name!r}: without a header, columns are 0-based positions")
        if len(self.separator) != 1 or not self.list_separator or self.skip_rows < 0:
            raise DataError(f"page-log layout {self.name!r}: one-character separator and skip_rows >= 0 needed")

    @classmethod
    def from_json(cls, path: str | Path) -> PageLogLayout:
        """A layout from a JSON file with the dataclass's keys (``name`` defaults to the file's stem)."""

        path = Path(path)
        try:
            payload = json.loads(path.read_text())
            return cls(**{"name": path.stem, **payload})
        except (OSError, ValueError, TypeError) as error:
            raise DataError(f"{path}: not a page-log layout ({error})") from error


LAYOUTS = {
    "nextbest": PageLogLayout("nextbest", {name: name for name in HEADER}, header=True, min_page_id=1),
    "session-retention": PageLogLayout(
        "session-retention",
        {"page_id": 0, "hour": 1, "purchase_power": 4, "clicks": 9, "carts": 10, "favs": 11, "values": 12, "done": 14},
        skip_rows=1,
    ),
}


def layout_named(layout: str | PageLogLayout) -> PageLogLayout:
    """A layout given by name (``LAYOUTS``), by a JSON file's path, or as is."""
    if isinstance(layout, PageLogLayout):
        return layout
    if layout in LAYOUTS:
        return LAYOUTS[layout]
    if Path(layout).suffix == ".json":
        return PageLogLayout.from_json(layout)
    raise DataError(f"unknown page-log layout {layout!r}: choose {', '.join(LAYOUTS)} or give a layout JSON file")


@dataclass
class PageLogResult:
    """The page table and what was wrong with the rest: ``malformed`` holds up to 50 (line, reason) pairs."""

    pages: pd.DataFrame
    lines: int
    malformed_rows: int
    malformed: list[tuple[int, str]] = field(default_factory=list)

    def summary(self) -> dict:
        return {"lines": self.lines, "pages": len(self.pages), "malformed_rows": self.malformed_rows,
                "malformed": [{"line": line, "reason": why} for line, why in self.malformed]}  # fmt: skip


def _int(text: str, name: str, low: int, high: int | None = None) -> int:
    value = int(text)
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} {value} outside [{low}, {high if high is not None else '∞'}]")
    return value


def _list(text: str, name: str, cast: type, separator: str) -> list:
    text = text.strip()
    if text.startswith("[") != text.endswith("]"):
        raise ValueError(f"{name} has an unbalanced bracket")
    body = text[1:-1].strip() if text.startswith("[") else text
    return [cast(item) for item in body.split(separator)] if body else []


def parse_row(fields: list[str], layout: PageLogLayout | None = None, positions: dict[str, int] | None = None) -> tuple:
    """One page from its fields as ``(session_id or None, page_id, hour, power, engagement, value, value, done)``;
    ValueError with the reason when the row is malformed."""
    layout = layout or LAYOUTS["nextbest"]
    positions = positions or {name: column for name, column in layout.columns.items() if isinstance(column, int)}
    if len(fields) <= max(positions.values()):
        raise ValueError(f"{len(fields)} fields, expected at least {max(positions.values()) + 1}")
    row = {name: fields[column] for name, column in positions.items()}
    session = _int(row["session_id"], "session_id", 0) if "session_id" in row else None
    page = _int(row["page_id"], "page_id", layout.min_page_id)
    hour = _int(row["hour"], "hour", 0, 23)
    power = _int(row["purchase_power"], "purchase_power", 0, 10)
    done = _int(row["done"], "done", 0, 1)
    flags = {name: _list(row[name], name, int, layout.list_separator) for name in FLAG_LISTS if name in row}
    amounts = {name: _list(row[name], name, float, layout.list_separator)
               for name in ("prices", "values") if name in row}  # fmt: skip
    lengths = {len(values) for values in (*flags.values(), *amounts.values())}
    if len(lengths) != 1:
        raise ValueError(f"per-item lists of different lengths {sorted(lengths)}")
    if any(v not in (0, 1) for values in flags.values() for v in values):
        raise ValueError("a per-item flag is not 0 or 1")
    if any(not np.isfinite(p) or p < 0 for values in amounts.values() for p in values):
        raise ValueError("a price or value is negative or not finite")
    engagement = sum(flags["clicks"]) + sum(flags["carts"])
    if "values" in amounts:
        value = float(sum(amounts["values"]))
    else:
        value = float(sum(p * b for p, b in zip(amounts["prices"], flags["purchases"])))
    return session, page, hour, power, engagement, value, value, done


def _lines(path: Path, separator: str) -> Iterator[tuple[int, list[str]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        yield from enumerate(csv.reader(handle, delimiter=separator), start=1)


def _positions(layout: PageLogLayout, header: list[str], path: Path) -> dict[str, int]:
    """Column positions of the layout's fields, found by name in ``header``."""
    names = [cell.strip() for cell in header]
    if layout.name == "nextbest" and names != HEADER:
        raise DataError(f"{path}, line {layout.skip_rows + 1}: header must be {';'.join(HEADER)}")
    missing = [str(column) for column in layout.columns.values() if str(column) not in names]
    if missing:
        raise DataError(f"{path}, line {layout.skip_rows + 1}: header lacks the columns {missing}")
    return {name: names.index(str(column)) for name, column in layout.columns.items()}


def read_page_log(path: str | Path, layout: str | PageLogLayout = "nextbest") -> PageLogResult:
    """Parse a page log written in ``layout`` (a name of ``LAYOUTS``, a layout JSON file, or a PageLogLayout)."""
    path = Path(path)
    layout = layout_named(layout)
    if not path.is_file():
        raise DataError(f"{path} not found")
    rows, malformed, count, lines = [], [], 0, 0
    positions = None if layout.header else dict(layout.columns)
    try:
        for number, fields in _lines(path, layout.separator):
            lines = number
            if number <= layout.skip_rows:
                continue
            if positions is None:
                positions = _positions(layout, fields, path)
                continue
            try:
                rows.append(parse_row(fields, layout, positions))
            except ValueError as error:
                count += 1
                if len(malformed) < MAX_REPORTED:
                    malformed.append((number, str(error)))
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error})") from error
    if "session_id" not in layout.columns:
        rows = _sessions_from_churn(rows)
    pages = pd.DataFrame(rows, columns=PAGE_COLUMNS).astype(
        {"session_id": np.int64, "page_id": np.int32, "hour": np.int8, "purchase_power": np.int8,
         "engagement": np.int32, "page_value": np.float64, "reward": np.float64, "done": np.int8}
    )  # fmt: skip
    return PageLogResult(pages, lines, count, malformed)


def _sessions_from_churn(rows: list[tuple]) -> list[tuple]:
    """Number sessions 0, 1, ... as runs of consecutive pages, each ending at a page whose done flag is 1."""
    numbered, session = [], 0
    for row in rows:
        numbered.append((session, *row[1:]))
        session += row[-1]
    return numbered


def write_page_log(path: str | Path, pages: list[dict]) -> Path:
    """Write pages (dicts with the ``HEADER`` keys; list values as Python lists) in the RL log format."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        handle.write(";".join(HEADER) + "\n")
        for page in pages:
            cells = [("[" + ",".join(f"{v:g}" for v in page[k]) + "]") if isinstance(page[k], list) else str(page[k])
                     for k in HEADER]  # fmt: skip
            handle.write(";".join(cells) + "\n")
    return path
