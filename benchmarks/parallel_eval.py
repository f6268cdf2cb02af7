"""Benchmark: wall time of `nextbest crm evaluate` (200 bootstrap refits) serial, on 2 local workers, and on a
2-node Ray cluster on this machine (one CPU per node).

Trains one run first (cached in ``--cache``, not timed), then runs the installed ``nextbest crm evaluate`` three
times in a subprocess with the same seed and prints one JSON line: the wall seconds of each, the speedups over
serial, the overhead (wall − serial wall ÷ workers: what the parallel run costs beyond a perfect split, which
includes the command's serial part — the point runs, the lead score, the step-size comparison), and whether the
three evaluation.json files are identical apart from the timings they report (``wall_seconds``; they must be: the
executor never changes the numbers).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NEXTBEST = str(Path(sys.executable).with_name("nextbest"))


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def without_timings(payload):
    """The JSON without its ``wall_seconds`` entries (how long a step took differs from run to run)."""
    if isinstance(payload, dict):
        return {k: without_timings(v) for k, v in payload.items() if k != "wall_seconds"}
    if isinstance(payload, list):
        return [without_timings(v) for v in payload]
    return payload


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "nextbest-bench")
    args = parser.parse_args()
    from nextbest.parallel import local_ray_cluster

    run = args.cache / "crm-run"
    if not (run / "training_metrics_final.json").is_file():
        timed([NEXTBEST, "crm", "train", "--out", str(run), "--episodes", "100000", "--seed", "0"])
    base = [NEXTBEST, "crm", "evaluate", "--run", str(run), "--bootstrap", str(args.bootstrap), "--seed", "0"]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        seconds = {"serial": timed([*base, "--out", str(out / "serial")]),
                   "local_2_workers": timed([*base, "--out", str(out / "local"), "--workers", "2"])}  # fmt: skip
        with local_ray_cluster(nodes=2) as address:
            seconds["ray_2_nodes"] = timed([*base, "--out", str(out / "ray"), "--ray-address", address])
        texts = {folder: json.dumps(without_timings(json.loads((out / folder / "evaluation.json").read_text())))
                 for folder in ("serial", "local", "ray")}  # fmt: skip
    serial = seconds["serial"]
    print(json.dumps({
        "benchmark": "parallel_eval", "command": "nextbest crm evaluate", "bootstrap": args.bootstrap,
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "speedup": {k: round(serial / v, 2) for k, v in seconds.items() if k != "serial"},
        "overhead_seconds": {k: round(v - serial / 2, 1) for k, v in seconds.items() if k != "serial"},
        "identical_results": len(set(texts.values())) == 1,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
