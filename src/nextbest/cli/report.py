"""`nextbest report ...`: the final HTML reports of the studies."""

from __future__ import annotations

import json
from pathlib import Path

import typer

report_app = typer.Typer(help="Final HTML reports", no_args_is_help=True)


@report_app.command("sessions")
def sessions(
    eda: Path = typer.Option(..., "--eda", help="Folder with eda.json and figures/ (`nextbest sessions eda`)."),
    models: Path = typer.Option(..., "--models", help="Folder with models.json (`nextbest sessions models`)."),
    agent: Path = typer.Option(..., "--agent", help="agent.json: the agents vs baselines comparison."),
    out: Path = typer.Option(..., "--out", help="The HTML file; report.json and figures/ are written next to it."),
) -> None:
    """The session retention report: problem, data and method, scratch vs scikit-learn vs LightGBM, agents vs
    baselines, conclusion; prints the HTML and JSON paths as one JSON line."""
    from nextbest.report.sessions import write_sessions_report

    page = write_sessions_report(eda, models, agent, out)
    typer.echo(json.dumps({"html": str(page), "json": str(page.parent / "report.json")}))
