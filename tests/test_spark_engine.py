"""The Spark engine of the sessionizer on a real standalone cluster (a master and a worker on loopback, started
here): the same page table and counts as DuckDB on the Taobao sample, on 1M generated rows and on bad rows; the CLI
and the pipeline with `--engine spark` on a local lake; and the one-line errors (no Java, no master, no hadoop-aws
for an s3:// lake)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from tests.cli_helpers import run
from tests.spark_cluster import free_port, standalone_cluster

from nextbest.data.paths import resolve_data_file
from nextbest.data.taobao import (
    PAGE_COLUMNS,
    SessionizeConfig,
    SessionizeResult,
    sessionize,
    write_synthetic_userbehavior,
)

NEXTBEST = str(Path(sys.executable).with_name("nextbest"))
KEY = ["session_id", "page_id"]
T0 = 1511539200


def _end_jvm() -> None:
    """End the driver JVM PySpark started in this process (``stop`` leaves it running for a next session)."""
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    if gateway is None:
        return
    gateway.shutdown()
    process = getattr(gateway, "proc", None)
    if process is not None and process.poll() is None:
        process.terminate()
        process.wait(timeout=30)
    SparkContext._gateway = SparkContext._jvm = None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with standalone_cluster(tmp_path_factory.mktemp("spark-cluster")) as master:
        yield master


@pytest.fixture(scope="module")
def spark(cluster: str) -> Iterator:
    """One driver for the module, on the cluster; its executor (1 core, 1 GB) runs on the worker."""
    from nextbest.data.taobao_spark import spark_session

    session = spark_session(cluster, shuffle_partitions=4, driver_memory="1g", executor_memory="1g", executor_cores=1)
    try:
        deadline = time.monotonic() + 60
        while session.sparkContext._jsc.sc().getExecutorMemoryStatus().size() < 2:  # the driver + one executor
            assert time.monotonic() < deadline, "no executor registered on the worker"
            time.sleep(0.5)
        yield session
    finally:
        session.stop()
        _end_jvm()


def both(spark, source: Path, folder: Path, config: SessionizeConfig | None = None
         ) -> tuple[pd.DataFrame, SessionizeResult, pd.DataFrame, SessionizeResult]:  # fmt: skip
    """Sessionize ``source`` with DuckDB and with Spark; the two tables sorted on the key, and the two results."""
    from nextbest.data.taobao_spark import sessionize_spark

    duck = sessionize(source, folder / "duckdb.parquet", config)
    on_spark = sessionize_spark(spark, source, folder / "spark.parquet", config)
    tables = [pd.read_parquet(folder / name).sort_values(KEY).reset_index(drop=True)
              for name in ("duckdb.parquet", "spark.parquet")]  # fmt: skip
    return tables[0], duck, tables[1], on_spark


def assert_same(duck: pd.DataFrame, duck_result: SessionizeResult, spark: pd.DataFrame,
                spark_result: SessionizeResult) -> None:  # fmt: skip
    """Same columns, dtypes and values row for row; the same counts and malformed lines with their reasons."""
    assert list(spark.columns) == list(duck.columns) == PAGE_COLUMNS
    pd.testing.assert_frame_equal(spark, duck, check_exact=True)
    plain = [{k: v for k, v in r.as_json().items() if k not in ("out", "seconds")} for r in (duck_result, spark_result)]
    assert plain[1] == plain[0]


@pytest.mark.spark
def test_the_taobao_sample_gives_the_same_page_table(spark, cluster: str, tmp_path: Path) -> None:
    assert spark.sparkContext.master == cluster
    source = resolve_data_file("taobao", "UserBehavior_sample.csv")
    duck, duck_result, table, result = both(spark, source, tmp_path)
    assert_same(duck, duck_result, table, result)
    assert result.rows == result.events == 4321 and result.pages == len(table) > 0
    assert Path(result.out) == (tmp_path / "spark.parquet").resolve()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["duckdb.parquet", "spark.parquet"]  # no staging left


@pytest.mark.spark
def test_a_million_generated_rows_give_the_same_page_table(spark, tmp_path: Path) -> None:
    source = write_synthetic_userbehavior(tmp_path / "userbehavior.csv", 1_000_000, seed=3)
    duck, duck_result, table, result = both(spark, source, tmp_path)
    assert result.rows == 1_000_000 and result.malformed_rows == 0 and result.sessions > 50_000
    assert_same(duck, duck_result, table, result)


@pytest.mark.spark
def test_the_rules_and_bad_rows_are_the_same(spark, tmp_path: Path) -> None:
    day = 86400
    rows = [(7, 100 + i, 1, "pv", T0 + 60 * i) for i in range(5)] + [(7, 200, 1, "cart", T0 + 33 * 60)]
    rows += [(7, 300 + i, 1, "pv", T0 + 64 * 60 + i) for i in range(3)]  # 31 minutes later: a new session
    rows += [(1, 10, 1, "buy", T0), (1, 11, 1, "buy", T0 + 60), (1, 12, 1, "buy", T0 + day),
             (1, 14, 1, "pv", T0 + 2 * day)]  # fmt: skip
    rows += [(2, 20 + i, 1, "buy", T0 + 3 * day + i * 3600) for i in range(12)]  # purchase power reaches the cap
    good = "".join(",".join(map(str, row)) + "\n" for row in rows)
    bad = (f"abc,2,3,pv,{T0}\n1,2,3,pv\n\n1,2,3,pv,{T0},9,9\n  \n9,1,1,teleport,{T0}\n9,1,1,,{T0}\n,1,1,pv,{T0}\n"
           f"9,1,1,pv,\n9,1,1, pv,{T0}\n 9 ,1_0,+1,\"pv\",{T0}.5\n9,0x1F,0b11,\"p,v\",1e3\n9,1,1,cart,1.5e9\n"
           f"9,1,1,pv,99999999999999999999\nx,y,3,pv,5\n9,1,1,buy,{T0 + 7}\n")  # fmt: skip
    source = tmp_path / "ub.csv"
    source.write_text("\ufeff" + good + bad)  # a byte-order mark first, as DuckDB skips it
    duck, duck_result, table, result = both(spark, source, tmp_path, SessionizeConfig(events_per_page=4))
    assert_same(duck, duck_result, table, result)
    first = len(rows)
    assert [line for line, _ in result.malformed] == [first + n for n in (1, 2, 4, 5, 14, 15)]
    assert result.malformed[2][1] == "Expected Number of Columns: 5 Found: 7"
    assert result.rows == first + 15 and result.malformed_rows == 6 + 6  # 6 rejected lines; 6 unknown or NULL
    user7 = table[table.session_id // 100000 == 7]
    assert user7.page_id.tolist() == [1, 2, 1] and user7.engagement.tolist() == [4, 2, 3]
    assert table[table.session_id // 100000 == 2].purchase_power.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10]


@pytest.mark.spark
def test_cli_and_pipeline_with_engine_spark_write_the_same_lake_table(
    spark, cluster: str, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nextbest.data.lake import Lake

    summaries = {}
    for engine in ("duckdb", "spark"):
        code, out, err = run(capsys, monkeypatch, "sessions", "ingest", "--source", "taobao", "--lake",
                             str(tmp_path / engine), "--engine", engine, "--spark-master", cluster)  # fmt: skip
        assert code == 0, err
        summaries[engine] = json.loads(out)
    assert summaries["spark"]["engine"] == "spark" and spark.sparkContext.master == cluster  # the session lives on
    assert {k: v for k, v in summaries["spark"].items() if k not in ("out", "seconds", "engine")} == {
        k: v for k, v in summaries["duckdb"].items() if k not in ("out", "seconds", "engine")}  # fmt: skip
    tables = [Lake(str(tmp_path / engine)).read_table("pages").sort_values(KEY).reset_index(drop=True)
              for engine in ("duckdb", "spark")]  # fmt: skip
    pd.testing.assert_frame_equal(tables[1], tables[0])
    assert Lake(str(tmp_path / "spark")).tables() == ["pages"]  # no staging folder left in the lake

    args = ["sessions", "pipeline", "--source", "taobao", "--lake", str(tmp_path / "lake"), "--out",
            str(tmp_path / "run"), "--steps", "ingest,features", "--spark-master", cluster]  # fmt: skip
    code, out, err = run(capsys, monkeypatch, *args, "--engine", "spark")
    assert code == 0, err
    assert {name: step["status"] for name, step in json.loads(out)["steps"].items()} == {"ingest": "ran",
                                                                                       "features": "ran"}  # fmt: skip
    record = json.loads((tmp_path / "run" / "pipeline.json").read_text())
    assert record["steps"]["ingest"]["settings"]["engine"] == "spark"
    assert json.loads((tmp_path / "run" / "ingest" / "ingest.json").read_text())["engine"] == "spark"
    pd.testing.assert_frame_equal(Lake(str(tmp_path / "lake")).read_table("pages").sort_values(KEY)
                                  .reset_index(drop=True), tables[0])  # fmt: skip
    code, out, _ = run(capsys, monkeypatch, *args, "--engine", "spark")  # unchanged: skipped
    assert code == 0 and {step["status"] for step in json.loads(out)["steps"].values()} == {"skipped"}


@pytest.mark.spark
def test_an_s3_lake_without_hadoop_aws_is_one_line_and_exit_2(
    spark, cluster: str, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run(capsys, monkeypatch, "sessions", "ingest", "--source", "taobao", "--lake",
                         "s3://nextbest-test/lake", "--engine", "spark", "--spark-master", cluster)  # fmt: skip
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "hadoop-aws" in err and "Traceback" not in err


@pytest.mark.parametrize(("args", "message"), [
    (("--engine", "flink"), "choose one of duckdb, spark"),
    (("--source", "synthetic", "--engine", "spark"), "use it with source taobao"),
])  # fmt: skip
def test_bad_engine_settings_exit_2(
    args: tuple[str, ...], message: str, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run(capsys, monkeypatch, "sessions", "ingest", "--lake", str(tmp_path / "lake"), "--source",
                       "taobao", *args)  # fmt: skip
    assert code == 2 and message in err


def _console(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    command = [NEXTBEST, "sessions", "ingest", "--source", "taobao", "--lake", str(tmp_path / "lake"), "--engine",
               "spark", *args]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize("java_home", [None, "/nonexistent/jdk"])
def test_the_spark_engine_without_java_is_one_line_and_exit_2(java_home: str | None, tmp_path: Path) -> None:
    """Through the installed console script, with a PATH (an empty folder) and JAVA_HOME that hold no java."""
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("JAVA_HOME", "PATH")}
    env["PATH"] = str(empty)
    if java_home:
        env["JAVA_HOME"] = java_home
    done = _console(tmp_path, env)
    assert done.returncode == 2 and done.stdout == "", done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Java 17" in lines[0] and "Traceback" not in done.stderr
    assert not (tmp_path / "lake").exists()


@pytest.mark.spark
def test_a_master_that_does_not_answer_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = _console(tmp_path, dict(os.environ), "--spark-master", f"spark://127.0.0.1:{free_port()}")
    assert done.returncode == 2 and "no Spark master answers" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


@pytest.mark.spark
def test_the_benchmark_reports_spark_beside_duckdb(tmp_path: Path) -> None:
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "sessionize.py"
    done = subprocess.run([sys.executable, str(script), "--engine", "spark", "--spark-master", "local[1]", "--rows",
                           "5000", "--spark-shuffle-partitions", "2", "--spark-driver-memory", "512m", "--cache",
                           str(tmp_path)], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    line = json.loads(done.stdout.strip().splitlines()[-1])
    assert line["engine"] == "spark" and line["rows"] == 5000 and line["same_table"] is True
    assert line["duckdb"]["rows"] == 5000 and line["duckdb"]["pages"] == line["pages"] > 0
    assert line["seconds"] > 0 and line["spark_over_duckdb"] > 0
