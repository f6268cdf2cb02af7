"""`nextbest report ...`: the report of the learning loop, and the old, verb-first spelling of the use cases'
reports (`nextbest <use case> report` is the one).

``nextbest report loop`` writes the HTML page of a `nextbest demo loop` run (its loop.json): the loop spans the
use cases' stages, so it has no use-case group of its own. ``nextbest report sessions`` keeps working and says
that ``nextbest sessions report`` is the spelling now.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

report_app = typer.Typer(help="Final HTML reports: `report loop`; the others are deprecated spellings of "
                         "`nextbest <use case> report`.", no_args_is_help=True)


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


def loop_report(
    result: Path = typer.Option(..., "--result", help="loop.json of `nextbest demo loop`."),
    out: Path = typer.Option(..., "--out", help="Folder for loop.html, loop_report.json and figures/."),
) -> None:
    """The learning loop's report: what the exploration logged, every candidate's OPE estimates with intervals
    next to the truth, weight diagnostics, and OPE vs A/B vs truth of the chosen policy; prints the HTML and JSON
    paths as one JSON line."""
    from nextbest.report.loop import load_loop_result, write_loop_report

    page = write_loop_report(load_loop_result(result), out, source=result)
    typer.echo(json.dumps({"html": str(page), "json": str(page.parent / "loop_report.json")}))


@report_app.callback()
def _old_spelling(context: typer.Context) -> None:
    """Deprecated spelling of `nextbest <use case> report` (except `report loop`, which spans the use cases)."""
    if context.invoked_subcommand != "loop":
        deprecated_spelling(f"report {context.invoked_subcommand}", f"{context.invoked_subcommand} report")


report_app.command("sessions", help="Deprecated spelling of `nextbest sessions report`.")(sessions_report)
report_app.command("loop", help="The learning loop's report (HTML) from the loop.json of `nextbest demo loop`: "
                   "candidates' OPE estimates vs truth, weight diagnostics, OPE vs A/B vs truth.")(loop_report)
