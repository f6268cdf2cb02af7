"""`nextbest crm ...`: the CRM funnel use case (prepare, train, evaluate, report, demo)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from nextbest.cli import options

if TYPE_CHECKING:
    from nextbest.evaluation.crm_results import CRMEvaluation

crm_app = typer.Typer(help="CRM funnel: which sales action to take next for each lead.", no_args_is_help=True)


@crm_app.command("prepare")
def prepare(
    out: Path = typer.Option(..., "--out", help="Run folder for the prepared splits (created if missing)."),
    data: Path | None = typer.Option(
        None,
        "--data",
        help="The export (.csv or .xlsx) the spec describes; default: the shared SalesCRM file, found via "
        "NEXTBEST_DATA_DIR or ../shared/data.",
    ),
    spec: Path | None = typer.Option(
        None,
        "--spec",
        help="Funnel spec (TOML, docs/funnel_spec.md) describing the export's steps, actions and columns; "
        "default: SalesCRM's. Train, evaluate and report read it from the prepared folder.",
    ),
) -> None:
    """Load and validate the leads, split them in time (70/15/15), fit train-only statistics, write them."""
    from rich.console import Console
    from rich.table import Table

    from nextbest.data import prepare_crm
    from nextbest.data.funnel_spec import load_funnel_spec

    console = Console()
    funnel = load_funnel_spec(spec) if spec is not None else None
    if funnel is not None and data is None:
        raise typer.BadParameter("a spec of your own needs the export it describes: give --data", param_hint="--data")
    with console.status("loading, validating and splitting the leads..."):
        summary = prepare_crm(out, data_path=data, spec=funnel)
    table = Table(title=f"{summary.funnel} temporal split of {summary.source}")
    conversion, first_key = summary.conversion_step, summary.first_key_step or "first key step"
    for column in ("split", "rows", conversion, first_key, "first lead date", "last lead date"):
        table.add_column(column, justify="left" if column == "split" else "right")
    for name in ("train", "val", "test"):
        period = summary.periods[name]
        table.add_row(
            name,
            str(summary.rows[name]),
            str(summary.subscribed[name]),
            str(summary.first_calls[name]),
            str(period["first"]),
            str(period["last"]),
        )
    console.print(table)
    bounds = summary.boundaries
    console.print(f"boundaries: train_end {bounds['train_end']}, val_end {bounds['val_end']}")
    console.print(f"leads without any date (in no split): {summary.dropped_no_date}")
    console.print(
        f"repaired defects (cells set to missing): {summary.defect_count}, "
        f"listed in {Path(out) / 'defects.csv'} and split.json"
    )
    console.print(f"written to {out}")


@crm_app.command("score")
def score(
    out: Path = typer.Option(..., "--out", help="CSV of the open leads, best first (rank, id, covariates, current "
                             "step, score with its interval, next action); a JSON summary goes next to it."),
    data: Path | None = typer.Option(None, "--data", help="The export whose open leads to rank (.csv or .xlsx); "
                                     "default: the shared SalesCRM file."),
    prepared: Path | None = typer.Option(None, "--prepared", help="A folder from `crm prepare` whose train leads "
                                         "fit the score; default: the export itself, prepared in a temp folder."),
    spec: Path | None = typer.Option(None, "--spec", help="Funnel spec of the export (default: the prepared "
                                     "folder's, else SalesCRM's)."),
    top: int = typer.Option(10, "--top", min=0, help="Leads to print (all are written)."),
    bootstrap: int = typer.Option(100, "--bootstrap", min=10, help="Refits of the model for each score's interval."),
    seed: int = typer.Option(0, "--seed", help="Seed of the refits."),
) -> None:
    """Rank the open leads (neither converted nor dropped) by P(conversion | what is known now), from the funnel
    model fitted on train leads, with a 95% interval and the funnel's next action; for daily use."""
    import json

    from rich.console import Console
    from rich.table import Table

    from nextbest.evaluation.crm_score import score_open_leads

    folder, export = _folder_and_export(prepared, data, spec)
    table = score_open_leads(folder, export, n_boot=bootstrap, seed=seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    summary = {"leads": int(len(export)), "open_leads": int(len(table)), "funnel": folder.spec.name,
               "fitted_on_train_leads": int(len(folder.train)), "csv": str(out),
               "next_actions": table["next_action"].value_counts().to_dict(),
               "score_mean": float(table["score"].mean())}  # fmt: skip
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    view = Table(title=f"{len(table):,} open leads of {len(export):,}, best first (P(conversion), 95% interval)")
    for column in ("rank", folder.spec.export.id, *folder.spec.covariates, "current_step", "score", "next_action"):
        view.add_column(column)
    for row in table.head(top).itertuples(index=False):
        entry = row._asdict()
        view.add_row(str(entry["rank"]), str(entry[folder.spec.export.id]),
                     *(str(entry[c]) for c in folder.spec.covariates), str(entry["current_step"]),
                     f"{entry['score']:.2%} [{entry['score_low']:.2%}, {entry['score_high']:.2%}]",
                     str(entry["next_action"]))  # fmt: skip
    Console().print(view)
    typer.echo(f"written to {out} and {out.with_suffix('.json')}")


@crm_app.command("pilot")
def pilot(
    out: Path = typer.Option(..., "--out", help="pilot.json: the design (arms, sizes, detectable lift, duration)."),
    data: Path | None = typer.Option(None, "--data", help="The export (default: the shared SalesCRM file)."),
    prepared: Path | None = typer.Option(None, "--prepared", help="A folder from `crm prepare` (default: the "
                                         "export prepared in a temp folder)."),
    spec: Path | None = typer.Option(None, "--spec", help="Funnel spec of the export."),
    budget: int | None = typer.Option(None, "--budget", min=1, help="Leads the pilot may use (default: the open "
                                      "leads of the chosen segment)."),
    segment: str | None = typer.Option(None, "--segment", help="Run the pilot inside one segment, e.g. "
                                       "country=USA,education=B27 (default: every open lead)."),
    alpha: float = typer.Option(0.05, "--alpha", help="Significance level (two-sided)."),
    power: float = typer.Option(0.8, "--power", help="Power at the target rate."),
    assignments: Path | None = typer.Option(None, "--assignments", help="Also write the pilot's leads with their "
                                            "arm (stratified by segment) to this CSV."),
    seed: int = typer.Option(0, "--seed", help="Seed of the assignment."),
    platform: str | None = typer.Option(None, "--platform", help="Also create the pilot on the experiment platform "
                                        "at this URL (e.g. http://127.0.0.1:8000) as a binary conversion "
                                        "experiment; prints its id and token and keeps them in pilot.json."),
) -> None:
    """Design the randomized test that measures what the export cannot: the uncertain offer (SalesCRM: the first
    call) against the process as it runs, on conversion. Sample size per arm at the spec's target rate, the
    smallest lift the budget can detect, the duration at the team's lead volume, and a stratified assignment.

    With --platform the pilot is created on the experiment platform (metric binary; arm "new" = treatment,
    "original" = control) before anything is written; an unreachable platform or one that refuses the design
    ends with one line naming the URL and the reason (exit 2), and nothing is written."""
    import math
    from urllib.parse import urlsplit

    from nextbest.errors import NextbestError
    from nextbest.evaluation.crm_pilot import (
        PLATFORM_ARMS,
        PilotPlatform,
        design_pilot,
        leads_per_week,
        platform_request,
        select_segments,
        stratified_assignment,
    )
    from nextbest.evaluation.crm_score import score_open_leads
    from nextbest.sim.journeys import journeys_from_frame

    url = platform.strip().rstrip("/") if platform is not None else None
    if url is not None:
        parts = urlsplit(url)
        try:
            usable = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
        except ValueError:  # a port that is not a number from 0 to 65535
            usable = False
        if not usable:
            raise NextbestError(f"--platform {platform!r}: give the platform's address, e.g. http://127.0.0.1:8000")
    folder, export = _folder_and_export(prepared, data, spec)
    leads = select_segments(score_open_leads(folder, export, n_boot=10, seed=seed), folder.spec.covariates, segment)
    baseline = journeys_from_frame(folder.train, folder.spec).rate(folder.spec.conversion_step)
    design = design_pilot(folder.spec, baseline, budget or len(leads),
                          leads_per_week(folder.split.rows, folder.split.periods), alpha, power)  # fmt: skip
    if design.detectable_lift_at_budget is None:
        raise NextbestError(f"a budget of {design.budget:,} leads cannot detect any lift: {design.budget // 2:,} "
                            f"leads per arm expect {design.budget // 2 * baseline:.2g} conversions at the "
                            f"{baseline:.2%} rate, a test of two proportions needs at least 5 per arm "
                            f"({math.ceil(5 / baseline):,} leads per arm); the target needs {design.total:,} leads")
    if url is not None:
        try:
            from nextbest.stream.traffic import PlatformClient

            client = PlatformClient(url, timeout=10.0)
        except ImportError as error:
            raise NextbestError(f"--platform needs the platform extra: pip install 'nextbest[platform]' ({error})"
                                ) from None  # fmt: skip
        request = platform_request(design, folder.spec.name, segment)
        try:
            created = client.create_experiment(request)
            experiment_id, token = int(created["id"]), str(created["token"])
        except NextbestError as error:  # unreachable, or a 4xx: PlatformClient's one line, with the URL
            reason = " ".join(str(error).split())
            if reason.startswith("experiment 0 does not exist"):  # 404 on POST /api/experiments: no platform there
                reason = "no experiment platform answers there (POST /api/experiments: 404)"
            raise NextbestError(reason if url in reason else f"the platform at {url}: {reason}") from None
        except (ValueError, KeyError, TypeError) as error:  # 2xx that is not the platform's {id, token, ...}
            raise NextbestError(f"the platform at {url} did not answer POST /api/experiments with an experiment "
                                f"({type(error).__name__}: {error})") from None  # fmt: skip
        finally:
            client.close()
        design.platform = PilotPlatform(
            url=url, experiment_id=experiment_id, token=token, name=request["name"], arms=dict(PLATFORM_ARMS),
            required_sample_size=int(created.get("required_sample_size", design.per_arm)),
            achieved_power=float(created.get("achieved_power", design.achieved_power)),
            conversions=f"{url}/api/experiments/{experiment_id}/conversions",
        )  # fmt: skip
    design.write(out)
    if assignments is not None:
        chosen = leads.head(min(design.budget, len(leads)))
        arms = stratified_assignment(chosen[list(folder.spec.covariates)].astype(str).agg("|".join, axis=1), seed)
        platform_arms = {"platform_arm": [PLATFORM_ARMS[arm] for arm in arms]} if design.platform else {}
        chosen.assign(arm=arms, **platform_arms).to_csv(assignments, index=False)
    verdict = ("enough" if design.budget >= design.total else "not enough")
    typer.echo(f"pilot: {design.treatment} vs {design.control}; outcome: {design.outcome}")
    typer.echo(f"baseline {design.baseline_rate:.2%} -> target {design.target_rate:.2%}: {design.per_arm:,} leads "
               f"per arm ({design.total:,} in all, power {design.achieved_power:.0%})"
               + (f", about {design.weeks:.0f} weeks of leads" if design.weeks else ""))
    typer.echo(f"budget {design.budget:,} leads ({verdict} for the target): smallest detectable lift "
               f"{design.detectable_lift_at_budget:+.0%} (to {design.detectable_rate_at_budget:.2%})")
    if design.platform is not None:
        typer.echo(f"platform: experiment {design.platform.experiment_id} on {design.platform.url}, token "
                   f"{design.platform.token} (shown once, kept in {out}); post conversions to "
                   f"{design.platform.conversions} (arm new = treatment, original = control)")
    typer.echo(f"written to {out}" + (f" and {assignments}" if assignments is not None else ""))


def _folder_and_export(prepared: Path | None, data: Path | None, spec: Path | None):
    """The prepared folder (``--prepared``, else the export prepared in a temp folder) and the export's leads."""
    from nextbest.data.funnel_spec import load_funnel_spec
    from nextbest.data.paths import resolve_data_file
    from nextbest.data.prepared import load_or_prepare
    from nextbest.data.salescrm import DATASET, DEFAULT_FILE, load_export
    from nextbest.errors import NextbestError

    folder = load_or_prepare(prepared, data, load_funnel_spec(spec) if spec is not None else None)
    if data is None and folder.spec.name != "salescrm":
        raise NextbestError(f"give --data: the export of funnel '{folder.spec.name}' whose open leads to use")
    return folder, load_export(data if data is not None else resolve_data_file(DATASET, DEFAULT_FILE),
                               folder.spec).frame  # fmt: skip


def _progress_bar(description: str, total: int):
    """A rich progress bar; returns (progress context, advance callback)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=False
    )
    task = bar.add_task(description, total=total)
    return bar, lambda n: bar.advance(task, n)


def _oversample(text: str) -> tuple[float, float, float] | None:

    from nextbest.errors import NextbestError

    if text.strip().lower() in ("none", "off", "no"):
        return None
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or min(parts) < 0 or abs(sum(parts) - 1.0) > 1e-6:
        raise NextbestError(f"--oversample {text!r}: give three shares summing to 1, e.g. 0.3,0.3,0.4, or 'none'")
    return parts  # type: ignore[return-value]


@crm_app.command("train")
def train(
    out: Path = typer.Option(..., "--out", help="Run folder to write (policy, checkpoints, metrics, curves)."),
    agent: str = typer.Option("qlearning", "--agent", help="qlearning | ppo | dqn."),
    episodes: int = typer.Option(100_000, "--episodes", min=1, help="Training episodes (leads simulated)."),
    seed: int = typer.Option(0, "--seed", help="Seed: the same seed gives the same policy and numbers."),
    data: Path | None = typer.Option(
        None, "--data", help="Prepared folder from `crm prepare`; default: prepare the shared data into RUN/prepared."
    ),
    subscription_value: float | None = typer.Option(
        None, "--subscription-value", help="Value of a conversion ($); default: the funnel spec's (SalesCRM: 1000)."
    ),
    shaped: bool = typer.Option(False, "--shaped-reward", help="Train on the shaped reward (evaluation never does)."),
    call_offer_rate: float = typer.Option(
        1.0,
        "--call-offer-rate",
        help="Assumed share of leads the logged process offered the spec's uncertain step (SalesCRM: a call), (0-1].",
    ),
    oversample: str = typer.Option(
        "0.3,0.3,0.4",
        "--oversample",
        help="Batch shares of converted, first-key-step (SalesCRM: first call) and any leads, or 'none'.",
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue from the latest checkpoint in RUN/checkpoints."),
    step_size: str = typer.Option("constant", "--step-size", help="Q-learning step size: constant (α = 0.1, the "
                                  "seed's) or visit-count (1/N per state-action: the values settle)."),
    decimals: int = typer.Option(2, "--decimals", min=0, max=4, help="Q-learning state grid: observations rounded "
                                 "to this many decimals (1 = a coarser grid, fewer states)."),
    fit_window: int | None = typer.Option(None, "--fit-window", min=1, metavar="DAYS", help="Fit the simulator on "
                                          "the train leads of the last DAYS days of the train period only (the "
                                          "most recent process); default: every train lead."),
    established_visits: int = typer.Option(1000, "--established-visits", min=1, help="Q-learning convergence "
                                           "metrics: a state-action pair counts as established once it has had "
                                           "this many updates when the last 10k episodes begin."),
    reading: str = typer.Option("conservative", "--reading", help="The reading of the data the simulator assumes: "
                                "conservative (every lead was offered every step), middle, or optimistic (only the "
                                "leads who took a step were offered it); see docs/crm_funnel.md."),
    seeds: int = typer.Option(1, "--seeds", min=1, help="Train N runs with seeds SEED, SEED+1, ... into "
                              "RUN/seed-<s> (each the run --seed s gives) and write RUN/seeds.json: each seed's "
                              "final training value and their spread. They run on --workers / --ray-address.",
                              metavar="N"),
    workers: int = options.WORKERS,
    ray_address: str | None = options.RAY_ADDRESS,
    mlflow: str | None = options.MLFLOW,
) -> None:
    """Train a policy in the simulator learned from the train split; write RUN/training_metrics_final.json
    (with --seeds N: one run per seed, and RUN/seeds.json)."""
    from dataclasses import asdict

    from rich.console import Console

    from nextbest.agents.runs import AGENTS, RunSettings, train_run
    from nextbest.data.prepared import load_prepared
    from nextbest.errors import NextbestError
    from nextbest.evaluation.crm_readings import READINGS
    from nextbest.report.figures import training_curves
    from nextbest.tracking import check_server, record_run

    if agent not in AGENTS:
        raise NextbestError(f"--agent {agent!r}: choose one of {', '.join(AGENTS)}")
    dials = {r.name: r.dial for r in READINGS}
    if reading not in dials:
        raise NextbestError(f"--reading {reading!r}: choose one of {', '.join(dials)}")
    check_server(mlflow)
    console = Console()
    settings = RunSettings(
        agent=agent,
        episodes=episodes,
        seed=seed,
        subscription_value=subscription_value,
        shaped_reward=shaped,
        call_offer_rate=call_offer_rate,
        oversample=_oversample(oversample),
        step_size=step_size,
        decimals=decimals,
        offer_dial=dials[reading],
        fit_window_days=fit_window,
        established_visits=established_visits,
    )
    if seeds > 1 and resume:
        raise NextbestError("--resume continues one run; it cannot be combined with --seeds")
    prepared = load_prepared(data) if data is not None else _prepare_default(out / "prepared", console)
    if seeds > 1:
        _train_seeds(console, prepared, settings, out, seeds, workers, ray_address, mlflow)
        return
    bar, advance = _progress_bar(f"training {agent}", episodes)
    with bar:
        final = train_run(prepared, settings, out, progress=advance, resume=resume)

    curves = json.loads((out / "training_metrics.json").read_text())
    training_curves(curves, out / "training_curves.png")
    shown = ", ".join(f"{k}={_fmt(v)}" for k, v in final.to_dict().items() if k != "agent")
    console.print(f"[bold]{agent}[/bold]: {shown}")
    console.print(f"run written to {out} (training_metrics_final.json, training_curves.png)")
    params = {**asdict(settings), "data": str(data) if data else "(shared SalesCRM export)", "out": str(out)}
    record_run(mlflow, "crm", f"crm train {agent}", params, {"": final.to_dict()},
               [path for path in sorted(out.iterdir()) if path.is_file()])  # fmt: skip


def _train_seeds(console, prepared, settings, out: Path, seeds: int, workers: int, ray_address: str | None,
                 mlflow: str | None) -> None:  # fmt: skip
    """`crm train --seeds N`: the runs, their curves, seeds.json and its table (and the MLflow run)."""
    from dataclasses import asdict

    from nextbest.agents.runs import train_seeds
    from nextbest.report.figures import training_curves
    from nextbest.tracking import record_run

    chosen = list(range(settings.seed, settings.seed + seeds))
    with options.executor_for(workers, ray_address) as executor:
        bar, advance = _progress_bar(f"training {settings.agent}, {seeds} seeds on {executor.describe()}", seeds)
        with bar:
            result = train_seeds(prepared, settings, out, chosen, executor, advance)
    for folder in result.folders:
        training_curves(json.loads((Path(folder) / "training_metrics.json").read_text()),
                        Path(folder) / "training_curves.png")  # fmt: skip
    for seed, value in zip(result.seeds, result.final_business_value):
        console.print(f"seed {seed}: final mean business value per lead {_fmt(value)}")
    console.print(f"[bold]{settings.agent}[/bold] over {seeds} seeds: mean {_fmt(result.mean_final_business_value)}, "
                  f"sd {_fmt(result.sd_final_business_value)}; written to {out / 'seeds.json'} and {out}/seed-*")
    params = {**asdict(settings), "seeds": seeds, "out": str(out)}
    record_run(mlflow, "crm", f"crm train {settings.agent} x{seeds} seeds", params, {"": result.to_dict()},
               [out / "seeds.json"])  # fmt: skip


@crm_app.command("example")
def example(
    out: Path = typer.Option(..., "--out", help="Folder for the example export and its spec (created if missing)."),
    leads: int = typer.Option(6000, "--leads", min=100, help="Leads to generate."),
    seed: int = typer.Option(0, "--seed", help="Seed: the same seed writes the same file."),
) -> None:
    """Write a synthetic B2B SaaS CRM export (lead → MQL → SQL → demo → trial → paid, with a few defects) and
    the funnel spec that describes it; then run `crm prepare --data OUT/b2b_saas.csv --spec OUT/b2b_saas.toml`."""
    from nextbest.data.b2b_saas import write_b2b_example

    written = write_b2b_example(out, n_leads=leads, seed=seed)
    for name, path in written.get("files", {}).items():
        typer.echo(f"{name}: {path}")
    typer.echo(f"next: nextbest crm prepare --data {out / 'b2b_saas.csv'} --spec {out / 'b2b_saas.toml'} "
               f"--out {out / 'prepared'}")  # fmt: skip


def _prepare_default(target: Path, console) -> object:

    from nextbest.data import prepare_crm
    from nextbest.data.prepared import load_prepared

    with console.status("preparing the embedded default data (shared SalesCRM export)..."):
        prepare_crm(target)
    return load_prepared(target)


def _fmt(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@crm_app.command("evaluate")
def evaluate(
    run: Path = typer.Option(..., "--run", help="Run folder written by `crm train`."),
    out: Path = typer.Option(..., "--out", help="Folder for evaluation.json."),
    bootstrap: int = typer.Option(200, "--bootstrap", min=2, help="Bootstrap replicates (each refits the simulator)."),
    replications: int = typer.Option(20, "--replications", min=1, help="Simulated episodes per test lead."),
    seed: int = typer.Option(0, "--seed", help="Seed of the evaluation draws."),
    fit_window: int = typer.Option(90, "--fit-window", min=0, help="Also fit the simulator on the train leads of "
                                   "the last DAYS days of the train period and report its calibration (in period, "
                                   "across time) beside the run's; 0 skips it.", metavar="DAYS"),
    readings: bool = typer.Option(
        True, "--readings/--no-readings", help="Also evaluate under each reading of the data (conservative, "
        "middle, optimistic: retrains Q-learning in each, and at other conversion values)."
    ),
    workers: int = options.WORKERS,
    ray_address: str | None = options.RAY_ADDRESS,
    mlflow: str | None = options.MLFLOW,
) -> None:
    """Score the learned policy and the baselines on held-out test leads, with 95% bootstrap intervals
    that refit the simulator; check the simulator's calibration; name the top segments and the leads to contact;
    design the pilot; and give the policy under each reading of what the export cannot tell.

    Writes EVAL/evaluation.json: policies.<name>.<metric> and <metric>_ci, improvement_vs_random,
    improvement_vs_logged, top_segments, calibration.{in_period, across_time}, targets, who, pilot,
    readings.<name>.{policies, targets, break_even, value_sensitivity, ...}, settings.

    The bootstrap refits and the sensitivity retrains run on --workers local processes or on the Ray cluster at
    --ray-address; the numbers are the same whichever runs them."""
    from rich.console import Console

    from nextbest.tracking import check_server, record_run

    check_server(mlflow)
    console = Console()
    with options.executor_for(workers, ray_address) as executor:
        described = executor.describe()
        if executor.workers > 1:
            console.print(f"parallel part on {described}")
        result = _evaluate_run(console, run, bootstrap, replications, seed, fit_window, readings, executor)
    result.write(out / "evaluation.json")
    _print_evaluation(console, result)
    console.print(f"written to {out / 'evaluation.json'}")
    params = {"run": str(run), "bootstrap": bootstrap, "replications": replications, "seed": seed,
              "fit_window": fit_window, "readings": readings, "executor": described}  # fmt: skip
    record_run(mlflow, "crm", "crm evaluate", params, {"": result.to_dict()}, [out / "evaluation.json"])


def _evaluate_run(console, run: Path, bootstrap: int, replications: int, seed: int, fit_window: int,
                  readings: bool, executor) -> CRMEvaluation:  # fmt: skip
    """`crm evaluate`'s evaluation of the run folder `run` (see its help)."""
    from dataclasses import replace

    from nextbest.agents.baselines import BASELINES, make_baseline
    from nextbest.agents.convergence import compare_step_sizes
    from nextbest.agents.qlearning import QLearningAgent
    from nextbest.agents.runs import load_run, training_leads
    from nextbest.errors import NextbestError
    from nextbest.evaluation.crm import EvaluationConfig, evaluate_crm
    from nextbest.evaluation.crm_pilot import leads_per_week
    from nextbest.evaluation.crm_readings import READINGS
    from nextbest.sim.journeys import journeys_from_frame

    loaded = load_run(run)
    spec = loaded.prepared.spec
    train_journeys = journeys_from_frame(training_leads(loaded.prepared, loaded.settings), spec)
    recent = None
    if fit_window:
        try:
            window = training_leads(loaded.prepared, replace(loaded.settings, fit_window_days=fit_window))
            recent = (journeys_from_frame(window, spec), f"the train leads of the last {fit_window} days")
        except NextbestError as error:
            console.print(f"[yellow]{error}: the fit-window calibration is skipped[/yellow]")
    test_journeys = journeys_from_frame(loaded.prepared.test, spec)
    policies = {"learned": loaded.policy}
    simulator = loaded.simulator
    policies.update({name: make_baseline(name, simulator.config, simulator.layout, simulator.logged_offer_probability)
                     for name in BASELINES})  # fmt: skip
    settings = loaded.settings

    def retrain(simulator):
        config = settings.qlearning()
        agent = QLearningAgent(simulator, config)
        agent.train(train_journeys, min(settings.episodes, 100_000) // config.batch_size * config.batch_size)
        return agent

    config = EvaluationConfig(replications=replications, bootstrap=bootstrap, seed=seed)
    n_readings = len(READINGS) if readings else 0
    bar, advance = _progress_bar("bootstrap (refit simulator, resample test leads; then each reading)",
                                 bootstrap * (1 + n_readings))  # fmt: skip
    with bar:
        result = evaluate_crm(
            loaded.simulator,
            train_journeys,
            test_journeys,
            policies,
            config,
            retrain=retrain if readings else None,
            progress=advance,
            validation=journeys_from_frame(loaded.prepared.val, spec),
            with_readings=readings,
            test_frame=loaded.prepared.test,
            leads_per_week=leads_per_week(loaded.prepared.split.rows, loaded.prepared.split.periods),
            recent=recent,
            executor=executor,
        )
    if settings.agent == "qlearning":
        with console.status("training Q-learning with both step sizes (constant α, visit-count)..."):
            result.convergence = compare_step_sizes(loaded.simulator, train_journeys, settings,
                                                    min(settings.episodes, 100_000))  # fmt: skip
    result.run = str(run)
    return result


def _print_evaluation(console, result: CRMEvaluation) -> None:
    from rich.table import Table

    settings = result.settings
    table = Table(title=f"{settings.funnel}: held-out test leads (95% bootstrap intervals)")
    for column in ("policy", f"{settings.conversion_step} rate", f"{settings.first_key_step} rate", "CPA $", "ROI",
                   "value/lead $"):  # fmt: skip
        table.add_column(column, justify="left" if column == "policy" else "right")
    for name, m in result.policies.items():
        table.add_row(
            name,
            _pct(m.subscription_rate, m.subscription_rate_ci),
            _pct(m.first_call_rate, m.first_call_rate_ci),
            _num(m.cost_per_acquisition, m.cost_per_acquisition_ci, "{:,.0f}"),
            _num(m.roi, m.roi_ci, "{:.2f}"),
            _num(m.value_per_lead, m.value_per_lead_ci, "{:.2f}"),
        )
    console.print(table)
    console.print(f"simulator calibration: within_ci_fraction = {result.simulator_calibration.within_ci_fraction:.2f}")
    drift = result.simulator_calibration_train_val
    if drift is not None:
        console.print(f"  (diagnostic, simulator refit on train + val: {drift.within_ci_fraction:.2f})")
    for name, check in result.targets.items():
        mark = "[green]met[/green]" if check.met else "[red]not met[/red]"
        console.print(f"  target {name}: {_fmt(check.value)} (target {check.target}) {mark}")
    if result.readings:
        console.print(f"learned policy's {settings.conversion_step} rate under each reading of the data:")
        for name, reading in result.readings.items():
            learned = reading.policies["learned"]
            met = [target for target, check in reading.targets.items() if check.met]
            rate = _pct(learned.subscription_rate, learned.subscription_rate_ci)
            console.print(f"  {name} (dial {reading.dial:g}): {rate}; targets met: {', '.join(met) or 'none'}")


def _pct(value, ci) -> str:
    if value is None:
        return "n/a"
    low, high = ci
    band = f" [{low:.2%}, {high:.2%}]" if low is not None and high is not None else ""
    return f"{value:.2%}{band}"


def _num(value, ci, spec: str) -> str:
    if value is None:
        return "n/a"
    low, high = ci
    band = f" [{spec.format(low)}, {spec.format(high)}]" if low is not None and high is not None else ""
    return spec.format(value) + band


@crm_app.command("report")
def report(
    run: Path = typer.Option(..., "--run", help="Run folder written by `crm train`."),
    eval_dir: Path = typer.Option(..., "--eval", help="Folder with evaluation.json from `crm evaluate`."),
    out: Path = typer.Option(..., "--out", help="HTML file to write (self-contained)."),
) -> None:
    """Write one self-contained HTML report: metrics with intervals, segments, curves, flows, calibration."""
    from nextbest.report.crm import write_crm_report

    path = write_crm_report(run, eval_dir, out)
    typer.echo(f"report written to {path}")


@crm_app.command("demo")
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Folder for everything the demo writes."),
    episodes: int = typer.Option(100_000, "--episodes", min=1000, help="Q-learning episodes."),
    bootstrap: int = typer.Option(200, "--bootstrap", min=2, help="Bootstrap replicates of the evaluation."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """The whole CRM job on embedded defaults: prepare → train (Q-learning) → evaluate → report."""
    prepared = out / "prepared"
    prepare(out=prepared, data=None, spec=None)
    train(
        out=out / "run",
        agent="qlearning",
        episodes=episodes,
        seed=seed,
        data=prepared,
        subscription_value=None,
        shaped=False,
        call_offer_rate=1.0,
        oversample="0.3,0.3,0.4",
        resume=False,
        step_size="constant",
        decimals=2,
        reading="conservative",
        fit_window=None,
        established_visits=1000,
        seeds=1,
        workers=1,
        ray_address=None,
        mlflow=None,
    )
    evaluate(run=out / "run", out=out / "eval", bootstrap=bootstrap, replications=20, seed=seed, fit_window=90,
             readings=True, workers=1, ray_address=None, mlflow=None)  # fmt: skip
    report(run=out / "run", eval_dir=out / "eval", out=out / "report.html")
    typer.echo(f"open {(out / 'report.html').resolve()} in a browser")
