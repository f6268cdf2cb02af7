"""The session world (ground truth) and `nextbest sessions ingest` into a local lake."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cli_helpers import run
from nextbest.data.lake import Lake
from nextbest.data.pagelog import write_page_log
from nextbest.data.taobao import PAGE_COLUMNS
from nextbest.sim.sessions import SessionWorld, SessionWorldConfig


@pytest.fixture(scope="module")
def pages() -> pd.DataFrame:
    return SessionWorld(SessionWorldConfig(seed=3)).pages(30_000)


def test_schema_and_reproducibility(pages: pd.DataFrame) -> None:
    assert list(pages.columns) == PAGE_COLUMNS
    pd.testing.assert_frame_equal(pages, SessionWorld(SessionWorldConfig(seed=3)).pages(30_000))
    per_session = pages.groupby("session_id")
    assert per_session.done.sum().eq(1).all() and per_session.done.last().eq(1).all()
    assert (per_session.page_id.max() == per_session.size()).all()
    assert pages.hour.between(0, 23).all() and pages.purchase_power.between(0, 10).all()
    assert ((pages.page_value > 0) == (pages.reward > 0)).all() and (pages.page_value >= 0).all()


def test_the_hypotheses_hold_by_construction(pages: pd.DataFrame) -> None:
    by_power = pages.groupby(pages.purchase_power.clip(upper=6)).done.mean()
    assert np.all(np.diff(by_power.to_numpy()) < 0)  # richer users churn less
    by_depth = pages[pages.page_id <= 25].groupby((pages.page_id - 1) // 5).done.mean()
    assert np.all(np.diff(by_depth.to_numpy()) > 0)  # fatigue
    bought = pages.page_value > 0
    assert pages[bought].done.mean() < pages[~bought].done.mean()  # spending resets the churn clock
    world = SessionWorld()
    assert world.churn_probability(1, 5, 8, 0, 20) < world.churn_probability(1, 0, 0, 0, 2)
    assert world.expected_value(5, 8) > world.expected_value(5, 0)


@pytest.mark.parametrize("source", ["synthetic", "taobao", "pagelog"])
def test_ingest_into_a_local_lake(
    source: str, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    extra: list[str] = []
    if source == "pagelog":
        page = {"session_id": 5, "page_id": 1, "hour": 3, "purchase_power": 2, "clicks": [1, 0], "carts": [0, 1],
                "favs": [0, 0], "prices": [10.0, 2.5], "purchases": [0, 1], "done": 1}  # fmt: skip
        log = write_page_log(tmp_path / "log.csv", [page])
        log.write_text(log.read_text() + "5;2;3;2;[1];[0];[0];[1.0,2.0];[0];1\n")
        extra = ["--path", str(log)]
    code, out, err = run(capsys, monkeypatch, "sessions", "ingest", "--source", source, "--lake",
                         str(tmp_path / "lake"), "--sessions", "500", *extra)  # fmt: skip
    assert code == 0, err
    summary = json.loads(out)
    table = Lake(str(tmp_path / "lake")).read_table("pages")
    assert list(table.columns) == PAGE_COLUMNS and len(table) == summary["pages"]
    if source == "pagelog":
        assert summary["malformed_rows"] == 1 and summary["malformed"][0]["line"] == 3
        assert table.page_value.tolist() == [2.5]


def test_eda_from_the_lake(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    Lake(str(tmp_path / "lake")).write_table("pages", SessionWorld().pages(3_000))
    code, out, err = run(capsys, monkeypatch, "sessions", "eda", "--lake", str(tmp_path / "lake"),
                         "--out", str(tmp_path / "eda"))  # fmt: skip
    assert code == 0, err
    summary = json.loads((tmp_path / "eda" / "eda.json").read_text())
    html = (tmp_path / "eda" / "eda.html").read_text()
    assert html.count("data:image/png;base64,") == 7 and "fatigue" in html
    assert len(list((tmp_path / "eda" / "figures").glob("*.png"))) == 7
    rates = summary["churn_by_depth"]["churn_rate"]
    assert rates[-1] > rates[0]  # fatigue, visible in the EDA of the ground-truth world
    assert summary["churn_after_purchase"]["bought"] < summary["churn_after_purchase"]["not_bought"]
    code, _, err = run(capsys, monkeypatch, "sessions", "eda", "--lake", str(tmp_path / "empty"),
                       "--out", str(tmp_path / "x"))  # fmt: skip
    assert code == 2 and "not found" in err


def test_models_scratch_matches_sklearn(tmp_path: Path, capsys: pytest.CaptureFixture,
                                        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    Lake(str(tmp_path / "lake")).write_table("pages", SessionWorld().pages(8_000))
    code, _, err = run(capsys, monkeypatch, "sessions", "models", "--lake", str(tmp_path / "lake"),
                       "--out", str(tmp_path / "models"))  # fmt: skip
    assert code == 0, err
    table = json.loads((tmp_path / "models" / "models.json").read_text())
    assert set(table["churn"]) == set(table["value"]) == {"scratch", "sklearn", "gbm"}
    scratch, sklearn = table["churn"]["scratch"], table["churn"]["sklearn"]
    assert abs(scratch["pr_auc"] - sklearn["pr_auc"]) < 0.01 and sklearn["pr_auc"] > table["split"]["churn_rate_test"]
    rmse = {name: table["value"][name]["rmse"] for name in ("scratch", "sklearn")}
    assert abs(rmse["scratch"] - rmse["sklearn"]) < 0.02 * rmse["sklearn"]


def test_ingest_a_session_retention_layout_log(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI takes the layout by name; a bad layout name exits 2 with one line."""
    log = tmp_path / "retention.csv"
    log.write_text("header junk\n0;9;x;y;3;;;;;1,0;0,1;0,0;0,12.5;z;0\n1;9;x;y;3;;;;;0,0;0,0;1,0;0,0;z;1\nbad\n")
    code, out, err = run(capsys, monkeypatch, "sessions", "ingest", "--source", "pagelog", "--path", str(log),
                         "--layout", "session-retention", "--lake", str(tmp_path / "lake"))  # fmt: skip
    assert code == 0, err
    summary = json.loads(out)
    assert summary["layout"] == "session-retention" and summary["pages"] == 2 and summary["malformed_rows"] == 1
    assert Lake(str(tmp_path / "lake")).read_table("pages").page_value.tolist() == [12.5, 0.0]
    code, _, err = run(capsys, monkeypatch, "sessions", "ingest", "--source", "pagelog", "--path", str(log),
                       "--layout", "tsv", "--lake", str(tmp_path / "lake"))  # fmt: skip
    assert code == 2 and "unknown page-log layout 'tsv'" in err
