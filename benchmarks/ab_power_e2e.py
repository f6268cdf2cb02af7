"""Power of the online A/B experiment end to end: how often the real pipeline's experiment detects the improvement.

Runs the whole experiment (memory Tansu broker, platform subprocess on SQLite, ``nextbest stream run`` with the
experiment's token, shop traffic; design alpha 0.05, power 0.8, effect 0.7 $, sd 15 $, 7,210 per arm) ``--runs``
times with the good model (``--model-kind``, gbm by default) and ``--runs`` times with the original age/sex rule
exported and posing as "new", each run with its own traffic seed and its own experiment. The platform serves every
run; each run gets a fresh memory broker (about a second to start), because a new worker re-reads the input topics
from their start (committed offsets did not carry over between workers here), so on a shared broker every run
would replay all earlier runs' traffic and the n-th run would wait behind n - 1 runs of backlog.

"Detects the improvement" is the platform's ``Result.improves`` (significant increase, the event the design's
power is about); ``improves_by_target`` (significantly above +0.7 $) is reported too. With the good model the
true effect is larger than the target, so ``improves`` should hold more often than the designed 80 %; with the
original posing as new (true effect 0) it should hold about alpha / 2 = 2.5 % of the time.

Prints ONE JSON line: counts per model, designed power, seconds per run and wall seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from nextbest.stream.broker import Broker
from nextbest.stream.e2e import Design, prepare_model, run_experiment
from nextbest.stream.services import PlatformService

PROGRESS_KEYS = ("experiment", "complete", "improves", "improves_by_target", "effect", "p_value", "seconds")
ORIGINAL_SEED_OFFSET = 500  # the original's runs use traffic seeds 500, 501, ... (other customers than the good's)


def tally(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """Detections and health of a series of runs."""
    return {
        "runs": len(summaries),
        "complete": sum(bool(s["complete"]) for s in summaries),
        "improves": sum(bool(s["improves"]) for s in summaries),
        "improves_by_target": sum(bool(s["improves_by_target"]) for s in summaries),
        "srm_flagged": sum(bool(s["srm_flagged"]) for s in summaries),
        "mean_effect": sum(s["effect"] or 0.0 for s in summaries) / max(len(summaries), 1),
        "fallback_timeouts": sum(s["fallback_timeouts"] for s in summaries),
        "token_mismatches": sum(s["token_mismatches"] for s in summaries),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="Runs per model (default 20).")
    parser.add_argument("--model-kind", default="gbm", choices=("gbm", "logreg"), help="The good model.")
    parser.add_argument("--rate", type=float, default=2000.0, help="Sessions per second per run.")
    parser.add_argument("--out", type=Path, default=None, help="Folder kept for the world, models and logs.")
    args = parser.parse_args()
    start = time.monotonic()
    folder = args.out or Path(tempfile.mkdtemp(prefix="ab-power-e2e-"))
    models = {name: prepare_model(folder, kind) for name, kind in (("good", args.model_kind), ("original", "age-sex"))}
    design = Design()
    runs: dict[str, list[dict[str, Any]]] = {"good": [], "original": []}
    with PlatformService(f"sqlite:///{folder / 'platform.db'}", log_dir=folder / "logs") as platform:
        for name, (model, world) in models.items():
            offset = ORIGINAL_SEED_OFFSET if name == "original" else 0
            for run in range(args.runs):
                with Broker(storage="memory") as broker:
                    broker.create_topics(partitions=4)
                    summary = run_experiment(broker.bootstrap_servers, platform.url, model, world, design,
                                             seed=offset + run, rate=args.rate, log_dir=folder / "logs")  # fmt: skip
                runs[name].append(summary)
                print(json.dumps({key: summary[key] for key in PROGRESS_KEYS}), file=sys.stderr, flush=True)
    seconds = time.monotonic() - start
    print(json.dumps({
        "benchmark": "ab_power_e2e",
        "good_model": args.model_kind,
        "runs_per_model": args.runs,
        "designed_power": runs["good"][0]["achieved_power"] if runs["good"] else None,
        "sample_size_per_arm": design.payload()["sample_size"],
        "detects": "improves",
        "good": tally(runs["good"]),
        "original_as_new": tally(runs["original"]),
        "seconds_per_run": sum(s["seconds"] + s["pipeline_ready_seconds"] for s in runs["good"] + runs["original"])
        / max(2 * args.runs, 1),
        "wall_seconds": seconds,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
