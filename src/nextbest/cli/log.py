"""`nextbest log ...`: the decision log (served decisions joined with their outcomes) in the data lake."""

from __future__ import annotations

from pathlib import Path

import typer

log_app = typer.Typer(help="The decision log: served decisions and their outcomes, as Parquet in the lake.",
                      no_args_is_help=True)  # fmt: skip


@log_app.command("collect")
def collect(
    bootstrap_servers: str = typer.Option(..., "--bootstrap-servers", help="Kafka bootstrap servers, HOST:PORT."),
    lake: str = typer.Option(..., "--lake", help="The data lake: a local folder or s3://bucket[/prefix]."),
    table: str = typer.Option("decision_log", "--table", help="Table name in the lake's processed area."),
    token: str | None = typer.Option(None, "--token", help="Only the decisions carrying this token (default: all)."),
    out: Path | None = typer.Option(None, "--out", help="Also write the summary JSON to this file."),
) -> None:
    """Join topic_decision_log (a worker run with --log-decisions) with topic_outcome and add the rows whose uuid
    the table does not hold yet: features as served, action, propensity, policy id, reward, timestamps.

    Idempotent per uuid: run it again later to pick up late outcomes. Decisions still waiting for an outcome, and
    outcomes that applied another action (control arm, fallback), are counted, never guessed. A message with a
    missing, zero or above-one propensity (or otherwise unreadable) goes to topic_dead_letter with its reason."""
    from nextbest.data.lake import Lake
    from nextbest.stream.collect import collect_decision_log

    summary = collect_decision_log(bootstrap_servers, Lake(lake), table, token)
    if out is not None:
        summary.write(out)
    typer.echo(summary.to_json(), nl=False)
