"""`nextbest ab demo` (old spelling `nextbest demo ab`): the online A/B experiment end to end on loopback, from an
empty folder to the verdict.

Starts a memory Tansu broker (topics with 4 partitions) and the platform (``nextbest platform serve`` on a free
port, SQLite in ``OUT/platform.db``), generates the shop world in ``OUT/data`` unless it is there, trains and
exports the model (ONNX), creates the experiment (alpha 0.05, power 0.8, effect 0.7 $, sd 15 $, the coherent
sample size), runs the decision worker with the experiment's token and the shop traffic until the sample is
complete, prints the verdict and the experiment page's address, and writes ``OUT/ab_demo.json``. Every service
stops on the way out, on success, error or Ctrl-C.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

demo_app = typer.Typer(help="End-to-end demonstrations (deprecated spelling: use `nextbest ab demo`).",
                       no_args_is_help=True)


def ab_demo(
    out: Path = typer.Option(Path("runs/ab"), "--out", help="Folder for the world, model, database and results."),
    seed: int = typer.Option(0, "--seed", help="Seed of the world, the model and the traffic."),
    model_kind: str = typer.Option("gbm", "--model-kind", help="gbm | logreg | age-sex (the original as 'new')."),
    rate: float = typer.Option(2000.0, "--rate", help="Shop sessions per second."),
    customers: int = typer.Option(200_000, "--customers", help="Store customers of the training set (new world)."),
    feed: str = typer.Option("realistic", "--feed", help="How the shop writes its messages: realistic (the example "
                             "message's key set, repeated and conflicting keys, missing flags) or clean."),
) -> None:
    """Broker, platform, decision worker and shop traffic: one experiment from design to verdict."""
    from nextbest.cli.shop import progress_bar
    from nextbest.errors import NextbestError
    from nextbest.stream.broker import Broker
    from nextbest.stream.e2e import Design, prepare_model, run_experiment
    from nextbest.stream.services import PlatformService

    if model_kind not in ("gbm", "logreg", "age-sex"):
        raise NextbestError(f"--model-kind {model_kind!r}: choose gbm, logreg or age-sex")
    from nextbest.sim.shop import FeedStyle

    FeedStyle.named(feed)  # a clear error before anything starts
    start = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    typer.echo(f"preparing the shop world and the {model_kind} model in {out} ...")
    model, world = prepare_model(out, model_kind, seed, customers)
    db_url = f"sqlite:///{(out / 'platform.db').resolve()}"
    with Broker(storage="memory") as broker, PlatformService(db_url, log_dir=out / "logs") as platform:
        broker.create_topics(partitions=4)
        typer.echo(f"broker {broker.bootstrap_servers}, platform {platform.url}; running the experiment ...")
        with progress_bar() as update:
            summary = run_experiment(broker.bootstrap_servers, platform.url, model, world, Design(), seed=seed,
                                     rate=rate, log_dir=out / "logs", progress=update, feed=feed)  # fmt: skip
    summary["wall_seconds"] = time.monotonic() - start
    (out / "ab_demo.json").write_text(json.dumps(summary, indent=2))
    _print_verdict(summary, out)


@demo_app.callback()
def _old_spelling(context: typer.Context) -> None:
    """Deprecated spelling of `nextbest <use case> demo` (except `demo loop`, which spans the use case's stages)."""
    from nextbest.cli.report import deprecated_spelling

    if context.invoked_subcommand != "loop":
        deprecated_spelling(f"demo {context.invoked_subcommand}", f"{context.invoked_subcommand} demo")


@demo_app.command("loop")
def loop_demo(
    out: Path = typer.Option(Path("runs/loop"), "--out", help="Folder for the lake, models, database and results."),
    shop: Path | None = typer.Option(None, "--shop", help="Folder with the shop world (data/) and the current model "
                                     "(models/gbm.onnx), e.g. an `ab demo` folder; default OUT/shop, made if missing."),
    seed: int = typer.Option(0, "--seed", help="Seed of the exploration, the traffic and the learner."),
    explore: str = typer.Option("epsilon:0.3", "--explore", help="How the current model explores while it logs: "
                                "epsilon:E or softmax:T."),
    log_sessions: int = typer.Option(200_000, "--log-sessions", help="Sessions served (and logged) with exploration."),
    rate: float = typer.Option(5000.0, "--rate", help="Shop sessions per second."),
    learn_share: float = typer.Option(0.5, "--learn-share", help="Share of the log the new policy learns from; the "
                                      "candidates are estimated on the rest."),
    feed: str = typer.Option("realistic", "--feed", help="How the shop writes its messages: realistic or clean."),
    control: str = typer.Option("original", "--control", help="The A/B control: original (the original rule, the "
                                "platform's control arm) or logged (the current model exploring as it did when it "
                                "logged, served by a second worker)."),
) -> None:
    """The loop on loopback: the current model serves with exploration and logs every decision → the decision log
    in the lake → a policy learned off-policy → every candidate (learned, current, original rule, show-all,
    show-none) estimated by IPS, SNIPS and DR → the best in an A/B test against the control → the platform's
    verdict, next to the OPE estimate and the world's true effect. Writes OUT/loop.json and OUT/loop.html."""
    from nextbest.cli.shop import progress_bar
    from nextbest.report.loop import write_loop_report
    from nextbest.stream.loop import LoopConfig, run_loop

    config = LoopConfig(out=out, shop=shop, seed=seed, explore=explore, log_sessions=log_sessions, rate=rate,
                        learn_share=learn_share, feed=feed, control=control)  # fmt: skip
    config.check()
    with progress_bar() as update:
        result = run_loop(config, step=typer.echo, progress=update)
    page = write_loop_report(result, out)
    _print_loop(result, out)
    typer.echo(f"report: {page}")


def _print_loop(result, out: Path) -> None:
    """The candidates' estimates, the chosen policy, and OPE vs A/B vs truth, as a table."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    choice = result.choice
    table = Table(title=f"candidates on {choice.rows_evaluated:,} held-out logged decisions: value per session "
                  f"(95% intervals) and the world's truth")  # fmt: skip
    for column in ("policy", "IPS", "SNIPS", "DR", "true value", f"DR vs {choice.control}"):
        table.add_column(column, justify="left" if column == "policy" else "right")
    for name, candidate in choice.candidates.items():
        cells = [f"{e.estimate:.3f} [{e.ci[0]:.3f}, {e.ci[1]:.3f}]" for e in candidate.value.values()]
        versus = candidate.versus_control["dr"]
        table.add_row(("* " if name == choice.chosen else "") + name, *cells, f"{result.true_value[name]:.3f}",
                      f"{versus.estimate:+.3f} [{versus.ci[0]:+.3f}, {versus.ci[1]:+.3f}]")  # fmt: skip
    console.print(table)
    c = result.comparison
    console.print(f"chosen: {c.policy} (by {c.estimator}); effect over {choice.control} per session: "
                  f"OPE {c.ope_effect:+.3f} [{c.ope_ci[0]:+.3f}, {c.ope_ci[1]:+.3f}], true {c.true_effect:+.3f}")
    if result.ab is None or c.ab_effect is None:
        console.print("no A/B test: the chosen policy has no model to serve or is the control itself")
    else:
        console.print(f"A/B verdict: {result.ab.verdict}; measured {c.ab_effect:+.3f} "
                      f"[{c.ab_ci[0]:+.3f}, {c.ab_ci[1]:+.3f}] (p = {result.ab.p_value:.3g}); OPE inside the A/B "
                      f"interval: {c.ope_within_ab_ci}; truth inside the OPE interval: {c.truth_within_ope_ci}")
    console.print(f"written to {out / 'loop.json'} in {result.wall_seconds:.0f} s")


demo_app.command("ab", help="Deprecated spelling of `nextbest ab demo`.")(ab_demo)


def _print_verdict(summary: dict, out: Path) -> None:
    if summary.get("verdict") is None:
        typer.echo(f"the experiment did not complete: {summary['progress']}")
    else:
        ci = summary["ci"]
        typer.echo(f"verdict: {summary['verdict']}")
        typer.echo(
            f"effect {summary['effect']:+.3f} $ per session (CI {ci[0]:+.3f} .. {ci[1]:+.3f}), "
            f"p = {summary['p_value']:.3g}; {summary['outcomes_original']:,} original / "
            f"{summary['outcomes_new']:,} new outcomes, {summary['fallback_timeouts']} fallbacks, "
            f"{summary['token_mismatches']} token mismatches"
        )
    worker, style = summary.get("worker") or {}, summary.get("feed_style") or {}
    feed = worker.get("feed") or {}
    if feed:
        typer.echo(
            f"feed ({style.get('keys')} keys, repeat rate {style.get('repeat_rate')}): the worker decided "
            f"{worker.get('decided', 0):,} customers; {feed['customers_with_repeated_keys']:,} had repeated keys "
            f"({sum(feed['conflicting_keys'].values()):,} conflicting keys resolved to 1), "
            f"{feed['customers_with_missing_flags']:,} missing flags (imputed), "
            f"{feed['customers_with_unknown_keys']:,} unknown keys; dead letters: {worker.get('dead_lettered', 0)}"
        )
    port = summary["page"].split(":")[-1].split("/")[0]
    serve = f"nextbest platform serve --db sqlite:///{(out / 'platform.db').resolve()} --port {port}"
    typer.echo(f"experiment page: {summary['page']} (the demo's platform has stopped; browse it again: `{serve}`)")
    typer.echo(f"summary written to {out / 'ab_demo.json'} in {summary['wall_seconds']:.0f} s")
