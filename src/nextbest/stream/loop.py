"""One turn of the loop on loopback: serve with exploration, log, estimate off-policy, learn, A/B test, compare.

    result = run_loop(LoopConfig(out=Path("runs/loop")))

1. **Serve and log.** The shop's current model (gbm, trained on store data; ``prepare_model``) serves every session
   of ``log_sessions`` with exploration (``explore``, default ε-greedy 0.3) through ``nextbest stream run
   --log-decisions`` on a fresh broker; the shop side applies each decision and writes the outcome
   (``run_traffic`` with ``serve_all``). ``collect_decision_log`` joins them into the lake's table
   ``decision_log_<seed>``.
2. **Learn and estimate.** The log is split (``learn_share`` to learn from, the rest to evaluate on). A policy is
   learned from the first share (``learn_targeting_policy``: doubly robust weighted classification) and exported
   to ONNX, the file the worker would serve. On the second share every candidate — learned, current, the original
   rule, show-all, show-none — is estimated by IPS, SNIPS and DR, with its difference from the original rule
   (``choose_policy``); the best by DR is chosen.
3. **Test.** The chosen policy goes into an A/B experiment on the platform against the original rule (the
   platform's control arm, the shop's status quo), on a second fresh broker, with the platform's default design.
4. **Compare.** The chosen policy's OPE effect over the original rule is set next to the A/B's measured effect and
   the world's true effect (the exact expected revenue of each policy on the world's evaluation population, its
   features read through the same feed style and decoder the worker uses), in ``loop.json`` (``LoopResult``).

A chosen policy without a model file (show-all, show-none, or the control itself) is not A/B tested: the result
says so and ``ab`` is null.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nextbest.data.decision_log import context_frame
from nextbest.data.lake import Lake
from nextbest.errors import NextbestError
from nextbest.evaluation.loop import ABOutcome, LoopResult, choose_policy, compare, split_log, subset
from nextbest.evaluation.offpolicy import cross_fitted_rewards
from nextbest.models.export import export_model
from nextbest.models.offpolicy import learn_targeting_policy
from nextbest.models.serving import ExportedModel
from nextbest.models.targeting import TargetingModel, build_features
from nextbest.ope import LoggedBandit
from nextbest.policies.contract import deterministic
from nextbest.policies.explore import Exploration
from nextbest.sim.shop import FeedStyle, World
from nextbest.stream.broker import Broker
from nextbest.stream.collect import collect_decision_log
from nextbest.stream.e2e import Design, prepare_model, run_experiment
from nextbest.stream.services import PlatformService, WorkerProcess
from nextbest.stream.traffic import TrafficConfig, run_traffic

CONTROL = "original"
Step = Callable[[str], None]


@dataclass
class LoopConfig:
    """Settings of one turn (module doc). ``shop`` is a folder with the world (``data/``) and the current model
    (``models/gbm.onnx``), e.g. an ``ab demo`` folder; created under ``out/shop`` when missing."""

    out: Path
    shop: Path | None = None
    seed: int = 0
    explore: str = "epsilon:0.3"
    log_sessions: int = 200_000
    rate: float = 5000.0
    learn_share: float = 0.5
    customers: int = 200_000
    feed: str = "realistic"
    design: Design = field(default_factory=lambda: Design(name="loop: the policy chosen off-policy vs original"))

    def check(self) -> None:
        """NextbestError for settings no turn can use (before anything starts)."""
        exploration = Exploration.parse(self.explore)
        if exploration.kind == "none":
            raise NextbestError("--explore none logs nothing to learn from: give epsilon:E or softmax:T")
        if self.log_sessions < 1_000:
            raise NextbestError(f"--log-sessions must be at least 1,000, got {self.log_sessions}")
        if not 0 < self.learn_share < 1:
            raise NextbestError(f"--learn-share must be in (0, 1), got {self.learn_share}")
        FeedStyle.named(self.feed)


def run_loop(config: LoopConfig, step: Step = lambda _: None,
             progress: Callable[[int, dict[str, Any]], None] | None = None) -> LoopResult:  # fmt: skip
    """Run one turn (module doc); ``step`` hears what starts, ``progress`` follows the traffic."""
    config.check()
    started = time.monotonic()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    shop = Path(config.shop) if config.shop is not None else out / "shop"
    step(f"preparing the shop world and the current model in {shop} ...")
    current, world = prepare_model(shop, "gbm", 0, config.customers)
    table = f"decision_log_{config.seed}"
    exploration, collected = _serve_and_log(config, current, world, table, step, progress)
    log_frame = Lake(str(out / "lake")).read_table(table)
    step(f"learning from {len(log_frame):,} logged decisions and estimating the candidates ...")
    offline = _learn_and_choose(config, log_frame, current, world)
    ab = None
    if offline.files.get(offline.choice.chosen) and offline.choice.chosen != CONTROL:
        step(f"A/B test: {offline.choice.chosen} against the original rule ...")
        ab = _ab_test(config, Path(offline.files[offline.choice.chosen]), world, progress)
    result = LoopResult(
        settings=_settings(config, shop), exploration=exploration, collected=collected.to_dict(),
        rows_logged=len(log_frame), rows_learned=offline.rows_learned, choice=offline.choice,
        true_value=offline.truth, true_effect={k: v - offline.truth[CONTROL] for k, v in offline.truth.items()},
        ab=ab, comparison=compare(offline.choice, ab, {k: v - offline.truth[CONTROL] for k, v in
                                                       offline.truth.items()}),
        files={**{f"model_{k}": v for k, v in offline.files.items()}, "decision_log": collected.path},
        wall_seconds=time.monotonic() - started,
    )  # fmt: skip
    result.write(out / "loop.json")
    return result


def _settings(config: LoopConfig, shop: Path) -> dict[str, Any]:
    return {"seed": config.seed, "explore": config.explore, "log_sessions": config.log_sessions,
            "rate": config.rate, "learn_share": config.learn_share, "feed": config.feed, "shop": str(shop),
            "control": CONTROL, "design": config.design.payload()}  # fmt: skip


def _serve_and_log(config: LoopConfig, model: Path, world: World, table: str, step: Step,
                   progress: Callable | None) -> tuple[dict[str, Any], Any]:  # fmt: skip
    """Phase 1 on a fresh broker: the current model explores, every decision and outcome is logged, collected."""
    out = Path(config.out)
    token = f"loop-explore-{config.seed}"
    with Broker(storage="memory") as broker:
        broker.create_topics(partitions=4)
        step(f"serving {config.log_sessions:,} sessions with {config.explore} exploration (broker "
             f"{broker.bootstrap_servers}) ...")  # fmt: skip
        worker = WorkerProcess(broker.bootstrap_servers, model, token, group_id=f"loop-{config.seed}",
                               log_dir=out / "logs", explore=config.explore, log_decisions=True,
                               explore_seed=config.seed)  # fmt: skip
        traffic = TrafficConfig(bootstrap_servers=broker.bootstrap_servers, platform="", experiment=0, token=token,
                                sessions=config.log_sessions, rate=config.rate, seed=2 * config.seed,
                                feed=config.feed, serve_all=True)  # fmt: skip
        with worker:
            summary = run_traffic(traffic, world, progress=progress)
        step("collecting the decision log into the lake ...")
        collected = collect_decision_log(broker.bootstrap_servers, Lake(str(out / "lake")), table, token)
    keys = ("sessions_sent", "seconds", "sessions_per_second", "outcomes_served", "shown", "fallback_timeouts",
            "malformed_customers", "token_mismatches", "decisions_matched")  # fmt: skip
    return {key: summary.get(key) for key in keys}, collected


@dataclass
class _Offline:
    choice: Any
    truth: dict[str, float]
    files: dict[str, str]
    rows_learned: int


def _learn_and_choose(config: LoopConfig, log_frame: pd.DataFrame, current: Path, world: World) -> _Offline:
    """Phase 2 (no I/O but the learned model's file): split, learn, export, estimate every candidate, truth."""
    served = ExportedModel.load(current)
    features = list(served.features)
    X = context_frame(log_frame, features)
    log = LoggedBandit(log_frame["action"].to_numpy(dtype=np.int64), log_frame["reward"].to_numpy(dtype=float),
                       log_frame["propensity"].to_numpy(dtype=float), 2)  # fmt: skip
    split = split_log(len(log), config.learn_share, config.seed)
    X_learn, log_learn = X.iloc[split.learn].reset_index(drop=True), subset(log, split.learn)
    reward_model = cross_fitted_rewards(X_learn, features, log_learn, config.seed, "decision log")
    learned = learn_targeting_policy(X_learn, log_learn, reward_model, _template(served, world), seed=config.seed)
    learned_path = export_model(learned, Path(config.out) / "models" / f"learned_{config.seed}.onnx", "onnx").path
    policies = _policies(ExportedModel.load(learned_path), served, world)
    X_eval, log_eval = X.iloc[split.evaluate].reset_index(drop=True), subset(log, split.evaluate)
    candidates = {name: deterministic(decide(X_eval), 2).distribution for name, decide in policies.items()}
    choice = choose_policy(X_eval, log_eval, candidates, CONTROL, seed=config.seed)
    population = _served_population(world, served, config.feed, config.seed)
    truth = {name: float(world.expected_revenue(decide(population))) for name, decide in policies.items()}
    files = {"learned": str(learned_path), "current": str(current)}
    return _Offline(choice, truth, files, len(split.learn))


def _template(served: ExportedModel, world: World) -> TargetingModel:
    """What the learned policy inherits from the served model: features, imputation, economics, world."""
    return TargetingModel("gbm", None, served.threshold or 0.5, list(served.features), world.economics(),
                          world.config.to_dict(), "", imputation=served.imputation)  # fmt: skip


def _policies(learned: ExportedModel, current: ExportedModel, world: World) -> dict[str, Callable]:
    """The candidates as functions of a feature frame (columns in the model's order) -> 0/1 decisions."""
    max_age = world.config.original_max_age

    def original(X: pd.DataFrame) -> np.ndarray:
        return ((X["man"].to_numpy() == 1) & (X["age"].to_numpy() < max_age)).astype(np.int8)

    return {
        "learned": lambda X: learned.decide(X.to_numpy(dtype=float)),
        "current": lambda X: current.decide(X.to_numpy(dtype=float)),
        CONTROL: original,
        "show_all": lambda X: np.ones(len(X), dtype=np.int8),
        "show_none": lambda X: np.zeros(len(X), dtype=np.int8),
    }


def _served_population(world: World, served: ExportedModel, feed: str, seed: int) -> pd.DataFrame:
    """The world's evaluation population as the worker would see it: written in the feed's style, decoded and
    assembled with the served model's missing-flag rule."""
    customers = world.evaluation_customers
    demographic, historic = world.feed_messages(customers, FeedStyle.named(feed), np.random.default_rng([seed, 41]))
    return build_features(demographic, historic, served.features, served.imputation)


def _ab_test(config: LoopConfig, model: Path, world: World, progress: Callable | None) -> ABOutcome:
    """Phase 3 on a fresh broker and a platform: the chosen policy against the original rule."""
    out = Path(config.out)
    db_url = f"sqlite:///{(out / 'platform.db').resolve()}"
    with Broker(storage="memory") as broker, PlatformService(db_url, log_dir=out / "logs") as platform:
        broker.create_topics(partitions=4)
        summary = run_experiment(broker.bootstrap_servers, platform.url, model, world, config.design,
                                 seed=2 * config.seed + 1, rate=config.rate, log_dir=out / "logs",
                                 group_id=f"loop-ab-{config.seed}", progress=progress, feed=config.feed)  # fmt: skip
    return ABOutcome(verdict=summary.get("verdict"), effect=summary.get("effect"), ci=summary.get("ci"),
                     p_value=summary.get("p_value"), n_original=summary.get("n_original"),
                     n_new=summary.get("n_new"), srm_flagged=summary.get("srm_flagged"),
                     page=summary["page"])  # fmt: skip
