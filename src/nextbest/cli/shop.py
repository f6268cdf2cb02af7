"""`nextbest shop ...`: the shop world with ground truth (customers, hidden propensity, session revenue)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

shop_app = typer.Typer(
    help="Shop world: generate the store's training data with a known ground truth.", no_args_is_help=True
)


@shop_app.command("generate")
def generate(
    customers: int = typer.Option(500_000, "--customers", help="Store customers in the training set (train + test)."),
    seed: int = typer.Option(0, "--seed", help="World seed: the same seed gives the same data."),
    out: Path = typer.Option(..., "--out", help="Folder for train.parquet, test.parquet and world.json."),
    test_fraction: float = typer.Option(0.2, "--test-fraction", help="Share of customers in the test split."),
) -> None:
    """Write the store's training set (features + `bought`) as Parquet, and world.json to rebuild the world."""
    from nextbest.errors import NextbestError
    from nextbest.sim.shop import World, write_world_data

    if customers < 100:
        raise NextbestError(f"--customers must be at least 100, got {customers}")
    if not 0 < test_fraction < 1:
        raise NextbestError(f"--test-fraction must be in (0, 1), got {test_fraction}")
    meta = write_world_data(World(seed), out, customers, test_fraction)
    shown = {key: meta[key] for key in ("train_rows", "test_rows", "ground_truth")}
    typer.echo(json.dumps({"out": str(out), **shown}, indent=2))
