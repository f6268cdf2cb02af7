"""Benchmark: the loop end to end, 20 seeded turns on loopback (one JSON line).

Each turn (``nextbest.stream.loop.run_loop``): the shop's current model serves ``LOG_SESSIONS`` sessions with
ε-greedy exploration (ε = 0.3) through a real worker on a fresh Tansu broker and logs every decision; the decision
log is collected into the lake; a policy is learned from half of it; five candidates are estimated by IPS, SNIPS
and DR on the other half; the best by DR goes into an A/B test against the original rule on the platform (default
design: 7,210 sessions per arm). Goal (issue 13): in >= 18 of 20 turns the chosen policy's OPE estimate of its
effect over the original rule lies inside the A/B's 95% interval, and the world's true effect inside the OPE's
95% interval. The shop world and the current model are made once in ``runs/bench/loop_shop``.

    python benchmarks/loop_e2e.py [TURNS] [LOG_SESSIONS]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from nextbest.stream.loop import LoopConfig, run_loop

TURNS = int(sys.argv[1]) if len(sys.argv) > 1 else 20
LOG_SESSIONS = int(sys.argv[2]) if len(sys.argv) > 2 else 200_000
SHOP = Path("runs/bench/loop_shop")
GOAL = 18


def main() -> None:
    started = time.perf_counter()
    turns = []
    with tempfile.TemporaryDirectory(prefix="nextbest-loop-") as scratch:
        for seed in range(TURNS):
            config = LoopConfig(out=Path(scratch) / f"turn{seed}", shop=SHOP, seed=seed, log_sessions=LOG_SESSIONS)
            result = run_loop(config, step=lambda line: print(line, file=sys.stderr, flush=True))
            c = result.comparison
            turns.append({"seed": seed, "chosen": c.policy, "ope_effect": round(c.ope_effect, 4),
                          "ope_ci": [round(v, 4) for v in c.ope_ci], "ab_effect": c.ab_effect and round(c.ab_effect, 4),
                          "ab_ci": c.ab_ci and [round(v, 4) for v in c.ab_ci], "true_effect": round(c.true_effect, 4),
                          "ope_within_ab_ci": c.ope_within_ab_ci, "truth_within_ope_ci": c.truth_within_ope_ci,
                          "passed": c.passed, "verdict": result.ab.verdict.split(":")[0] if result.ab else None,
                          "rows_logged": result.rows_logged, "seconds": round(result.wall_seconds, 1)})  # fmt: skip
            print(json.dumps(turns[-1]), file=sys.stderr, flush=True)
    passed = sum(t["passed"] for t in turns)
    print(json.dumps({
        "benchmark": "loop_e2e",
        "turns": TURNS,
        "log_sessions": LOG_SESSIONS,
        "passed": passed,
        "goal": f">= {GOAL} of 20",
        "met": passed >= GOAL * TURNS / 20,
        "ope_within_ab_ci": sum(t["ope_within_ab_ci"] for t in turns),
        "truth_within_ope_ci": sum(t["truth_within_ope_ci"] for t in turns),
        "chosen": {name: sum(t["chosen"] == name for t in turns) for name in {t["chosen"] for t in turns}},
        "turn_results": turns,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "cpu_count": os.cpu_count(),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
