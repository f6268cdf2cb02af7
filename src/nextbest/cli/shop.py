"""`nextbest shop ...`: the shop world with ground truth (customers, hidden propensity, session revenue)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from nextbest.sim.shop import World

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


@shop_app.command("messages")
def messages(
    out: Path = typer.Option(..., "--out", help="Folder for demographic.jsonl and historic.jsonl."),
    customers: int = typer.Option(1000, "--customers", min=1, help="Customers to write."),
    seed: int = typer.Option(0, "--seed", help="Seed of the customers and of the feed's quirks."),
    data: Path | None = typer.Option(None, "--data", help="Folder with world.json (default: the world of seed 0)."),
    feed: str = typer.Option("realistic", "--feed", help="realistic (the example message's key set, repeated and "
                             "conflicting keys, missing flags) or clean."),
) -> None:
    """Write customers' two messages as the feed writes them, one raw JSON message per line (repeated keys kept),
    to test a consumer against the real feed's quirks; prints what the feed did."""
    from dataclasses import asdict

    import numpy as np

    from nextbest.sim.shop import FeedStyle

    style = FeedStyle.named(feed)
    world = traffic_world(data)
    sample = world.sample(customers, stream=4_000_000 + seed, uuid_start=10**12)
    demographic, historic = world.feed_messages(sample, style, np.random.default_rng([seed, 5]))
    out.mkdir(parents=True, exist_ok=True)
    (out / "demographic.jsonl").write_bytes(b"\n".join(demographic) + b"\n")
    (out / "historic.jsonl").write_bytes(b"\n".join(historic) + b"\n")
    typer.echo(json.dumps({"out": str(out), "customers": customers, "feed": asdict(style)}, indent=2))


def traffic_world(data: Path | None) -> World:
    """The shop world of ``DATA/world.json``, or ``World(0)`` without a data folder."""
    from nextbest.sim.shop import World, load_world_meta, world_from_config

    return World(0) if data is None else world_from_config(load_world_meta(data)["world"])


@contextlib.contextmanager
def progress_bar() -> Iterator[Callable[[int, dict], None]]:
    """A rich progress bar of the platform's per-arm progress; yields the ``progress`` callback of run_traffic."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("outcomes (smaller arm)", total=None)

        def update(sent: int, progress: dict) -> None:
            if "planned" in progress:  # serving without an experiment
                bar.update(task, completed=progress["outcomes"], total=progress["planned"],
                           description=f"sessions {sent:,}; outcomes")  # fmt: skip
                return
            done = min(progress["original"], progress["new"])
            bar.update(task, completed=done, total=progress["required_per_arm"],
                       description=f"sessions {sent:,}; outcomes (smaller arm)")  # fmt: skip

        yield update


@shop_app.command("traffic")
def traffic(
    bootstrap_servers: str = typer.Option(..., "--bootstrap-servers", help="Kafka bootstrap servers, HOST:PORT."),
    platform: str = typer.Option(..., "--platform", help="Base URL of the experiment platform."),
    experiment: int = typer.Option(..., "--experiment", help="Experiment id on the platform."),
    token: str = typer.Option(..., "--token", help="The experiment's write token."),
    sessions: int = typer.Option(100_000, "--sessions", help="Sessions at most (stops earlier once complete)."),
    rate: float = typer.Option(2000.0, "--rate", help="Sessions per second."),
    seed: int = typer.Option(0, "--seed", help="Seed of the customers, the feed's order and the revenue draws."),
    data: Path | None = typer.Option(None, "--data", help="Folder with world.json (default: the world of seed 0)."),
    malformed_rate: float = typer.Option(0.0, "--malformed-rate", help="Share of customers with a broken half."),
    feed: str = typer.Option("realistic", "--feed", help="How historic messages are written: realistic (the "
                             "example message's key set, 13% of keys repeated, 15% of repeats conflicting, 1% more "
                             "flags missing, keys shuffled) or clean (every flag once, in order)."),
    key_set: str | None = typer.Option(None, "--key-set", help="Override the feed's key set: all | example."),
    repeat_rate: float | None = typer.Option(None, "--repeat-rate", help="Override: chance a key is written twice."),
    conflict_share: float | None = typer.Option(None, "--conflict-share",
                                                help="Override: share of repeats whose second record differs."),
    missing_rate: float | None = typer.Option(None, "--missing-rate",
                                              help="Override: chance a flag of the key set is left out."),
    max_delay: float = typer.Option(0.05, "--max-delay", help="Largest delay between a session's halves (s)."),
    decision_timeout: float = typer.Option(5.0, "--decision-timeout", help="Wait for a decision before falling back."),
    out: Path | None = typer.Option(None, "--out", help="JSON file for the summary."),
) -> None:
    """Play shop sessions into Kafka: the platform assigns arms, the original system or the pipeline decides, the
    world's ground truth draws the revenue, and the outcomes go to the platform until the sample is complete."""
    from nextbest.stream.traffic import TrafficConfig

    config = TrafficConfig(
        bootstrap_servers=bootstrap_servers, platform=platform, experiment=experiment, token=token,
        sessions=sessions, rate=rate, seed=seed, malformed_rate=malformed_rate, max_delay=max_delay,
        decision_timeout=decision_timeout, feed=feed, key_set=key_set, repeat_rate=repeat_rate,
        conflict_share=conflict_share, missing_rate=missing_rate,
    )  # fmt: skip
    config.check()
    from nextbest.stream.traffic import run_traffic

    with progress_bar() as update:
        summary = run_traffic(config, traffic_world(data), progress=update)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(summary, indent=2))
    typer.echo(json.dumps(summary, indent=2))
