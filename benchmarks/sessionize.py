"""Benchmark: UserBehavior events -> the page table with DuckDB (target: 100M rows in <= 3 min, <= 4 GB peak RSS).

Writes a synthetic UserBehavior-format CSV of ``--rows`` events (cached in ``--cache``; not timed), then runs
``nextbest.data.taobao.sessionize`` in a child process and prints one JSON line: rows, seconds, peak RSS of the
child (MB), sessions, pages, and whether the targets are met.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

TARGET_SECONDS = 180.0
TARGET_RSS_MB = 4096.0
CHILD = """
import json, sys
from nextbest.data.taobao import sessionize
print(json.dumps(sessionize(sys.argv[1], sys.argv[2]).as_json()))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000_000)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "nextbest-bench")
    args = parser.parse_args()
    from nextbest.data.taobao import write_synthetic_userbehavior

    source = args.cache / f"userbehavior_{args.rows}.csv"
    if not source.is_file():
        write_synthetic_userbehavior(source.with_suffix(".tmp"), args.rows).rename(source)
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run([sys.executable, "-c", CHILD, str(source), str(Path(tmp) / "pages.parquet")],
                              capture_output=True, text=True, check=True)  # fmt: skip
    result = json.loads(done.stdout.strip().splitlines()[-1])
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({
        "benchmark": "sessionize", "rows": result["rows"], "seconds": result["seconds"],
        "peak_rss_mb": round(peak_mb, 1), "sessions": result["sessions"], "pages": result["pages"],
        "malformed_rows": result["malformed_rows"],
        "targets": {"seconds": {"target": TARGET_SECONDS, "met": result["seconds"] <= TARGET_SECONDS},
                    "peak_rss_mb": {"target": TARGET_RSS_MB, "met": peak_mb <= TARGET_RSS_MB}},
    }))  # fmt: skip


if __name__ == "__main__":
    main()
