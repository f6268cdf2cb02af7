"""`nextbest stream ...`: the real-time decision worker on Kafka."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

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
    metrics_file: Path | None = typer.Option(None, "--metrics-file", help="JSON counters, rewritten every second."),
    max_seconds: float | None = typer.Option(None, "--max-seconds", help="Stop after this long (default: never)."),
) -> None:
    """Decide for every customer whose two halves arrive; invalid input goes to topic_dead_letter with its reason.

    Input offsets are committed only after the decisions they produced are acknowledged, so a crash loses
    nothing (a replay can repeat a decision; keep the first per uuid). Stop with Ctrl-C or SIGTERM.
    """
    from nextbest.stream.worker import DecisionWorker, WorkerConfig

    config = WorkerConfig(
        bootstrap_servers=bootstrap_servers, model=model, token=token, group_id=group_id,
        join_ttl=parse_duration(join_ttl), batch_size=batch_size, metrics_file=metrics_file,
    )  # fmt: skip
    worker = DecisionWorker(config, log=lambda line: print(line, file=sys.stderr, flush=True))
    print(json.dumps({"worker": "started", "model": str(model), "group_id": group_id}), file=sys.stderr, flush=True)
    worker.run(max_seconds=max_seconds)
    typer.echo(json.dumps(worker.metrics()))
