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
        ("1042;1;21;6;[0,1;[0];[0];[1.0];[0];0", "unbalanced bracket"),
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


def _retention_line(page: int, hour: int, power: int, clicks: list, carts: list, favs: list, values: list,
                    churn: int) -> str:
    """A line of the session-retention project's layout (15 columns, lists without brackets)."""
    cells = [str(page), str(hour), "x", "y", str(power), "", "", "", "",
             ",".join(map(str, clicks)), ",".join(map(str, carts)), ",".join(map(str, favs)),
             ",".join(f"{v:g}" for v in values), "z", str(churn)]  # fmt: skip
    return ";".join(cells)


def test_the_session_retention_layout(tmp_path: Path) -> None:
    """No header, a garbage first row skipped, sessions ending at churn = 1, bad lines counted with numbers."""
    lines = [
        "garbage;first;row",
        _retention_line(0, 9, 3, [1, 0], [0, 1], [0, 0], [0.0, 12.5], 0),
        _retention_line(1, 9, 3, [0, 0], [0, 0], [1, 0], [0.0, 0.0], 1),
        _retention_line(0, 22, 7, [1], [1], [1], [40.0], 0),
        "0;25;x;y;3;;;;;1;0;0;5;z;0",  # hour 25
        "0;9;x",  # too few fields
        _retention_line(1, 22, 7, [0, 1, 0], [0, 0, 0], [0, 0, 0], [0.0, 1.5, 2.0], 1),
        "0;9;x;y;3;;;;;1,0;0;0;5;z;0",  # lists of different lengths
    ]
    path = tmp_path / "retention.csv"
    path.write_text("\n".join(lines) + "\n")
    result = read_page_log(path, layout="session-retention")
    pages = result.pages
    assert pages["session_id"].tolist() == [0, 0, 1, 1]
    assert pages["page_value"].tolist() == [12.5, 0.0, 40.0, 3.5] and pages["engagement"].tolist() == [2, 0, 2, 1]
    assert pages["done"].tolist() == [0, 1, 0, 1] and pages["purchase_power"].tolist() == [3, 3, 7, 7]
    assert result.malformed_rows == 3 and [line for line, _ in result.malformed] == [5, 6, 8]
    assert "hour 25" in result.malformed[0][1] and "fields" in result.malformed[1][1]
    assert "different lengths" in result.malformed[2][1]


def test_a_layout_from_json_and_bad_layouts(tmp_path: Path) -> None:
    import json

    from nextbest.data.pagelog import PageLogLayout, layout_named

    spec = tmp_path / "mine.json"
    spec.write_text(json.dumps({"separator": ",", "header": True, "list_separator": "|",
                                "columns": {"session_id": "sid", "page_id": "page", "hour": "h", "purchase_power": "pp",
                                            "clicks": "c", "carts": "a", "favs": "f", "values": "v", "done": "end"}}))
    log = tmp_path / "mine.csv"
    log.write_text("sid,page,h,pp,c,a,f,v,end\n7,1,10,2,1|0,0|0,0|1,3.0|4.0,1\n")
    result = read_page_log(log, layout=str(spec))
    assert result.pages.iloc[0][["session_id", "page_value", "engagement"]].tolist() == [7, 7.0, 1]
    for columns, message in (({"page_id": 0}, "missing fields"), ({**LAYOUT_COLUMNS, "colour": 3}, "unknown fields")):
        with pytest.raises(DataError, match=message):
            PageLogLayout("bad", columns)
    with pytest.raises(DataError, match="unknown page-log layout"):
        layout_named("tsv")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(DataError, match="broken.json"):
        layout_named(str(tmp_path / "broken.json"))


LAYOUT_COLUMNS = {"page_id": 0, "hour": 1, "purchase_power": 2, "clicks": 3, "carts": 4, "favs": 5, "values": 6,
                  "done": 7}
