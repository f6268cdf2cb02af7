"""`nextbest sessions ...`: session retention — ingest page-level data into the data lake, explore strategies in the
synthetic world, run the pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from nextbest.cli import options
from nextbest.cli.report import sessions_report
from nextbest.results import Result


class EdaWritten(Result):
    """What ``nextbest sessions eda`` prints: the page, the JSON and the figures folder it wrote."""

    html: str
    json: str
    figures: str


class ExploreWritten(Result):
    """What ``nextbest sessions explore`` prints: the log and the truth it wrote, and what the log holds."""

    log: str
    truth: str
    sessions: int
    pages: int
    purchases: int
    seed: int
    probabilities: dict[str, float]


sessions_app = typer.Typer(
    help="Session retention: page-level data into the lake (Taobao UserBehavior, the RL page log, or synthetic).",
    no_args_is_help=True,
)


@sessions_app.command("ingest")
def ingest(
    source: str = typer.Option(..., "--source", help="taobao (UserBehavior CSV) | pagelog (RL page log) | synthetic."),
    path: Path | None = typer.Option(None, "--path", help="Input file (taobao: default the shared sample)."),
    lake: str = typer.Option(..., "--lake", help="Lake root: a folder, or s3://bucket/prefix."),
    endpoint_url: str | None = typer.Option(None, "--endpoint-url", help="S3 endpoint (default: AWS_ENDPOINT_URL)."),
    key: str | None = typer.Option(None, "--key", help="S3 access key (default: AWS_ACCESS_KEY_ID)."),
    secret: str | None = typer.Option(None, "--secret", help="S3 secret key (default: AWS_SECRET_ACCESS_KEY)."),
    sessions: int = typer.Option(100_000, "--sessions", min=1, help="synthetic: sessions to generate."),
    seed: int = typer.Option(0, "--seed", help="synthetic: world seed."),
    layout: str = typer.Option("nextbest", "--layout", help="pagelog: the log's layout, nextbest | "
                               "session-retention (';', no header, first row skipped, lists in columns 9-12, churn "
                               "in 14) | a layout JSON file (separator, header, skip_rows, columns, list_separator)."),
    engine: str = options.ENGINE,
    spark_master: str = options.SPARK_MASTER,
) -> None:
    """Clean the source into the page table and write it to <lake>/processed/pages.parquet; prints a JSON summary
    (rows read, pages, sessions, malformed rows with line numbers). A Taobao file is sessionized by DuckDB, or by
    Spark with --engine spark: the same table."""
    from nextbest.data.lake import Lake
    from nextbest.pipelines.sessions import ingest_source

    summary = ingest_source(source, Lake(lake, endpoint_url=endpoint_url, key=key, secret=secret), path, sessions,
                            seed, layout, engine, spark_master)  # fmt: skip
    typer.echo(summary.to_json(), nl=False)


@sessions_app.command("eda")
def eda(
    lake: str = typer.Option(..., "--lake", help="Lake root holding processed/pages.parquet (folder or s3://)."),
    out: Path = typer.Option(..., "--out", help="Folder for eda.json, eda.html and figures/."),
    endpoint_url: str | None = typer.Option(None, "--endpoint-url", help="S3 endpoint (default: AWS_ENDPOINT_URL)."),
    key: str | None = typer.Option(None, "--key", help="S3 access key (default: AWS_ACCESS_KEY_ID)."),
    secret: str | None = typer.Option(None, "--secret", help="S3 secret key (default: AWS_SECRET_ACCESS_KEY)."),
) -> None:
    """The five features and their hypotheses: churn balance, correlations, non-zero rewards, churn by hour and
    by depth, engagement -> retention, purchase power vs session reward; PNGs, one HTML page and eda.json."""
    from nextbest.data.lake import Lake
    from nextbest.report.eda import write_eda

    source = Lake(lake, endpoint_url=endpoint_url, key=key, secret=secret)
    page = write_eda(source.read_table("pages"), out, source.path("pages"))
    written = EdaWritten(html=str(page), json=str(out / "eda.json"), figures=str(out / "figures"))
    typer.echo(written.to_json(), nl=False)


@sessions_app.command("models")
def models(
    lake: str = typer.Option(..., "--lake", help="Lake root holding processed/pages.parquet (folder or s3://)."),
    out: Path = typer.Option(..., "--out", help="Folder for models.json (scratch vs scikit-learn) and models.pkl."),
    seed: int = typer.Option(0, "--seed", help="Seed of the session split and the models."),
    endpoint_url: str | None = typer.Option(None, "--endpoint-url", help="S3 endpoint (default: AWS_ENDPOINT_URL)."),
) -> None:
    """Churn classifier (F1, PR-AUC) and value regressor (RMSE, MAE): from-scratch gradient descent, scikit-learn
    and LightGBM on the same session split, with fit times."""
    from rich.console import Console
    from rich.table import Table

    from nextbest.data.lake import Lake
    from nextbest.models.sessions import SessionModels
    from nextbest.pipelines.sessions import fit_and_save_models

    written = fit_and_save_models(Lake(lake, endpoint_url=endpoint_url).read_table("pages"), out, seed)
    table = SessionModels.load(written["json"])
    test_pages = f"{table.split.test_pages:,}" if table.split else "n/a"
    view = Table(title=f"scratch vs scikit-learn vs LightGBM ({test_pages} test pages)")
    for column in ("model", "churn F1", "churn PR-AUC", "churn fit s", "value RMSE", "value MAE", "value fit s"):
        view.add_column(column, justify="left" if column == "model" else "right")
    for name, c in table.churn.items():
        v = table.value[name]
        view.add_row(name, f"{c.f1:.4f}", f"{c.pr_auc:.4f}", f"{c.fit_seconds:.2f}", f"{v.rmse:.4f}", f"{v.mae:.4f}",
                     f"{v.fit_seconds:.2f}")  # fmt: skip
    Console().print(view)


@sessions_app.command("pipeline")
def pipeline(
    source: str = typer.Option("synthetic", "--source", help="taobao (UserBehavior CSV) | pagelog | synthetic."),
    path: str | None = typer.Option(None, "--path", help="Input file (taobao: default the shared sample)."),
    lake: str = typer.Option("runs/sessions/lake", "--lake", help="Lake root: a folder, or s3://bucket/prefix."),
    out: Path = typer.Option(Path("runs/sessions"), "--out", help="Run folder: pipeline.json, eda/, models/, "
                             "agent/, report.html."),  # fmt: skip
    sessions: int = typer.Option(20_000, "--sessions", min=1, help="synthetic: sessions to generate."),
    seed: int = typer.Option(0, "--seed", help="Seed of the data, the split, the models and the agents."),
    simulator_models: str = typer.Option("sklearn", "--simulator-models",
                                         help="Which fitted churn/value pair drives the simulator: scratch | "
                                              "sklearn | gbm."),  # fmt: skip
    q_episodes: int = typer.Option(200_000, "--q-episodes", min=1, help="Q-learning training sessions."),
    ppo_timesteps: int = typer.Option(1_000_000, "--ppo-timesteps", min=0, help="PPO training pages (0: no PPO)."),
    eval_sessions: int = typer.Option(100_000, "--eval-sessions", min=1, help="Fresh sessions per policy evaluation."),
    strategies: Path | None = typer.Option(None, "--strategies", help="JSON file of page strategies and their "
                                           "assumed effects: {name: {engagement, buy, price, power_sensitivity, "
                                           "fatigue}} (default: feed, mixed, discount)."),  # fmt: skip
    strategy_log: Path | None = typer.Option(None, "--strategy-log", help="Exploration log (CSV or Parquet, one row "
                                             "per page: session_id, page_id, hour, purchase_power, strategy, "
                                             "propensity, engagement, bought, spend), pages served under randomly "
                                             "chosen strategies: the agent step then ESTIMATES each strategy's "
                                             "engagement, buy and price multipliers from it (relative to the "
                                             "strategy whose multipliers are 1, e.g. mixed; 95% session-bootstrap "
                                             "intervals) instead of assuming them; power sensitivity and fatigue "
                                             "stay assumed. `sessions explore` writes one."),  # fmt: skip
    layout: str = typer.Option("nextbest", "--layout", help="pagelog: nextbest | session-retention | a layout "
                               "JSON file (see `sessions ingest --help`)."),
    steps: str = typer.Option(",".join(("ingest", "features", "eda", "models", "agent", "report")), "--steps",
                              help="Comma-separated steps to run, in order."),  # fmt: skip
    force: bool = typer.Option(False, "--force", help="Run every step even when its inputs did not change."),
    engine: str = options.ENGINE,
    spark_master: str = options.SPARK_MASTER,
    endpoint_url: str | None = typer.Option(None, "--endpoint-url", help="S3 endpoint (default: AWS_ENDPOINT_URL)."),
    key: str | None = typer.Option(None, "--key", help="S3 access key (default: AWS_ACCESS_KEY_ID)."),
    secret: str | None = typer.Option(None, "--secret", help="S3 secret key (default: AWS_SECRET_ACCESS_KEY)."),
    mlflow: str | None = options.MLFLOW,
) -> None:
    """ingest -> features -> eda -> models -> agent -> report as named, resumable steps: a step whose settings and
    inputs did not change since the run recorded in <out>/pipeline.json is skipped. Prints pipeline.json's summary."""
    from rich.console import Console

    from nextbest.pipelines.sessions import SessionPipelineConfig, run_pipeline
    from nextbest.tracking import check_server

    config = SessionPipelineConfig(source=source, lake=lake, out=out, path=path, sessions=sessions, seed=seed,
                                   simulator_models=simulator_models, q_episodes=q_episodes,
                                   ppo_timesteps=ppo_timesteps, eval_sessions=eval_sessions,
                                   strategies=str(strategies) if strategies else None,
                                   strategy_log=str(strategy_log) if strategy_log else None, layout=layout,
                                   engine=engine, spark_master=spark_master,
                                   storage={"endpoint_url": endpoint_url, "key": key, "secret": secret})  # fmt: skip
    console = Console(stderr=True)
    status = console.status("starting")

    def progress(step: str, state: str) -> None:
        if state == "checking":
            status.update(f"step {step}: running (skipped when unchanged)")
        elif state.startswith("working: "):
            status.update(f"step {step}: {state.removeprefix('working: ')}")
        else:
            console.print(f"step {step}: {state}")

    check_server(mlflow)
    with status:
        record = run_pipeline(config, tuple(s.strip() for s in steps.split(",") if s.strip()), force, progress)
    typer.echo(record.summary(out).to_json(), nl=False)
    if mlflow:
        _track_pipeline(mlflow, config)


def _track_pipeline(uri: str, config) -> None:
    """The pipeline's MLflow run: its configuration (no secrets), the figures of the models, agent and report
    JSON, and the run folder's reports and figures (not the lake)."""
    from nextbest.pipelines.sessions import config_as_json
    from nextbest.tracking import record_run

    out = config.out
    figures = {name: json.loads(path.read_text()) for name, path in (
        ("models", out / "models" / "models.json"), ("agent", out / "agent" / "agent.json"),
        ("report", out / "report.json")) if path.is_file()}  # fmt: skip
    artifacts = [out / name for name in ("pipeline.json", "report.html", "report.json", "figures", "eda", "agent")]
    record_run(uri, "sessions", f"sessions pipeline {config.source}", config_as_json(config), figures,
               [path for path in artifacts if path.exists()] + sorted((out / "models").glob("*.json")))  # fmt: skip


@sessions_app.command("explore")
def explore(
    out: Path = typer.Option(..., "--out", help="The exploration log to write, LOG.parquet or LOG.csv; the true "
                             "strategies go next to it as LOG.truth.json."),  # fmt: skip
    sessions: int = typer.Option(5_000, "--sessions", min=1, help="Sessions to play with random strategies."),
    seed: int = typer.Option(0, "--seed", help="Seed of the synthetic world (as `sessions pipeline --seed`) and of "
                             "the random strategies."),  # fmt: skip
    strategies: Path | None = typer.Option(None, "--strategies", help="JSON file of the world's TRUE strategies "
                                           "(format of `sessions pipeline --strategies`; default: a built-in true "
                                           "set unlike the assumed defaults: feed engagement 1.4, buy 0.7, price "
                                           "1.1; mixed 1; discount engagement 0.85, buy 2.0, price 0.7, power "
                                           "sensitivity 0.8, fatigue 0.5)."),  # fmt: skip
    probabilities: str | None = typer.Option(None, "--probabilities", help="Comma-separated probability of each "
                                             "strategy, in the strategies' order, each > 0 and summing to 1 "
                                             "(default: uniform)."),  # fmt: skip
) -> None:
    """Serve random page strategies in the synthetic world (the simulator learned from 20,000 synthetic sessions of
    --seed, with the true strategies) and write the exploration log with each page's propensity, plus the truth.
    Feed the log to `sessions pipeline --strategy-log` to estimate the strategies instead of assuming them."""
    import json

    from nextbest.envs.sessions import default_session_simulator
    from nextbest.errors import NextbestError
    from nextbest.sim.session_sim import read_strategies
    from nextbest.sim.strategy_effects import (
        TRUE_STRATEGIES,
        explore_pages,
        logging_table,
        with_strategies,
        write_strategy_log,
    )

    truth = read_strategies(strategies) if strategies else dict(TRUE_STRATEGIES)
    shares = None
    if probabilities is not None:
        try:
            shares = [float(part) for part in probabilities.split(",")]
        except ValueError:
            raise NextbestError(f"--probabilities {probabilities!r}: give numbers separated by commas") from None
        if len(shares) != len(truth):
            raise NextbestError(f"--probabilities: give {len(truth)} (one per strategy: {', '.join(truth)})")
    if out.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise NextbestError(f"{out}: give a .parquet or .csv path for the exploration log")
    world = with_strategies(default_session_simulator(sessions=20_000, seed=seed), truth)
    log = explore_pages(world, sessions, seed, shares)
    written = write_strategy_log(log, out)
    truth_path = out.with_name(f"{out.stem}.truth.json")
    truth_path.write_text(json.dumps({name: s.to_dict() for name, s in truth.items()}, indent=2) + "\n")
    chosen = logging_table(shares, len(truth))[0]
    summary = ExploreWritten(log=str(written), truth=str(truth_path), sessions=sessions, pages=len(log),
                             purchases=int(log.bought.sum()), seed=seed,
                             probabilities={name: float(p) for name, p in zip(truth, chosen)})  # fmt: skip
    typer.echo(summary.to_json(), nl=False)


sessions_app.command("report")(sessions_report)
