"""The data lake: a local folder and a real S3-compatible server on loopback (SeaweedFS), same API."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nextbest.data.lake import Lake
from nextbest.errors import DataError


def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"session_id": np.arange(1000, dtype=np.int64), "reward": rng.random(1000),
                         "done": rng.integers(0, 2, 1000).astype(np.int8)})  # fmt: skip


def round_trip(lake: Lake) -> None:
    written = lake.write_table("pages", frame())
    assert written.endswith("processed/pages.parquet")
    pd.testing.assert_frame_equal(lake.read_table("pages"), frame())
    assert lake.read_table("pages", columns=["reward"]).shape == (1000, 1)
    assert lake.tables() == ["pages"]
    with pytest.raises(DataError, match="not found"):
        lake.read_table("nothing")
    with pytest.raises(DataError, match="table name"):
        lake.path("../escape")


def test_local_lake(tmp_path: Path) -> None:
    round_trip(Lake(str(tmp_path / "lake")))
    assert (tmp_path / "lake" / "processed" / "pages.parquet").is_file()


@pytest.mark.s3
def test_s3_lake_on_a_real_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nextbest.stream.objectstore import SeaweedFS

    with SeaweedFS(tmp_path / "weed") as store:
        round_trip(Lake(f"s3://{store.bucket}/lake", endpoint_url=store.endpoint_url,
                        key=store.access_key, secret=store.secret_key))  # fmt: skip
        for name, value in store.env().items():
            monkeypatch.setenv(name, value)
        from_env = Lake(f"s3://{store.bucket}/lake")
        pd.testing.assert_frame_equal(from_env.read_table("pages"), frame())
        keys = store.client().list_objects_v2(Bucket=store.bucket, Prefix="lake/")["Contents"]
        assert [k["Key"] for k in keys] == ["lake/processed/pages.parquet"]
