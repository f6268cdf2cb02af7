"""`nextbest report ...`: the old, verb-first spelling of the reports (`nextbest <use case> report` is the one).

``nextbest report sessions`` keeps working and says that ``nextbest sessions report`` is the spelling now.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

report_app = typer.Typer(help="Final HTML reports (deprecated spelling: use `nextbest <use case> report`).",
                         no_args_is_help=True)


def deprecated_spelling(old: str, new: str) -> None:
    """One line on stderr: the old command still works, the new spelling is the one to use."""
    typer.secho(f"note: `nextbest {old}` is now `nextbest {new}`; the old spelling keeps working for now.",
                fg="yellow", err=True)


def sessions_report(
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


@report_app.callback()
def _old_spelling(context: typer.Context) -> None:
    """Deprecated spelling of `nextbest <use case> report`."""
    deprecated_spelling(f"report {context.invoked_subcommand}", f"{context.invoked_subcommand} report")


report_app.command("sessions", help="Deprecated spelling of `nextbest sessions report`.")(sessions_report)
