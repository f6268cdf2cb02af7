"""Taobao UserBehavior -> sessions -> pages (DuckDB): the rules on hand-made files, the real sample, bad rows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from nextbest.data.paths import resolve_data_file
from nextbest.data.taobao import PAGE_COLUMNS, SessionizeConfig, sessionize
from nextbest.errors import DataError

T0 = 1511539200  # 2017-11-24 16:00 UTC = 2017-11-25 00:00 in Taobao's time zone (UTC+8)


def write(path: Path, rows: list[tuple]) -> Path:
    path.write_text("".join(",".join(str(v) for v in row) + "\n" for row in rows))
    return path


def pages_of(tmp_path: Path, rows: list[tuple], **config) -> pd.DataFrame:
    result = sessionize(write(tmp_path / "ub.csv", rows), tmp_path / "pages.parquet", SessionizeConfig(**config))
    assert result.malformed_rows == 0
    return pd.read_parquet(tmp_path / "pages.parquet").sort_values(["session_id", "page_id"]).reset_index(drop=True)


def test_sessions_break_at_thirty_minute_gaps_and_pages_have_fixed_size(tmp_path: Path) -> None:
    events = [(7, 100 + i, 1, "pv", T0 + 60 * i) for i in range(5)]  # 5 events, one a minute
    events += [(7, 200, 1, "cart", T0 + 4 * 60 + 29 * 60)]  # 29 min later: same session
    events += [(7, 300 + i, 1, "pv", T0 + 4 * 60 + 29 * 60 + 31 * 60 + i) for i in range(3)]  # 31 min: new
    pages = pages_of(tmp_path, events, events_per_page=4)
    assert list(pages.columns) == PAGE_COLUMNS
    assert pages.session_id.tolist() == [700000, 700000, 700001]
    assert pages.page_id.tolist() == [1, 2, 1]
    assert pages.engagement.tolist() == [4, 2, 3]
    assert pages.done.tolist() == [0, 1, 1]
    assert pages.hour.tolist() == [0, 0, 1]  # local time: the third page starts at 01:04


def test_purchase_power_counts_only_earlier_sessions(tmp_path: Path) -> None:
    day = 86400
    events = [(1, 10, 1, "buy", T0), (1, 11, 1, "buy", T0 + 60),  # session 0: two purchases
              (1, 12, 1, "buy", T0 + day), (1, 13, 1, "pv", T0 + day + 60),  # session 1
              (1, 14, 1, "pv", T0 + 2 * day)]  # session 2  # fmt: skip
    events += [(2, 20 + i, 1, "buy", T0 + 3 * day + i * 3600) for i in range(12)]  # 12 sessions with 1 buy each
    pages = pages_of(tmp_path, events)
    user1 = pages[pages.session_id // 100000 == 1]
    assert user1.purchase_power.tolist() == [0, 2, 3]  # the purchase in a session never counts for itself
    assert user1.page_value.tolist() == [2.0, 1.0, 0.0] and (user1.reward == user1.page_value).all()
    user2 = pages[pages.session_id // 100000 == 2]
    assert user2.purchase_power.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10]  # capped at 10


def test_real_sample(tmp_path: Path) -> None:
    source = resolve_data_file("taobao", "UserBehavior_sample.csv")
    result = sessionize(source, tmp_path / "pages.parquet")
    pages = pd.read_parquet(tmp_path / "pages.parquet")
    assert result.malformed_rows == 0 and result.events == result.rows == 4321
    assert result.pages == len(pages) and result.sessions == pages.session_id.nunique()
    assert pages.groupby("session_id").done.sum().eq(1).all()  # exactly one last page per session
    assert pages.hour.between(0, 23).all() and pages.purchase_power.between(0, 10).all()
    assert pages.engagement.sum() <= result.events


def test_malformed_rows_are_counted_with_line_numbers(tmp_path: Path) -> None:
    source = tmp_path / "bad.csv"
    source.write_text(f"1,2,3,pv,{T0}\nabc,2,3,pv,{T0}\n1,2,3,pv\n1,2,3,buy,{T0 + 5}\n1,2,3,teleport,{T0 + 9}\n")
    result = sessionize(source, tmp_path / "pages.parquet")
    assert result.rows == 5 and result.events == 2 and result.malformed_rows == 3
    assert [line for line, _ in result.malformed] == [2, 3]
    json.dumps(result.as_json())
    with pytest.raises(DataError, match="not found"):
        sessionize(tmp_path / "missing.csv", tmp_path / "p.parquet")


def test_a_line_with_several_problems_counts_once(tmp_path: Path) -> None:
    """DuckDB reports a problem per column (a long line one per extra column); the line counts once, with the
    column count when it is wrong, else the first column that did not convert."""
    source = tmp_path / "bad.csv"
    source.write_text(f"1,2,3,pv,{T0},9,9\n  \nx,y,3,pv,{T0}\n1,2,3,pv,{T0}\n")
    result = sessionize(source, tmp_path / "pages.parquet")
    assert result.rows == 4 and result.events == 1 and result.malformed_rows == 3
    assert result.malformed == [
        (1, "Expected Number of Columns: 5 Found: 7"), (2, "Expected Number of Columns: 5 Found: 1"),
        (3, 'Error when converting column "user_id". Could not convert string "x" to \'BIGINT\''),
    ]  # fmt: skip

def test_benchmark_runs_at_one_million_rows(tmp_path: Path) -> None:
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "sessionize.py"
    done = subprocess.run([sys.executable, str(script), "--rows", "1000000", "--cache", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, check=True)  # fmt: skip
    line = json.loads(done.stdout.strip().splitlines()[-1])
    assert line["rows"] == 1_000_000 and line["pages"] > 0 and line["peak_rss_mb"] > 0
