"""`nextbest crm ...`: the CRM funnel use case (prepare, train, evaluate, report, demo)."""

from __future__ import annotations

from pathlib import Path

import typer

crm_app = typer.Typer(help="CRM funnel: which sales action to take next for each lead.", no_args_is_help=True)


@crm_app.command("prepare")
def prepare(
    out: Path = typer.Option(..., "--out", help="Run folder for the prepared splits (created if missing)."),
    data: Path | None = typer.Option(
        None,
        "--data",
        help="SalesCRM file (.csv or .xlsx); default: found via NEXTBEST_DATA_DIR or ../shared/data.",
    ),
) -> None:
    """Load and validate the leads, split them in time (70/15/15), fit train-only statistics, write them."""
    from rich.console import Console
    from rich.table import Table

    from nextbest.data import prepare_crm

    console = Console()
    with console.status("loading, validating and splitting the leads..."):
        summary = prepare_crm(out, data_path=data)
    table = Table(title=f"CRM temporal split of {summary['source']}")
    for column in ("split", "rows", "subscribed", "first calls", "first lead date", "last lead date"):
        table.add_column(column, justify="left" if column == "split" else "right")
    for name in ("train", "val", "test"):
        period = summary["periods"][name]
        table.add_row(
            name,
            str(summary["rows"][name]),
            str(summary["subscribed"][name]),
            str(summary["first_calls"][name]),
            str(period["first"]),
            str(period["last"]),
        )
    console.print(table)
    bounds = summary["boundaries"]
    console.print(f"boundaries: train_end {bounds['train_end']}, val_end {bounds['val_end']}")
    console.print(f"leads without any date (in no split): {summary['dropped_no_date']}")
    console.print(
        f"repaired defects (cells set to missing): {summary['defect_count']}, "
        f"listed in {Path(out) / 'defects.csv'} and split.json"
    )
    console.print(f"written to {out}")
