"""`nextbest ope ...`: off-policy evaluation of a target policy from logged decisions."""

from __future__ import annotations

from pathlib import Path

import typer

from nextbest.cli import options

ope_app = typer.Typer(help="Off-policy evaluation: a policy's value estimated from decisions another policy logged.",
                      no_args_is_help=True)  # fmt: skip


@ope_app.command("run")
def run(
    logs: Path = typer.Option(..., "--logs", help="Logged decisions, .csv or .parquet: one row per served decision."),
    action_col: str = typer.Option(..., "--action-col", help="Column of the served action."),
    reward_col: str = typer.Option(..., "--reward-col", help="Column of the observed reward."),
    pscore_col: str = typer.Option(..., "--pscore-col", help="Column of the logging policy's probability of the "
                                   "served action, in (0, 1]."),  # fmt: skip
    policy: Path = typer.Option(..., "--policy", help="Target policy: a CSV of context columns (matched by name in "
                                "the log), the action column and `probability`, summing to 1 within each context; "
                                "or a model file nextbest exported (.onnx/.pmml with its sidecar), reading its "
                                "features from the log's columns (a decision log's ctx_ columns too)."),
    out: Path = typer.Option(..., "--out", help="Folder for ope.json and ope.png (created if missing)."),
    features: str | None = typer.Option(None, "--features", help="Comma-separated context columns for the reward "
                                        "model of DM/DR (default: every other column; a decision log's ctx_ "
                                        "columns)."),  # fmt: skip
    estimators: str | None = typer.Option(None, "--estimators", help="Comma-separated subset of dm, ips, snips, dr, "
                                          "sndr, switch-dr (default: all)."),  # fmt: skip
    interval: str = typer.Option("normal", "--interval", help="normal (the estimator's influence function, V ± "
                                 "z·sd/√n) or bootstrap (percentile, over the logged rows; normal beyond 200,000 "
                                 "rows)."),  # fmt: skip
    bootstrap: int = typer.Option(200, "--bootstrap", min=10, help="Bootstrap replicates (with --interval bootstrap)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap and of the reward model's folds."),
    mlflow: str | None = options.MLFLOW,
) -> None:
    """Estimate the target policy's mean reward with DM, IPS, SNIPS, DR, SNDR and switch-DR, each with a 95%
    interval, the effective sample size and the largest importance weight; writes OUT/ope.json and OUT/ope.png."""
    from rich.console import Console
    from rich.table import Table

    from nextbest.evaluation.offpolicy import evaluate_logged_table
    from nextbest.report.figures import ope_intervals
    from nextbest.tracking import check_server, record_run

    check_server(mlflow)
    chosen = [c.strip() for c in features.split(",") if c.strip()] if features else None
    names = [c.strip() for c in estimators.split(",") if c.strip()] if estimators else ()
    report = evaluate_logged_table(logs, action_col, reward_col, pscore_col, policy, chosen, names, bootstrap, seed,
                                   interval=interval)  # fmt: skip
    report.write(out / "ope.json")
    ope_intervals(report, out / "ope.png")
    console = Console()
    table = Table(title=f"target policy {policy.name} on {report.n:,} logged decisions (95% intervals)")
    for column in ("estimator", "value", "interval", "ESS", "max weight"):
        table.add_column(column, justify="left" if column == "estimator" else "right")
    for name, e in report.estimators.items():
        table.add_row(name, f"{e.estimate:.4g}", f"[{e.ci[0]:.4g}, {e.ci[1]:.4g}]",
                      "" if e.ess is None else f"{e.ess:,.0f}", "" if e.max_weight is None else f"{e.max_weight:.3g}")
    own = report.on_policy
    table.add_row("logged policy", f"{own.mean:.4g}", f"[{own.ci[0]:.4g}, {own.ci[1]:.4g}]", "", "")
    console.print(table)
    for name, why in report.refused.items():
        console.print(f"[yellow]{name} refused:[/yellow] {why}")
    console.print(f"written to {out / 'ope.json'} and {out / 'ope.png'}")
    params = {"logs": str(logs), "action_col": action_col, "reward_col": reward_col, "pscore_col": pscore_col,
              "policy": str(policy), "features": features, "estimators": estimators, "interval": interval,
              "bootstrap": bootstrap, "seed": seed}  # fmt: skip
    record_run(mlflow, "ope", f"ope run {policy.name}", params, {"": report.to_dict()},
               [out / "ope.json", out / "ope.png"])  # fmt: skip


@ope_app.command("learn")
def learn(
    logs: Path = typer.Option(..., "--logs", help="A decision log (`nextbest log collect`: action, reward, "
                              "propensity and the ctx_ features as served), .parquet or .csv."),
    like: Path = typer.Option(..., "--like", help="The exported model that served the log (.onnx + sidecar): the "
                              "learned policy reads the same features with the same missing-flag rule."),
    out: Path = typer.Option(..., "--out", help="The learned model to write (.onnx; its sidecar and "
                             "<out>.learn.json go next to it)."),
    learn_share: float = typer.Option(0.5, "--learn-share", help="Share of the log to learn from; the rest "
                                      "estimates the learned policy against --like."),
    seed: int = typer.Option(0, "--seed", help="Seed of the split, the reward model's folds and the learner."),
) -> None:
    """Learn a targeting policy from a decision log (doubly robust weighted classification), export it for
    `nextbest stream run`, and estimate it against the serving model on the held-out share: IPS, SNIPS and DR,
    each value and the difference with its 95% interval (written to <out>.learn.json)."""
    from rich.console import Console

    from nextbest.errors import NextbestError
    from nextbest.evaluation.loop import choose_policy, learn_from_log, read_decision_log, split_log
    from nextbest.models.export import export_model
    from nextbest.models.serving import ExportedModel
    from nextbest.models.tables import read_table
    from nextbest.policies.contract import deterministic

    if out.suffix.lower() != ".onnx":
        raise NextbestError(f"--out {out}: the learned model is written as ONNX, give a .onnx path")
    served = ExportedModel.load(like)
    data = read_decision_log(read_table(logs), served.features, str(logs))
    split = split_log(len(data.log), learn_share, seed)
    learned = learn_from_log(data.rows(split.learn), served.features, served.imputation, seed=seed)
    exported = ExportedModel.load(export_model(learned, out, "onnx").path)
    held_out = data.rows(split.evaluate)
    X = held_out.X.to_numpy(dtype=float)
    candidates = {"learned": deterministic(exported.decide(X), 2).distribution,
                  "serving": deterministic(served.decide(X), 2).distribution}  # fmt: skip
    choice = choose_policy(held_out.X, held_out.log, candidates, "serving", seed=seed)
    choice.write(out.with_name(out.name + ".learn.json"))
    console = Console()
    versus = choice.candidates["learned"].versus_control
    console.print(f"learned from {len(split.learn):,} logged decisions; estimated on {choice.rows_evaluated:,} others")
    for name, e in versus.items():
        console.print(f"  {name}: learned − serving = {e.estimate:+.4g} per decision [{e.ci[0]:+.4g}, {e.ci[1]:+.4g}]")
    console.print(f"written {out} (+ sidecar) and {out.name}.learn.json")
