"""The page-level RL log format -> the page table (one row per page), with every malformed row reported.

Format: UTF-8 text, ``;``-separated, a header line, one line per page shown in a session::

    session_id;page_id;hour;purchase_power;clicks;carts;favs;prices;purchases;done
    1042;1;21;6;[0,1,0,0];[0,0,0,0];[0,0,1,0];[12.5,3.0,8.99,40.0];[0,0,0,0];0

``clicks``, ``carts``, ``favs``, ``purchases`` are per-item 0/1 lists and ``prices`` the per-item prices, all of
the same length (the items on the page). Output columns (``PAGE_COLUMNS``, shared with the Taobao sessionizer):
``session_id, page_id, hour, purchase_power, engagement`` (clicks + add-to-carts), ``page_value`` (money spent
on the page: sum of price × purchase), ``reward`` (= page_value) and ``done`` (session ended after this page).

A line with the wrong number of fields, a value that does not parse, lists of different lengths or a value out
of range (hour 0-23, purchase power 0-10, flags 0/1, prices >= 0, page_id >= 1) is not used; it is counted and
reported with its line number and reason (``PageLogResult.malformed``), never silently skipped.
"""

from __future__ import annotations

import csv
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


def _list(text: str, name: str, cast: type) -> list:
    text = text.strip()
    if not (text.startswith("[") and text.endswith("]")):
        raise ValueError(f"{name} is not a [..] list")
    body = text[1:-1].strip()
    return [cast(item) for item in body.split(",")] if body else []


def parse_row(fields: list[str]) -> tuple:
    """One page from its fields; ValueError with the reason when the row is malformed."""
    if len(fields) != len(HEADER):
        raise ValueError(f"{len(fields)} fields, expected {len(HEADER)}")
    row = dict(zip(HEADER, fields))
    session = _int(row["session_id"], "session_id", 0)
    page = _int(row["page_id"], "page_id", 1)
    hour = _int(row["hour"], "hour", 0, 23)
    power = _int(row["purchase_power"], "purchase_power", 0, 10)
    done = _int(row["done"], "done", 0, 1)
    flags = {name: _list(row[name], name, int) for name in FLAG_LISTS}
    prices = _list(row["prices"], "prices", float)
    lengths = {len(values) for values in flags.values()} | {len(prices)}
    if len(lengths) != 1:
        raise ValueError(f"per-item lists of different lengths {sorted(lengths)}")
    if any(v not in (0, 1) for values in flags.values() for v in values):
        raise ValueError("a per-item flag is not 0 or 1")
    if any(not np.isfinite(p) or p < 0 for p in prices):
        raise ValueError("a price is negative or not finite")
    engagement = sum(flags["clicks"]) + sum(flags["carts"])
    value = float(sum(p * b for p, b in zip(prices, flags["purchases"])))
    return session, page, hour, power, engagement, value, value, done


def _lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        yield from enumerate(csv.reader(handle, delimiter=";"), start=1)


def read_page_log(path: str | Path) -> PageLogResult:
    """Parse a page-level RL log (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} not found")
    rows, malformed, count, lines = [], [], 0, 0
    try:
        for number, fields in _lines(path):
            lines = number
            if number == 1:
                if [f.strip() for f in fields] != HEADER:
                    raise DataError(f"{path}, line 1: header must be {';'.join(HEADER)}")
                continue
            try:
                rows.append(parse_row(fields))
            except ValueError as error:
                count += 1
                if len(malformed) < MAX_REPORTED:
                    malformed.append((number, str(error)))
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error})") from error
    pages = pd.DataFrame(rows, columns=PAGE_COLUMNS).astype(
        {"session_id": np.int64, "page_id": np.int32, "hour": np.int8, "purchase_power": np.int8,
         "engagement": np.int32, "page_value": np.float64, "reward": np.float64, "done": np.int8}
    )  # fmt: skip
    return PageLogResult(pages, lines, count, malformed)


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
