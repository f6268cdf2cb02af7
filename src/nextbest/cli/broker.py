"""`nextbest broker ...`: run a local Kafka-compatible broker (Tansu) with the pipeline's topics.

`broker start` prints one JSON line (bootstrap servers, storage, topics, S3 endpoint when durable) once the
broker answers, then stays in the foreground until Ctrl-C or SIGTERM and stops everything it started.
"""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from types import FrameType

import typer

broker_app = typer.Typer(help="Local Kafka-compatible broker (Tansu) for the decision pipeline.", no_args_is_help=True)


@broker_app.command("start")
def start(
    port: int = typer.Option(0, "--port", help="Kafka port on 127.0.0.1; 0 picks a free one."),
    storage: str = typer.Option(
        "memory", "--storage", help="memory (fast, nothing kept) or durable (S3 on SeaweedFS)."
    ),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="Folder for logs and durable data; temporary if unset."
    ),
    partitions: int = typer.Option(4, "--partitions", min=1, help="Partitions per topic."),
    s3_port: int = typer.Option(0, "--s3-port", help="S3 port of the durable store; 0 picks a free one."),
) -> None:
    """Start the broker, create the topics, print one JSON line, and run until Ctrl-C or SIGTERM."""
    from nextbest.cli.platform import ensure_port_free
    from nextbest.stream import Broker

    for chosen in (port, s3_port):
        if chosen:
            ensure_port_free("127.0.0.1", chosen)
    broker = Broker(port=port or None, storage=storage, data_dir=data_dir, s3_port=s3_port or None)
    stopped = threading.Event()
    _on_signals(stopped)
    with broker:
        topics = broker.create_topics(partitions)
        typer.echo(json.dumps(_summary(broker, topics)))
        stopped.wait()


def _summary(broker, topics: list[str]) -> dict[str, object]:
    summary: dict[str, object] = {
        "bootstrap_servers": broker.bootstrap_servers,
        "storage": broker.storage,
        "topics": topics,
        "data_dir": str(broker.data_dir),
    }
    if broker.objectstore is not None:
        summary["s3_endpoint"] = broker.objectstore.endpoint_url
        summary["s3_bucket"] = broker.objectstore.bucket
    return summary


def _on_signals(stopped: threading.Event) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
