"""`nextbest stream ...`: the real-time decision worker on Kafka."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import TextIO

import typer

stream_app = typer.Typer(
    help="Real-time decisions: join topic_demographic and topic_historic by uuid, score, write the decision.",
    no_args_is_help=True,
)


def parse_duration(text: str) -> float:
    """Seconds from '60', '60s', '500ms', '2m'."""
    from nextbest.errors import NextbestError

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*", text)
    if match is None:
        raise NextbestError(f"--join-ttl {text!r}: give a duration such as 60s, 500ms or 2m")
    value, unit = float(match.group(1)), match.group(2) or "s"
    return value * {"ms": 0.001, "s": 1.0, "m": 60.0}[unit]


@stream_app.command("run")
def run(
    bootstrap_servers: str = typer.Option(..., "--bootstrap-servers", help="Kafka bootstrap servers, HOST:PORT."),
    model: Path = typer.Option(..., "--model", help="Exported model (.onnx or .pmml) with its .json sidecar."),
    token: str = typer.Option(..., "--token", help="The experiment's token, written into every decision."),
    group_id: str = typer.Option("nextbest-decisions", "--group-id", help="Consumer group: workers share it."),
    join_ttl: str = typer.Option("60s", "--join-ttl", help="How long a half waits for its twin (60s, 500ms, 2m)."),
    batch_size: int = typer.Option(2000, "--batch-size", min=1, help="Messages per micro-batch at most."),
    metrics_file: Path | None = typer.Option(None, "--metrics-file", help="JSON counters, rewritten every second "
                                             "(--metrics-interval)."),
    metrics_interval: float = typer.Option(1.0, "--metrics-interval", min=0.01, help="Seconds between rewrites of "
                                           "the metrics file."),
    max_seconds: float | None = typer.Option(None, "--max-seconds", help="Stop after this long (default: never)."),
    max_missing_share: float = typer.Option(
        0.5, "--max-missing-share", min=0.0, max=1.0,
        help="Dead-letter a historic message missing more than this share of the model's flags (the rest are "
        "imputed by the model's rule).",
    ),
    stats: bool = typer.Option(False, "--stats", help="At exit, print the counters as tables on stderr (the feed's "
                               "repeated, conflicting, missing and unknown keys included)."),
    explore: str = typer.Option("none", "--explore", help="Exploration: none | epsilon:E (a uniformly random action "
                                "with probability E) | softmax:T (over the scores 0 and P(buy) − threshold). Every "
                                "decision carries the exact propensity of its value and the policy id."),
    explore_seed: int = typer.Option(0, "--explore-seed", help="Seed of the exploration draws (one per uuid, so a "
                                     "replayed message gets the same decision)."),
    log_decisions: bool = typer.Option(False, "--log-decisions", help="Also write each decision with the features it "
                                       "was decided on to topic_decision_log (for `nextbest log collect`)."),
) -> None:
    """Decide for every customer whose two halves arrive; invalid input goes to topic_dead_letter with its reason.

    Input offsets are committed only after the decisions they produced are acknowledged, so a crash loses
    nothing (a replay can repeat a decision; keep the first per uuid). Halves waiting for their twin are kept in
    the compacted topic GROUP-join-changelog and restored at start, so a restart reads again about a commit
    interval of input, not the join TTL. Stop with Ctrl-C or SIGTERM.
    """
    from nextbest.policies.explore import Exploration
    from nextbest.stream.worker import DecisionWorker, WorkerConfig

    config = WorkerConfig(
        bootstrap_servers=bootstrap_servers, model=model, token=token, group_id=group_id,
        join_ttl=parse_duration(join_ttl), batch_size=batch_size, metrics_file=metrics_file,
        metrics_interval=metrics_interval,
        max_missing_share=max_missing_share, explore=Exploration.parse(explore, explore_seed),
        log_decisions=log_decisions,
    )  # fmt: skip
    worker = DecisionWorker(config, log=lambda line: print(line, file=sys.stderr, flush=True))
    started = {"worker": "started", "model": str(model), "group_id": group_id,
               "compiled_decoder": worker.decoder.compiled}  # fmt: skip
    print(json.dumps(started), file=sys.stderr, flush=True)
    worker.run(max_seconds=max_seconds)
    metrics = worker.metrics()
    typer.echo(json.dumps(metrics))
    if stats:
        print_stats(metrics)


@stream_app.command("stats")
def stats_command(
    metrics_file: Path = typer.Argument(..., help="The --metrics-file of a running or finished worker."),
    top: int = typer.Option(10, "--top", min=1, help="Keys shown per feed table (most frequent first)."),
) -> None:
    """Show a worker's counters as tables: decisions, dead letters by reason, and what the feed's messages needed
    (repeated and conflicting product keys, missing flags imputed, unknown keys), per key."""
    from nextbest.errors import NextbestError

    try:
        metrics = json.loads(metrics_file.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise NextbestError(f"{metrics_file}: not a readable metrics file ({error})") from error
    if not isinstance(metrics, dict):
        raise NextbestError(f"{metrics_file}: not a worker metrics file (a JSON object is expected)")
    print_stats(metrics, top=top, stream=sys.stdout)


def print_stats(metrics: dict, top: int = 10, stream: TextIO = sys.stderr) -> None:
    """The worker's metrics as rich tables (counters, dead-letter reasons, the feed's per-key counts)."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=stream, width=120)
    counters = Table("counter", "value", title="decision worker")
    for key in ("consumed", "decided", "dead_lettered", "expired", "repeats", "waiting", "pending_offsets",
                "restored", "changelog_written", "join_to_decision_p50_ms", "join_to_decision_p99_ms",
                "processing_p50_ms", "processing_p99_ms"):  # fmt: skip
        if key in metrics:
            counters.add_row(key, f"{metrics[key]:,}" if isinstance(metrics[key], int) else str(metrics[key]))
    console.print(counters)
    reasons = metrics.get("dead_letter_reasons") or {}
    if reasons:
        table = Table("dead-letter reason", "messages", title="dead letters")
        for reason, count in sorted(reasons.items(), key=lambda item: -item[1]):
            table.add_row(reason, f"{count:,}")
        console.print(table)
    feed = metrics.get("feed") or {}
    if feed:
        summary = Table("decided customers whose messages...", "customers", title="the feed")
        for key, label in (("customers_with_repeated_keys", "repeated product keys"),
                           ("customers_with_missing_flags", "missed flags (imputed)"),
                           ("customers_with_unknown_keys", "named unknown keys")):  # fmt: skip
            summary.add_row(label, f"{feed.get(key, 0):,} of {feed.get('customers', 0):,}")
        console.print(summary)
        for key, title in (("repeated_keys", "repeated keys"), ("conflicting_keys", "conflicting keys (1 wins)"),
                           ("missing_flags", "missing flags (imputed)"), ("unknown_keys", "unknown keys (ignored)")):
            counts = feed.get(key) or {}
            if counts:
                table = Table("key", "customers", title=f"{title}: {len(counts)} keys", min_width=60)
                for name, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top]:
                    table.add_row(name, f"{count:,}")
                console.print(table)
