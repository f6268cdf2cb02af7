"""Entry point of the `nextbest` command: sub-commands per use case."""

from __future__ import annotations

import sys

import typer

from nextbest.cli.ab import ab_app
from nextbest.cli.broker import broker_app
from nextbest.cli.crm import crm_app
from nextbest.cli.demo import demo_app
from nextbest.cli.log import log_app
from nextbest.cli.ope import ope_app
from nextbest.cli.platform import platform_app
from nextbest.cli.report import report_app
from nextbest.cli.sessions import sessions_app
from nextbest.cli.shop import shop_app
from nextbest.cli.stream import stream_app
from nextbest.cli.target import target_app
from nextbest.cli.uplift import uplift_app
from nextbest.errors import NextbestError

app = typer.Typer(
    help="nextbest: learn a simulator from logged data, optimize a policy, evaluate it honestly.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(crm_app, name="crm")
app.add_typer(ab_app, name="ab")
app.add_typer(platform_app, name="platform")
app.add_typer(shop_app, name="shop")
app.add_typer(target_app, name="target")
app.add_typer(uplift_app, name="uplift")
app.add_typer(ope_app, name="ope")
app.add_typer(log_app, name="log")
app.add_typer(broker_app, name="broker")
app.add_typer(stream_app, name="stream")
app.add_typer(sessions_app, name="sessions")
app.add_typer(demo_app, name="demo")
app.add_typer(report_app, name="report")


def _print_version(value: bool) -> None:
    if value:
        from nextbest import __version__

        typer.echo(f"nextbest {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """nextbest: learn a simulator from logged data, optimize a policy, evaluate it honestly."""


def main() -> None:
    """Run the CLI; user mistakes end with one red line and exit code 2, never a traceback."""
    try:
        app(standalone_mode=False)
    except NextbestError as error:
        typer.secho(f"error: {error}", fg="red", err=True)
        sys.exit(2)
    except typer.Abort:
        sys.exit(130)
    except Exception as error:  # usage errors (click's, or the click that typer vendors) carry their exit codes
        if callable(getattr(error, "show", None)) and isinstance(getattr(error, "exit_code", None), int):
            error.show()
            sys.exit(error.exit_code)
        raise
