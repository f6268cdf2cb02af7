"""`nextbest crm ...`: the CRM funnel use case (prepare, train, evaluate, report, demo)."""

from __future__ import annotations

import typer

crm_app = typer.Typer(help="CRM funnel: which sales action to take next for each lead.", no_args_is_help=True)
