"""Benchmark: UserBehavior events -> the page table with DuckDB (target: 100M rows in <= 3 min, <= 4 GB peak RSS) or
Spark.

Writes a synthetic UserBehavior-format CSV of ``--rows`` events (cached in ``--cache``; not timed), then sessionizes
it in a child process and prints one JSON line: engine, rows, seconds, peak RSS (MB), sessions, pages, and for
DuckDB whether the targets are met. ``--engine duckdb`` (the default) runs ``nextbest.data.taobao.sessionize``; its
peak RSS is the child's. ``--engine spark`` runs ``nextbest.data.taobao_spark.sessionize_spark`` on
``--spark-master`` (default local[2]: the driver and its executors in one JVM, ``--spark-driver-memory``), and in
the same run DuckDB on the same file: the line then also holds DuckDB's figure (``duckdb``), the ratio of the
seconds (``spark_over_duckdb``) and whether the two page tables are the same row for row (``same_table``). Spark's
``seconds`` is the sessionizing alone (``startup_seconds``, starting the session, apart); its peak RSS is the
child's plus the driver JVM's (VmHWM; on a ``spark://`` cluster the executors' memory is not counted).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

TARGET_SECONDS = 180.0
TARGET_RSS_MB = 4096.0
CHILD_DUCKDB = """
import json, sys
from nextbest.data.taobao import sessionize
print(json.dumps(sessionize(sys.argv[1], sys.argv[2]).as_json()))
"""
CHILD_SPARK = """
import json, sys, time
from pathlib import Path
from nextbest.data.taobao_spark import sessionize_spark, spark_session
started = time.perf_counter()
spark = spark_session(sys.argv[3], driver_memory=sys.argv[4], shuffle_partitions=int(sys.argv[5]))
startup = round(time.perf_counter() - started, 3)
result = sessionize_spark(spark, sys.argv[1], sys.argv[2]).as_json()
status = Path(f"/proc/{spark.sparkContext._gateway.proc.pid}/status")
jvm_kb = next((int(line.split()[1]) for line in status.read_text().splitlines() if line.startswith("VmHWM:")), 0)
spark.stop()
print(json.dumps({**result, "startup_seconds": startup, "jvm_peak_rss_mb": round(jvm_kb / 1024, 1)}))
"""


def run_child(code: str, *args: str) -> tuple[dict, float]:
    """Run ``code`` in a child Python; its last stdout line as JSON, and the child's peak RSS (MB)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen([sys.executable, "-c", code, *args], stdout=out, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if child.returncode != 0:
            tail = err.read().decode(errors="replace")[-3000:]
            sys.exit(f"the benchmark's child failed ({child.returncode}):\n{tail}")
        return json.loads(out.read().decode().strip().splitlines()[-1]), usage.ru_maxrss / 1024


def duckdb_figure(result: dict, peak_mb: float) -> dict:
    return {"rows": result["rows"], "seconds": result["seconds"], "peak_rss_mb": round(peak_mb, 1),
            "sessions": result["sessions"], "pages": result["pages"], "malformed_rows": result["malformed_rows"],
            "targets": {"seconds": {"target": TARGET_SECONDS, "met": result["seconds"] <= TARGET_SECONDS},
                        "peak_rss_mb": {"target": TARGET_RSS_MB, "met": peak_mb <= TARGET_RSS_MB}}}  # fmt: skip


def same_table(first: Path, second: Path) -> bool:
    import pandas as pd

    key = ["session_id", "page_id"]
    tables = [pd.read_parquet(path).sort_values(key).reset_index(drop=True) for path in (first, second)]
    return bool(tables[0].dtypes.equals(tables[1].dtypes) and tables[0].equals(tables[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000_000)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "nextbest-bench")
    parser.add_argument("--engine", choices=("duckdb", "spark"), default="duckdb")
    parser.add_argument("--spark-master", default="local[2]", help="spark: local[N] or spark://HOST:PORT")
    parser.add_argument("--spark-driver-memory", default="3g", help="spark: the driver's heap (local[N]: all of it)")
    parser.add_argument("--spark-shuffle-partitions", type=int, default=8)
    args = parser.parse_args()
    from nextbest.data.taobao import write_synthetic_userbehavior

    source = args.cache / f"userbehavior_{args.rows}.csv"
    if not source.is_file():
        write_synthetic_userbehavior(source.with_suffix(".tmp"), args.rows).rename(source)
    with tempfile.TemporaryDirectory() as tmp:
        duck_out = Path(tmp) / "duckdb.parquet"
        duck, duck_peak = run_child(CHILD_DUCKDB, str(source), str(duck_out))
        if args.engine == "duckdb":
            print(json.dumps({"benchmark": "sessionize", "engine": "duckdb", **duckdb_figure(duck, duck_peak)}))
            return
        spark_out = Path(tmp) / "spark.parquet"
        spark, spark_peak = run_child(CHILD_SPARK, str(source), str(spark_out), args.spark_master,
                                      args.spark_driver_memory, str(args.spark_shuffle_partitions))  # fmt: skip
        same = same_table(duck_out, spark_out)
    print(json.dumps({
        "benchmark": "sessionize", "engine": "spark", "spark_master": args.spark_master, "rows": spark["rows"],
        "seconds": spark["seconds"], "startup_seconds": spark["startup_seconds"],
        "peak_rss_mb": round(spark_peak + spark["jvm_peak_rss_mb"], 1), "sessions": spark["sessions"],
        "pages": spark["pages"], "malformed_rows": spark["malformed_rows"], "same_table": same,
        "spark_over_duckdb": round(spark["seconds"] / max(duck["seconds"], 1e-9), 2),
        "duckdb": duckdb_figure(duck, duck_peak),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
