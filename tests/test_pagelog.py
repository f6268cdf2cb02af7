"""The page-level RL log parser: good rows become pages, every malformed row is reported with its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from nextbest.data.pagelog import HEADER, read_page_log, write_page_log
from nextbest.data.taobao import PAGE_COLUMNS
from nextbest.errors import DataError

GOOD = {"session_id": 1042, "page_id": 1, "hour": 21, "purchase_power": 6, "clicks": [0, 1, 0, 1],
        "carts": [0, 0, 1, 0], "favs": [0, 0, 1, 0], "prices": [12.5, 3.0, 8.99, 40.0],
        "purchases": [0, 0, 1, 1], "done": 0}  # fmt: skip


def test_good_rows_become_pages(tmp_path: Path) -> None:
    last = {**GOOD, "page_id": 2, "purchases": [0, 0, 0, 0], "done": 1}
    result = read_page_log(write_page_log(tmp_path / "log.csv", [GOOD, last]))
    assert result.malformed_rows == 0 and list(result.pages.columns) == PAGE_COLUMNS
    first = result.pages.iloc[0]
    assert (first.engagement, first.page_value, first.reward) == (3, pytest.approx(48.99), pytest.approx(48.99))
    assert result.pages.done.tolist() == [0, 1] and result.pages.page_id.tolist() == [1, 2]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("1042;1;21;6;[0,1];[0,0];[0,0];[1.0,2.0];[0,0]", "9 fields"),
        ("1042;1;25;6;[0];[0];[0];[1.0];[0];0", "hour 25"),
        ("1042;1;21;11;[0];[0];[0];[1.0];[0];0", "purchase_power 11"),
        ("1042;0;21;6;[0];[0];[0];[1.0];[0];0", "page_id 0"),
        ("x;1;21;6;[0];[0];[0];[1.0];[0];0", "invalid literal"),
        ("1042;1;21;6;[0,1];[0];[0];[1.0];[0];0", "different lengths"),
        ("1042;1;21;6;[2];[0];[0];[1.0];[0];0", "not 0 or 1"),
        ("1042;1;21;6;[0];[0];[0];[-1.0];[0];0", "negative"),
        ("1042;1;21;6;0,1;[0];[0];[1.0];[0];0", "not a [..] list"),
    ],
)
def test_malformed_rows_are_reported_with_line_numbers(tmp_path: Path, line: str, reason: str) -> None:
    path = write_page_log(tmp_path / "log.csv", [GOOD])
    path.write_text(path.read_text() + line + "\n" + path.read_text().splitlines()[1] + "\n")
    result = read_page_log(path)
    assert len(result.pages) == 2 and result.malformed_rows == 1
    assert result.malformed[0][0] == 3 and reason in result.malformed[0][1]
    assert result.summary()["malformed"][0]["line"] == 3


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        read_page_log(tmp_path / "missing.csv")
    (tmp_path / "h.csv").write_text("a;b\n")
    with pytest.raises(DataError, match="line 1: header must be " + ";".join(HEADER[:2])):
        read_page_log(tmp_path / "h.csv")
    (tmp_path / "b.csv").write_bytes(";".join(HEADER).encode() + b"\n\xff\xfe\n")
    with pytest.raises(DataError, match="not UTF-8"):
        read_page_log(tmp_path / "b.csv")
